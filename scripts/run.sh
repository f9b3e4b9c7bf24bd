#!/usr/bin/env bash
# What `make run` runs (after scripts/install-deps.sh and the build).
#
#  RPC_URL set:   blockpipe follows that node:  build/blockpipe run --rpc "$RPC_URL" ...
#  RPC_URL empty: a local demo: anvil (from .local/) on a free 127.0.0.1 port mining a block
#                 every second, tests/tools/traffic.py sending a few txs per second to it
#                 (transfers of every tx type, contract deployments, logging and reverting
#                 calls), and blockpipe following it. The devnet's chain is kept between runs
#                 (anvil --state: loaded at start, written when anvil stops) in
#                 $ANVIL_STATE, else beside the SQLite output (blockpipe.db.anvil.json), else in
#                 anvil-state.json: a second `make run` resumes the same chain where the first
#                 stopped. Remove the database and that file together to start afresh.
# Output: $OUTPUT, else $DATABASE_URL, else sqlite:blockpipe.db. The HTTP API (REST, status,
# /metrics, WebSocket / SSE push; docs/API.md) listens on $API_LISTEN, else 127.0.0.1:8080.
# Ctrl-C stops blockpipe
# (it flushes and exits 0), then anvil and the traffic generator are stopped by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BLOCKPIPE:-$ROOT/build/blockpipe}"
OUT="${OUTPUT:-${DATABASE_URL:-sqlite:blockpipe.db}}"
STATS="${STATS_INTERVAL:-5}"
ANVIL="${BP_ANVIL:-$ROOT/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}"
API="${API_LISTEN:-127.0.0.1:8080}"

if [ ! -x "$BIN" ]; then
  echo "run.sh: $BIN not found; build it first: make build" >&2
  exit 1
fi

where() {
  case "$OUT" in
    sqlite://*) local f="${OUT#sqlite://}"; echo "${f%%\?*}" ;;
    sqlite:*) local f="${OUT#sqlite:}"; echo "${f%%\?*}" ;;
    *) echo "" ;;
  esac
}

# An output URL's password (postgres://user:PASSWORD@host/db, redis://:PASSWORD@host) as ***.
masked_output() {
  local re='^([A-Za-z0-9+.-]+://[^:/@]*):[^@/]*@(.*)$'
  if [[ "$1" =~ $re ]]; then echo "${BASH_REMATCH[1]}:***@${BASH_REMATCH[2]}"; else echo "$1"; fi
}

banner() { # $1: what the data comes from
  local db
  db="$(where)"
  echo "================================================================"
  echo " blockpipe: indexing $1"
  echo " output:    $(masked_output "$OUT")"
  echo " dashboard: http://$API/  (open it in a browser: the chain moving, live)"
  echo " API:       http://$API/  (status: http://$API/api/sync-status, metrics: http://$API/metrics,"
  echo "            blocks: http://$API/api/blocks, live: http://$API/api/events?topics=blocks)"
  if [ -n "$db" ]; then
    echo " look at it (from another terminal):"
    echo "   sqlite3 $db 'select count(*) from blocks'"
    echo "   sqlite3 $db 'select number, transaction_count, gas_used from blocks order by number desc limit 5'"
    echo "   sqlite3 -header $db 'select * from chain_metrics_1m_v order by timestamp desc limit 5'"
    echo "   (the analytics per minute; docs/SCHEMA.md's examples filter on origin_key, the chain's name:"
    echo "   \$CHAIN, else its chain id, 31337 for the devnet)"
  fi
  echo " stop:      Ctrl-C"
  echo "================================================================"
}

