#!/usr/bin/env bash
# make bench: builds (release) and runs the benchmarks; results go to docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BP_ANVIL=${BP_ANVIL:-$PWD/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}
python3 bench/backfill_anvil.py --blockpipe "$BUILD/blockpipe" --curl-loop "$BUILD/bench_curl_loop" \
    --out docs/PERFORMANCE.md "$@"
python3 bench/pg_bench.py --pg-bench "$BUILD/bench_pg" --blockpipe "$BUILD/blockpipe" --out docs/PERFORMANCE.md
python3 bench/ingest_bench.py --blockpipe "$BUILD/blockpipe" --curl-loop "$BUILD/bench_curl_loop" \
    --sqlite-insert "$BUILD/bench_sqlite_insert" --decode "$BUILD/bench_decode" --out docs/PERFORMANCE.md
python3 bench/realtime_latency.py --blockpipe "$BUILD/blockpipe" --out docs/PERFORMANCE.md
python3 bench/fetch_transport.py --out docs/PERFORMANCE.md
