#!/usr/bin/env bash
# make bench: builds (release) and runs the benchmarks; results go to docs/PERFORMANCE.md
# (BENCH_OUT=FILE: elsewhere). Each benchmark replaces its own section, stamped with the date
# and commit; one that fails writes that it did not run and why (bench/perfdoc.py guard
# covers one that dies before it can), the others still run, and the exit status is non-zero.
# BENCH_QUICK=1: every benchmark at small sizes (a check that they run; not figures to keep).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${BENCH_OUT:-docs/PERFORMANCE.md}
export BP_ANVIL=${BP_ANVIL:-$PWD/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}
failed=()

bench() { # NAME CMD...: runs CMD under the guard of section NAME
    local name=$1
    shift
    python3 bench/perfdoc.py guard --out "$OUT" --name "$name" -- "$@" || failed+=("$name")
}

bench anvil python3 bench/backfill_anvil.py --blockpipe "$BUILD/blockpipe" \
    --curl-loop "$BUILD/bench_curl_loop" --out "$OUT" "$@"
bench pg python3 bench/pg_bench.py --pg-bench "$BUILD/bench_pg" --blockpipe "$BUILD/blockpipe" \
    --out "$OUT"
bench clickhouse python3 bench/clickhouse_bench.py --ch-bench "$BUILD/bench_ch" \
    --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench ingest python3 bench/ingest_bench.py --blockpipe "$BUILD/blockpipe" \
    --curl-loop "$BUILD/bench_curl_loop" --sqlite-bench "$BUILD/bench_sqlite" \
    --decode "$BUILD/bench_decode" --out "$OUT"
bench arch python3 bench/arch_bench.py --blockpipe "$BUILD/blockpipe" \
    --curl-loop "$BUILD/bench_curl_loop" --out "$OUT"
bench l2decode python3 bench/l2_decode_bench.py --decode "$BUILD/bench_decode" --out "$OUT"
bench metrics python3 bench/metrics_bench.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench metrics-sets python3 bench/metrics_bench.py --case sets --blockpipe "$BUILD/blockpipe" \
    --out "$OUT"
bench metrics-day python3 bench/daysets_bench.py --bench "$BUILD/bench_daysets" --out "$OUT"
bench realtime python3 bench/realtime_latency.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench fetchpath python3 bench/fetch_transport.py --out "$OUT"
bench streams python3 bench/stream_bench.py --bench "$BUILD/bench_stream" \
    --keyed "$BUILD/bench_keyed" --out "$OUT"
bench api python3 bench/api_bench.py --build "$BUILD" --out "$OUT"
bench verify python3 bench/verify_bench.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench chains python3 bench/chains_bench.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench memory python3 bench/memory_bench.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
bench archws python3 bench/arch_ws_bench.py --blockpipe "$BUILD/blockpipe" --out "$OUT"
if ((${#failed[@]})); then
    echo "bench: did not run: ${failed[*]} (see their sections in $OUT)" >&2
    exit 1
fi
