#!/usr/bin/env bash
# An output whose library is missing at build time is left out, not a build failure: configure
# says so, the program builds and runs, and using its scheme is a clear error naming what was
# missing (BP_WITHOUT=postgres;clickhouse stands for a machine without libpq-dev and zlib1g-dev).
# Needs BP_SOURCE_DIR.
set -euo pipefail
: "${BP_SOURCE_DIR:?}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cmake -S "$BP_SOURCE_DIR" -B "$tmp/b" -DCMAKE_BUILD_TYPE=Debug -DBP_TESTS=OFF \
  "-DBP_WITHOUT=postgres;clickhouse" >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; exit 1; }
grep -q "the PostgreSQL output (postgres:) is left out: libpq not found (Debian package libpq-dev)" \
  "$tmp/configure.log" || { echo "FAIL: configure did not say the output was left out"; cat "$tmp/configure.log"; exit 1; }
nice cmake --build "$tmp/b" --target blockpipe -j "$(nproc)" >"$tmp/build.log" 2>&1 \
  || { tail -30 "$tmp/build.log"; echo "FAIL: build without libpq"; exit 1; }
bin="$tmp/b/blockpipe"

[ -f "$tmp/b/libblockpipe.a" ] || { echo "FAIL: no libblockpipe.a built"; exit 1; }
if nm "$tmp/b/libblockpipe.a" 2>/dev/null | grep -q " U PQconnectdb"; then
  echo "FAIL: the library still refers to libpq"; exit 1
fi

set +e
"$bin" backfill --rpc http://127.0.0.1:9 --from 0 --to 0 \
  --output 'postgresql://bp:s3cret@db.example/chain' >"$tmp/out" 2>&1
rc=$?
set -e
cat "$tmp/out"
[ "$rc" = 2 ] || { echo "FAIL: exit status $rc, expected 2 (configuration error)"; exit 1; }
grep -q "built without the PostgreSQL output (missing at build time: libpq (Debian package libpq-dev))" "$tmp/out" \
  || { echo "FAIL: the error does not name what is missing"; exit 1; }
if grep -q s3cret "$tmp/out"; then echo "FAIL: the password was shown"; exit 1; fi

set +e
"$bin" backfill --rpc http://127.0.0.1:9 --from 0 --to 0 --clickhouse-url 'http://bp:s3cret@h:8123/db' \
  >"$tmp/out" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "built without the ClickHouse output (missing at build time: zlib (Debian package zlib1g-dev))" "$tmp/out" \
  || { cat "$tmp/out"; echo "FAIL: clickhouse left out: exit $rc, want 2 naming zlib"; exit 1; }
if grep -q s3cret "$tmp/out"; then echo "FAIL: the password was shown"; exit 1; fi

"$bin" --help | grep -q "postgres:.*not in this build (missing libpq" \
  || { echo "FAIL: --help does not say postgres is not in this build"; "$bin" --help; exit 1; }
# --version names the outputs of this build and those left out
"$bin" --version | grep -Eq "^outputs: +sqlite etl-csv jsonl redis kafka$" \
  && "$bin" --version | grep -q "^left out: *postgres (missing libpq (Debian package libpq-dev)), clickhouse (missing zlib" \
  || { echo "FAIL: --version does not list the outputs in and left out"; "$bin" --version; exit 1; }
# the other outputs still work
"$bin" migrate "sqlite:$tmp/x.db" | grep -Eq "schema version [0-9]+" || { echo "FAIL: sqlite migrate"; exit 1; }
echo "ok: postgres and clickhouse left out cleanly"
