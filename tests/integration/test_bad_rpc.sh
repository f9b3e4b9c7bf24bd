#!/usr/bin/env bash
# test_bad_rpc.sh - backfill through a proxy that injects every fault kind; the result must be exact.
#
# anvil gets 30 mined blocks of transactions; tests/tools/faultproxy.py sits in front of it
# and breaks every 3rd request (garbage, truncated JSON, HTTP 500, hang past the client
# timeout, 429 with Retry-After, connection reset). `blockpipe backfill` must still exit 0,
# say what went wrong on stderr, and the SQLite output must hold blocks 0..30 with anvil's
# hashes and transaction counts. Needs: BLOCKPIPE, BP_SOURCE_DIR, BP_ANVIL, python3.
set -euo pipefail

: "${BLOCKPIPE:?BLOCKPIPE must point at the blockpipe binary}"
: "${BP_SOURCE_DIR:?}"
ANVIL="${BP_ANVIL:-$BP_SOURCE_DIR/.local/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}"
if [[ ! -x "$ANVIL" ]]; then
    echo "anvil not found at $ANVIL (run scripts/install-deps.sh)" >&2
    exit 1
fi
LAST=30

TMP=$(mktemp -d /tmp/bp_bad_rpc.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# wait_for FILE PATTERN PID: prints the port that follows PATTERN in FILE.
wait_for() {
    local file=$1 pattern=$2 pid=$3 port
    for _ in $(seq 1 300); do
        port=$(grep -o "$pattern[0-9]*" "$file" 2>/dev/null | head -n 1 | sed "s/$pattern//") || true
        if [[ -n "$port" ]]; then
            echo "$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not start; its output:" >&2
    cat "$file" >&2
    return 1
}

(cd "$TMP" && exec "$ANVIL" --host 127.0.0.1 --port 0) >"$TMP/anvil.log" 2>&1 &
PIDS+=($!)
ANVIL_PORT=$(wait_for "$TMP/anvil.log" "Listening on 127.0.0.1:" "${PIDS[-1]}")
ANVIL_URL="http://127.0.0.1:$ANVIL_PORT"

# Workload: blocks 1..LAST, each with (n mod 5) transfers mined together (some empty).
python3 - "$ANVIL_URL" "$LAST" <<'PY'
import json, sys, urllib.request
url, last = sys.argv[1], int(sys.argv[2])
DEV = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
TO = ["0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"]
def call(method, params):
    req = urllib.request.Request(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": params}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        ans = json.loads(r.read())
    if ans.get("error"):
        sys.exit(f"{method}: {ans['error']}")
    return ans["result"]
call("evm_setAutomine", [False])
for n in range(1, last + 1):
    for i in range(n % 5):
        call("eth_sendTransaction", [{"from": DEV, "to": TO[i % 2], "value": hex(n * 1000 + i)}])
    call("evm_mine", [])
head = int(call("eth_blockNumber", []), 16)
assert head == last, f"anvil head is {head}, wanted {last}"
PY

python3 "$BP_SOURCE_DIR/tests/tools/faultproxy.py" --upstream "$ANVIL_URL" \
    --faults garbage,truncate,http500,hang,429,reset,ok,ok --every 3 --hang-seconds 10 \
    --stats-file "$TMP/faults.json" >"$TMP/proxy.log" 2>&1 &
PIDS+=($!)
PROXY_PORT=$(wait_for "$TMP/proxy.log" "PORT " "${PIDS[-1]}")

rc=0
timeout 300 "$BLOCKPIPE" backfill --rpc "http://127.0.0.1:$PROXY_PORT" --from 0 --to "$LAST" \
    --output "sqlite:$TMP/db.sqlite" --workers 4 --max-retries 50 --rpc-timeout 3 \
    2>"$TMP/stderr.txt" || rc=$?

fail() {
    echo "FAIL: $*"
    echo "--- faults injected: $(cat "$TMP/faults.json" 2>/dev/null)"
    echo "--- blockpipe stderr (last 40 lines):"
    tail -n 40 "$TMP/stderr.txt"
    exit 1
}

[[ $rc -eq 0 ]] || fail "blockpipe backfill exited $rc"
grep -q "HTTP 500" "$TMP/stderr.txt" || fail "stderr does not mention \"HTTP 500\""
grep -q "timed out" "$TMP/stderr.txt" || fail "stderr does not mention \"timed out\""
grep -q "429" "$TMP/stderr.txt" || fail "stderr does not mention the HTTP 429"

python3 - "$ANVIL_URL" "$LAST" "$TMP/db.sqlite" "$TMP/faults.json" <<'PY' || fail "output check"
import json, sqlite3, sys, urllib.request
url, last, db, stats = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

faults = json.load(open(stats))
missing = [k for k in ("garbage", "truncate", "http500", "hang", "429", "reset") if faults[k] < 1]
if missing:
    sys.exit(f"the proxy never injected: {missing} ({faults}); the test proved nothing")

def block(n):
    req = urllib.request.Request(url, json.dumps({"jsonrpc": "2.0", "id": 1,
        "method": "eth_getBlockByNumber", "params": [hex(n), False]}).encode(),
        {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["result"]

con = sqlite3.connect(db)
rows = con.execute("SELECT number, hash, transaction_count FROM blocks ORDER BY number").fetchall()
numbers = [r[0] for r in rows]
if numbers != list(range(last + 1)):
    sys.exit(f"blocks table holds {numbers}, wanted 0..{last} once each")
txs = dict(con.execute("SELECT block_number, COUNT(*) FROM transactions GROUP BY block_number"))
bad = []
for number, h, count in rows:
    b = block(number)
    if h != b["hash"]:
        bad.append(f"block {number}: hash {h}, anvil has {b['hash']}")
    if count != len(b["transactions"]) or txs.get(number, 0) != count:
        bad.append(f"block {number}: transaction_count {count}, {txs.get(number, 0)} tx rows, "
                   f"anvil has {len(b['transactions'])}")
if bad:
    sys.exit("\n".join(bad))
print(f"ok: blocks 0..{last} match anvil; {sum(txs.values())} transactions; faults {faults}")
PY
grep -h "backfill done" "$TMP/stderr.txt" || true