# A provider's URL often carries its key (https://host/v2/KEY, ?apikey=KEY, user:pass@):
# the banner shows the scheme and host only, as blockpipe's own logs mask the rest.
masked_url() {
  local url="$1" scheme="" rest host
  if [[ "$url" == *://* ]]; then scheme="${url%%://*}://"; rest="${url#*://}"; else rest="$url"; fi
  host="${rest%%[/?#]*}"
  host="${host##*@}"
  rest="${rest#"${rest%%[/?#]*}"}"
  if [ -n "$rest" ] && [ "$rest" != "/" ]; then echo "$scheme$host/***"; else echo "$scheme$host"; fi
}

if [ -n "${RPC_URL:-}" ]; then
  banner "$(masked_url "$RPC_URL")"
  exec "$BIN" run --rpc "$RPC_URL" --output "$OUT" --stats-interval "$STATS" --api "$API"
fi

if [ ! -x "$ANVIL" ]; then
  echo "run.sh: anvil not found at $ANVIL; install it with: make deps" >&2
  exit 1
fi

# A new devnet has the same chain id (31337) but other blocks than the one an output already
# holds: blockpipe would wait under that output's checkpoint for a chain that never comes.
# So the chain is kept beside the output, and an output whose chain was not kept is refused.
DB="$(where)"
STATE="${ANVIL_STATE:-${DB:+$DB.anvil.json}}"
STATE="${STATE:-$ROOT/anvil-state.json}"
if [ -n "$DB" ] && [ -s "$DB" ] && [ ! -s "$STATE" ]; then
  echo "run.sh: $DB holds blocks, but no devnet chain was kept beside it ($STATE is missing):" >&2
  echo "run.sh: a new devnet's blocks differ from them. Remove $DB (and $DB-wal, $DB-shm) to" >&2
  echo "run.sh: start afresh, or give another output: OUTPUT=sqlite:other.db make run" >&2
  exit 1
fi

TMP="$(mktemp -d -t blockpipe-run.XXXXXX)"
ANVIL_PID="" TRAFFIC_PID="" BP_PID="" STOPPING=0

cleanup() {
  local pid
  for pid in "$TRAFFIC_PID" "$ANVIL_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "$TRAFFIC_PID" "$ANVIL_PID"; do
    if [ -n "$pid" ]; then
      # (anvil writes its --state file before it exits)
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# Each helper runs in its own session (setsid), so Ctrl-C reaches only this script, which
# then stops them in order: blockpipe first (SIGINT, once), then traffic and anvil.
if [ -s "$STATE" ]; then
  echo "run.sh: starting anvil (--block-time 1) on a free 127.0.0.1 port, resuming the chain kept in $STATE; log: $TMP/anvil.log"
else
  echo "run.sh: starting anvil (--block-time 1) on a free 127.0.0.1 port, a new chain kept in $STATE; log: $TMP/anvil.log"
fi
# (anvil writes the state when it stops: cleanup's SIGTERM)
setsid "$ANVIL" --host 127.0.0.1 --port 0 --block-time 1 --order fifo --state "$STATE" \
  >"$TMP/anvil.log" 2>&1 </dev/null &
ANVIL_PID=$!
PORT=""
for _ in $(seq 300); do
  PORT="$(grep -o 'Listening on 127\.0\.0\.1:[0-9]*' "$TMP/anvil.log" 2>/dev/null | head -n1 | cut -d: -f2 || true)"
  [ -n "$PORT" ] && break
  kill -0 "$ANVIL_PID" 2>/dev/null || { echo "run.sh: anvil exited:" >&2; tail -n 20 "$TMP/anvil.log" >&2; exit 1; }
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "run.sh: anvil did not start listening within 30 s:" >&2
  tail -n 20 "$TMP/anvil.log" >&2
  exit 1
fi
URL="http://127.0.0.1:$PORT"

echo "run.sh: starting the traffic generator (tests/tools/traffic.py); log: $TMP/traffic.log"
setsid python3 "$ROOT/tests/tools/traffic.py" --rpc "$URL" >"$TMP/traffic.log" 2>&1 </dev/null &
TRAFFIC_PID=$!

banner "a local anvil dev chain at $URL (a block every second, txs from traffic.py; heads over ws://${URL#http://})"

stop_blockpipe() {
  if [ "$STOPPING" = 0 ] && [ -n "$BP_PID" ]; then
    STOPPING=1
    kill -INT "$BP_PID" 2>/dev/null || true
  fi
}
trap stop_blockpipe INT TERM

# anvil serves WebSocket on its HTTP port: new heads arrive over the socket (real time),
# HTTP polling is the fallback.
setsid "$BIN" run --rpc "$URL" --ws "ws://${URL#http://}" --output "$OUT" \
  --stats-interval "$STATS" --api "$API" </dev/null &
BP_PID=$!
set +e
# `wait` returns early (>128) when a trapped signal interrupts it: wait until blockpipe is
# gone, then once more for its own exit status (bash keeps it).
while kill -0 "$BP_PID" 2>/dev/null; do wait "$BP_PID"; done
wait "$BP_PID"
rc=$?
set -e
if [ "$STOPPING" = 1 ]; then
  echo "run.sh: blockpipe stopped (exit $rc); stopping traffic and anvil"
fi
exit "$rc"
