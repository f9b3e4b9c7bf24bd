#!/usr/bin/env bash
# test_etl_csv.sh - `blockpipe backfill --output etl-csv:` against ethereum-etl's recorded mainnet cases.
#
# Each case folder is served by tests/tools/replay_server.py; the CSVs blockpipe writes are
# compared with the case's expected_*.csv as sets of lines (\r and order ignored, as
# ethereum-etl's own tests do). The stream case only has enriched JSON-lines expectations:
# they are converted to the CSV columns (blocks, transactions, receipts from the receipt_*
# fields, logs) and compared cell by cell; its token_transfers are not compared (etl-csv
# has no token transfer file). Needs: BLOCKPIPE, BP_SOURCE_DIR, BP_CONFORMANCE_DIR, python3.
set -euo pipefail

: "${BLOCKPIPE:?BLOCKPIPE must point at the blockpipe binary}"
: "${BP_SOURCE_DIR:?}"
: "${BP_CONFORMANCE_DIR:?}"
ETL="$BP_CONFORMANCE_DIR/ethereum-etl"
TOOLS="$BP_SOURCE_DIR/tests/tools"

TMP=$(mktemp -d /tmp/bp_etl_csv.XXXXXX)
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Starts the replay server on the given folder(s); sets SERVER_PID and PORT.
start_replay() {
    local out="$TMP/replay.out"
    : >"$TMP/requests.jsonl"
    # Emptied here, not only by the redirection below: the background job may truncate it
    # after the first read, which would then find the previous server's port.
    : >"$out"
    python3 "$TOOLS/replay_server.py" "$@" --request-log "$TMP/requests.jsonl" >"$out" 2>&1 &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 1 100); do
        PORT=$(awk '/^PORT /{print $2; exit}' "$out")
        [[ -n "$PORT" ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "replay_server did not start:" >&2
    cat "$out" >&2
    exit 1
}

stop_replay() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# Python comparator: compare.py csv EXPECTED_DIR OUT_DIR | compare.py stream EXPECTED_DIR OUT_DIR
cat >"$TMP/compare.py" <<'PY'
import csv, glob, io, json, os, sys

COLUMNS = {
    "blocks": "number,hash,parent_hash,nonce,sha3_uncles,logs_bloom,transactions_root,state_root,"
              "receipts_root,miner,difficulty,total_difficulty,size,extra_data,gas_limit,gas_used,"
              "timestamp,transaction_count,base_fee_per_gas,withdrawals_root,withdrawals",
    "transactions": "hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,"
                    "value,gas,gas_price,input,block_timestamp,max_fee_per_gas,"
                    "max_priority_fee_per_gas,transaction_type",
    "receipts": "transaction_hash,transaction_index,block_hash,block_number,cumulative_gas_used,"
                "gas_used,contract_address,root,status,effective_gas_price,l1_fee,l1_gas_used,"
                "l1_gas_price,l1_fee_scalar",
    "logs": "log_index,transaction_hash,transaction_index,block_hash,block_number,address,data,topics",
}


def produced_files(out_dir, entity):
    """Our CSV for an entity: DIR/<entity>.csv, else any <entity>*.csv below DIR."""
    exact = os.path.join(out_dir, entity + ".csv")
    if os.path.exists(exact):
        return [exact]
    return sorted(glob.glob(os.path.join(out_dir, "**", entity + "*.csv"), recursive=True))


def read_lines(paths):
    lines = []
    for p in paths:
        with open(p, encoding="utf-8", newline="") as f:
            lines += [l.rstrip("\r\n") for l in f.read().replace("\r", "").split("\n")]
    return [l for l in lines if l != ""]


def report(entity, missing, extra, what="lines"):
    print(f"--- {entity}: {len(missing)} expected {what} missing, {len(extra)} unexpected")
    for l in sorted(missing):
        print(f"  - expected: {l}")
    for l in sorted(extra):
        print(f"  + produced: {l}")


def duplicates(lines, header):
    seen, dups = set(), []
    for l in lines:
        if l in seen and l != header:
            dups.append(l)
        seen.add(l)
    return dups


def compare_csv(case_dir, out_dir):
    ok, compared = True, 0
    for exp in sorted(glob.glob(os.path.join(case_dir, "expected_*.csv"))):
        entity = os.path.basename(exp)[len("expected_"):-len(".csv")]
        want = read_lines([exp])
        paths = produced_files(out_dir, entity)
        got = read_lines(paths)
        compared += 1
        if not want:
            if got:
                print(f"--- {entity}: expected no rows and no header, produced {paths}:")
                print("\n".join("  + " + l for l in got))
                ok = False
            else:
                print(f"ok   {entity}: no rows, no header (file empty or absent)")
            continue
        if not paths:
            print(f"--- {entity}: no {entity}.csv produced; files in output: "
                  f"{sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else 'none'}")
            ok = False
            continue
        dups = duplicates(got, want[0])
        if dups:
            print(f"--- {entity}: rows written more than once: {dups}")
            ok = False
        missing, extra = set(want) - set(got), set(got) - set(want)
        if missing or extra:
            report(entity, missing, extra)
            ok = False
        else:
            print(f"ok   {entity}: {len(want) - 1} rows")
    if compared == 0:
        print(f"no expected_*.csv in {case_dir}")
        return False
    return ok


def cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return ",".join(v)
        return ",".join(json.dumps(x, separators=(",", ":")) for x in v)
    return str(v)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def expected_from_stream(case_dir, entity):
    """Rows (dicts of CSV cells) that the stream JSON implies for an entity."""
    cols = COLUMNS[entity].split(",")
    if entity == "receipts":
        rows = []
        for t in load_jsonl(os.path.join(case_dir, "expected_transactions.json")):
            r = {"transaction_hash": t["hash"], "transaction_index": t["transaction_index"],
                 "block_hash": t["block_hash"], "block_number": t["block_number"]}
            for c in cols[4:]:
                r[c] = t.get("receipt_" + c)
            rows.append(r)
    else:
        rows = load_jsonl(os.path.join(case_dir, f"expected_{entity}.json"))
    return [{c: cell(r.get(c)) for c in cols} for r in rows]


def key_of(entity, row):
    return row["hash"] if entity in ("blocks", "transactions") else (
        row["transaction_hash"] if entity == "receipts" else (row["transaction_hash"], row["log_index"]))


def compare_stream(case_dir, out_dir):
    ok = True
    for entity, cols in COLUMNS.items():
        cols = cols.split(",")
        want = expected_from_stream(case_dir, entity)
        paths = produced_files(out_dir, entity)
        text = "\n".join(read_lines(paths))
        got = list(csv.DictReader(io.StringIO(text))) if text else []
        if paths and text and text.split("\n", 1)[0] != ",".join(cols):
            print(f"--- {entity}: header differs:\n  - expected: {','.join(cols)}\n"
                  f"  + produced: {text.splitlines()[0]}")
            ok = False
            continue
        if not want and not got:
            print(f"ok   {entity}: 0 rows")
            continue
        got_by = {key_of(entity, r): r for r in got}
        want_by = {key_of(entity, r): r for r in want}
        bad = []
        for k in sorted(set(want_by) | set(got_by), key=str):
            w, g = want_by.get(k), got_by.get(k)
            if w is None or g is None:
                bad.append(f"  {'+ produced only' if w is None else '- expected only'}: {k}")
                continue
            for c in cols:
                if w[c] != (g.get(c) or ""):
                    bad.append(f"  {k} {c}: expected {w[c]!r}, produced {g.get(c)!r}")
        if len(got) != len(got_by):
            bad.append(f"  {len(got) - len(got_by)} rows written more than once")
        if bad:
            print(f"--- {entity}: differs from the stream JSON")
            print("\n".join(bad))
            ok = False
        else:
            print(f"ok   {entity}: {len(want)} rows (from stream JSON)")
    return ok


mode, case_dir, out_dir = sys.argv[1:4]
sys.exit(0 if (compare_csv if mode == "csv" else compare_stream)(case_dir, out_dir) else 1)
PY

FAILED=()

# run_case NAME MODE FROM TO FETCH FOLDER... : serve, backfill, compare.
run_case() {
    local name=$1 mode=$2 from=$3 to=$4 fetch=$5
    shift 5
    local expected=$1 out="$TMP/out_${name//\//_}"
    echo "=== $name (blocks $from..$to, --fetch $fetch)"
    start_replay "$@"
    local rc=0
    timeout 120 "$BLOCKPIPE" backfill --rpc "http://127.0.0.1:$PORT" --from "$from" --to "$to" \
        --fetch "$fetch" --output "etl-csv:$out" --workers 2 --max-retries 2 --rpc-timeout 10 \
        --log-level warn 2>"$TMP/stderr.txt" || rc=$?
    stop_replay
    if [[ $rc -ne 0 ]]; then
        echo "FAIL $name: blockpipe backfill exited $rc; stderr:"
        tail -n 30 "$TMP/stderr.txt"
        echo "requests that found no recording:"
        grep '"found": false' "$TMP/requests.jsonl" | head -n 10 || true
        FAILED+=("$name")
        return
    fi
    if ! python3 "$TMP/compare.py" "$mode" "$expected" "$out"; then
        echo "FAIL $name (differences above); last lines of blockpipe stderr:"
        tail -n 10 "$TMP/stderr.txt"
        FAILED+=("$name")
    fi
}

BLOCKS=blocks,transactions
ALL=blocks,transactions,receipts,logs

# Export jobs with only block answers recorded: ethereum-etl exports them without receipts.
run_case export_blocks_job/block_without_transactions csv 0 0 $BLOCKS \
    "$ETL/export_blocks_job/block_without_transactions"
run_case export_blocks_job/block_with_logs csv 483920 483920 $BLOCKS \
    "$ETL/export_blocks_job/block_with_logs"
run_case export_blocks_job/blocks_with_transactions csv 47218 47219 $BLOCKS \
    "$ETL/export_blocks_job/blocks_with_transactions"

# The receipts case has the receipts of block 483920 but not the block: it is the block of
# export_blocks_job/block_with_logs, so both folders are served and all four files compared.
MERGED="$TMP/receipts_with_logs_expected"
mkdir -p "$MERGED"
cp "$ETL/export_receipts_job/receipts_with_logs"/expected_*.csv "$MERGED/"
cp "$ETL/export_blocks_job/block_with_logs"/expected_*.csv "$MERGED/"
run_case export_receipts_job/receipts_with_logs csv 483920 483920 $ALL "$MERGED" \
    "$ETL/export_receipts_job/receipts_with_logs" "$ETL/export_blocks_job/block_with_logs"

run_case stream/blocks_1755634_1755635 stream 1755634 1755635 $ALL \
    "$ETL/stream/blocks_1755634_1755635"

if [[ ${#FAILED[@]} -ne 0 ]]; then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all ethereum-etl cases match"
