"""Chain-family fixtures through decoding into every output, each L2 column against the fixture.

Each folder of tests/fixtures/chains (OP stack, Arbitrum, zkSync Era, Polygon PoS, Ethereum
Prague and pre-Byzantium: answers built from the chains' specifications and client sources,
cited in its README) is served by tests/tools/replay_server.py and backfilled at once into
SQLite, PostgreSQL, ClickHouse (a real clickhouse-server), Redis (redis-server), Kafka
(librdkafka's mock cluster), JSON lines and etl-csv. Then every row of every output is read
back and each column the chain families add is compared with the fixture's JSON, not with
values written here: OP deposits (source_hash, mint, is_system_tx) and the receipts' L1 fee
fields, Arbitrum's gasUsedForL1 and l1BlockNumber, blob and set-code fields, pre-Byzantium
root without status, Polygon's state-sync receipt stored as a transaction of its own, and
the `extra` JSON of blocks, transactions, receipts and logs (the object's keys the decoder
does not model, their values exactly as the node sent them). Every row must be there once.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ["BP_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SRC, "tests", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from kafka import KafkaMock, committed  # noqa: E402
from pg import Postgres  # noqa: E402
from redis import Redis, entries  # noqa: E402

FIXTURES = os.path.join(SRC, "tests", "fixtures", "chains")
FAMILIES = ["op-stack", "arbitrum", "zksync", "polygon-pos", "ethereum", "ethereum-frontier"]
ZERO = "0x" + "00" * 20

# The keys the decoder models (src/chain/decode.c): every other key of the node's object is
# kept in `extra` (receipts: `receipt_extra`), as the node sent it; a null counts as absent
# (zkSync's logs send "logType": null), as it does for the modelled keys.
BLOCK_KEYS = {"transactions", "uncles", "withdrawals", "number", "hash", "parentHash", "nonce",
              "sha3Uncles", "logsBloom", "transactionsRoot", "stateRoot", "receiptsRoot",
              "miner", "mixHash", "difficulty", "totalDifficulty", "size", "extraData",
              "gasLimit", "gasUsed", "timestamp", "baseFeePerGas", "withdrawalsRoot",
              "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash"}
TX_KEYS = {"blockHash", "blockNumber", "transactionIndex", "hash", "from", "to", "nonce", "gas",
           "value", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas",
           "type", "chainId", "input", "v", "r", "s", "yParity", "accessList",
           "blobVersionedHashes", "authorizationList", "sourceHash", "mint", "isSystemTx",
           "depositReceiptVersion", "blockTimestamp"}
RECEIPT_KEYS = {"logs", "transactionHash", "blockHash", "transactionIndex", "blockNumber",
                "cumulativeGasUsed", "gasUsed", "contractAddress", "root", "status",
                "effectiveGasPrice", "blobGasUsed", "blobGasPrice", "logsBloom", "from", "to",
                "type", "blockTimestamp", "l1Fee", "l1GasUsed", "l1GasPrice", "l1BlobBaseFee",
                "l1FeeScalar", "l1BaseFeeScalar", "l1BlobBaseFeeScalar", "depositNonce",
                "depositReceiptVersion", "gasUsedForL1", "l1BlockNumber"}
LOG_KEYS = {"topics", "transactionHash", "transactionIndex", "blockHash", "blockNumber",
            "logIndex", "address", "data", "removed", "blockTimestamp"}


def extra(obj, known):
    rest = {k: v for k, v in obj.items() if k not in known and v is not None}
    return rest or None


# column -> (kind, the fixture's value from (block,) / (block, tx, receipt) / (block, log)).
# kinds: hex, int (any size), bool, text (kept as sent), json (exactly the node's JSON).
BLOCK_COLS = {
    "hash": ("hex", lambda b: b["hash"]),
    "transaction_count": ("int", lambda b: hex(len(b["transactions"]))),
    "blob_gas_used": ("int", lambda b: b.get("blobGasUsed")),
    "excess_blob_gas": ("int", lambda b: b.get("excessBlobGas")),
    "parent_beacon_block_root": ("hex", lambda b: b.get("parentBeaconBlockRoot")),
    "requests_hash": ("hex", lambda b: b.get("requestsHash")),
    "extra": ("json", lambda b: extra(b, BLOCK_KEYS)),
}
TX_COLS = {
    "transaction_index": ("int", lambda b, t, r: r["transactionIndex"]),
    "from_address": ("hex", lambda b, t, r: t["from"] if t else ZERO),
    "to_address": ("hex", lambda b, t, r: t.get("to") if t else ZERO),
    "transaction_type": ("int", lambda b, t, r: t.get("type") if t else "0x7f"),
    "source_hash": ("hex", lambda b, t, r: (t or {}).get("sourceHash")),
    "mint": ("int", lambda b, t, r: (t or {}).get("mint")),
    "is_system_tx": ("bool", lambda b, t, r: (t or {}).get("isSystemTx")),
    "max_fee_per_blob_gas": ("int", lambda b, t, r: (t or {}).get("maxFeePerBlobGas")),
    "blob_versioned_hashes": ("json", lambda b, t, r: (t or {}).get("blobVersionedHashes")),
    "authorization_list": ("json", lambda b, t, r: (t or {}).get("authorizationList")),
    "extra": ("json", lambda b, t, r: extra(t, TX_KEYS) if t else None),
    "receipt_gas_used": ("int", lambda b, t, r: r["gasUsed"]),
    "receipt_root": ("hex", lambda b, t, r: r.get("root")),
    "receipt_status": ("int", lambda b, t, r: r.get("status")),
    "receipt_blob_gas_used": ("int", lambda b, t, r: r.get("blobGasUsed")),
    "receipt_blob_gas_price": ("int", lambda b, t, r: r.get("blobGasPrice")),
    "receipt_l1_fee": ("int", lambda b, t, r: r.get("l1Fee")),
    "receipt_l1_gas_used": ("int", lambda b, t, r: r.get("l1GasUsed")),
    "receipt_l1_gas_price": ("int", lambda b, t, r: r.get("l1GasPrice")),
    "receipt_l1_fee_scalar": ("text", lambda b, t, r: r.get("l1FeeScalar")),
    "receipt_l1_blob_base_fee": ("int", lambda b, t, r: r.get("l1BlobBaseFee")),
    "receipt_l1_base_fee_scalar": ("int", lambda b, t, r: r.get("l1BaseFeeScalar")),
    "receipt_l1_blob_base_fee_scalar": ("int", lambda b, t, r: r.get("l1BlobBaseFeeScalar")),
    "receipt_deposit_nonce": ("int", lambda b, t, r: r.get("depositNonce")),
    "receipt_deposit_receipt_version": ("int", lambda b, t, r: r.get("depositReceiptVersion")),
    "receipt_gas_used_for_l1": ("int", lambda b, t, r: r.get("gasUsedForL1")),
    "receipt_l1_block_number": ("int", lambda b, t, r: r.get("l1BlockNumber")),
    "receipt_extra": ("json", lambda b, t, r: extra(r, RECEIPT_KEYS)),
}
LOG_COLS = {
    "transaction_hash": ("hex", lambda b, lg: lg["transactionHash"]),
    "transaction_index": ("int", lambda b, lg: lg["transactionIndex"]),
    "address": ("hex", lambda b, lg: lg["address"]),
    "extra": ("json", lambda b, lg: extra(lg, LOG_KEYS)),
}
COLS = {"blocks": BLOCK_COLS, "transactions": TX_COLS, "logs": LOG_COLS}

# The file formats are ethereum-etl's: the JSON lines lack the blob and set-code keys (the L2
# keys follow ethereum-etl's, written only when set); etl-csv has only ethereum-etl's columns,
# the L1 fee ones in receipts.csv under their etl names.
JSONL_LACKS = {"blob_gas_used", "excess_blob_gas", "parent_beacon_block_root", "requests_hash",
               "max_fee_per_blob_gas", "blob_versioned_hashes", "authorization_list",
               "receipt_blob_gas_used", "receipt_blob_gas_price", "receipt_logs_bloom"}
CSV_TX = {"hash", "transaction_index", "from_address", "to_address", "transaction_type"}
CSV_RECEIPT = {"receipt_gas_used": "gas_used", "receipt_root": "root",
               "receipt_status": "status", "receipt_l1_fee": "l1_fee",
               "receipt_l1_gas_used": "l1_gas_used", "receipt_l1_gas_price": "l1_gas_price",
               "receipt_l1_fee_scalar": "l1_fee_scalar"}
CSV_BLOCK = {"hash", "transaction_count"}
CSV_LOG = {"transaction_hash", "transaction_index", "address"}


class Fail(AssertionError):
    pass


# --- the fixture -------------------------------------------------------------------------

def answer(folder, name):
    with open(os.path.join(folder, f"web3_response.{name}.json")) as f:
        return json.load(f)["result"]


def fixture(family):
    """(chain id, first and last block, {table: {key: context}}): what every output must hold.
    Transactions are keyed by hash, with their receipt; a receipt the block does not list
    (Polygon's state sync) has no tx (None)."""
    folder = os.path.join(FIXTURES, family)
    chain_id = int(answer(folder, "eth_chainId_"), 16)
    blocks, txs, logs = {}, {}, {}
    names = sorted(n for n in os.listdir(folder) if n.startswith("web3_response.eth_getBlockBy"))
    for name in names:
        b = answer(folder, name[len("web3_response."):-len(".json")])
        n = int(b["number"], 16)
        blocks[n] = (b,)
        listed = {t["hash"]: t for t in b["transactions"]}
        for r in answer(folder, f"eth_getBlockReceipts_{b['number']}"):
            txs[r["transactionHash"]] = (b, listed.pop(r["transactionHash"], None), r)
            for lg in r["logs"]:
                logs[(n, int(lg["logIndex"], 16))] = (b, lg)
        if listed:
            raise Fail(f"{family}: block {n} lists txs without receipts: {list(listed)}")
    return chain_id, (min(blocks), max(blocks)), {"blocks": blocks, "transactions": txs,
                                                    "logs": logs}


def want(kind, v):
    """The fixture's value in the form the comparison uses."""
    if v is None:
        return None
    if kind == "hex":
        return v.lower()
    if kind == "int":
        return int(v, 16) if isinstance(v, str) else int(v)
    return v  # bool, text, json: as the node sent it


# --- stored cells -> the same form ---------------------------------------------------------

def digits(v):
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.isdigit() and (v == "0" or v[0] != "0"):
        return int(v)
    raise ValueError("not an integer or its decimal digits")


def got(out, kind, v):
    """A cell as `out` stores it -> the comparison form; a cell in a form that output must not
    use raises ValueError (a JSON output writing a bool as 0, JSON text that is not compact)."""
    if v is None or (v == "" and out == "etl-csv"):
        return None
    if kind == "hex":
        if out == "postgres" and isinstance(v, str) and v.startswith("\\x"):
            return "0x" + v[2:]
        if isinstance(v, str) and v.startswith("0x") and v == v.lower():
            return v
        raise ValueError("not lower-case 0x-hex")
    if kind == "int":
        return digits(v)
    if kind == "bool":
        # JSON outputs: true / false; SQLite and ClickHouse 0 / 1; PostgreSQL boolean
        if isinstance(v, bool):
            return v
        if out in ("sqlite", "clickhouse") and v in (0, 1, "0", "1"):
            return v in (1, "1")
        raise ValueError("not a boolean")
    if kind == "text":
        if isinstance(v, str):
            return v
        raise ValueError("not text")
    if kind == "json":
        if out in ("sqlite", "clickhouse"):
            parsed = json.loads(v)
            if json.dumps(parsed, separators=(",", ":"), ensure_ascii=False) != v:
                raise ValueError("not compact JSON text")
            return parsed
        if isinstance(v, str):
            raise ValueError("JSON as a string, not nested JSON")
        return v
    raise ValueError(kind)


def compare(out, family, table, rows, expect, cols, failures):
    """rows: {key: {column: cell}} of one output; expect: the fixture's {key: context}."""
    if set(rows) != set(expect):
        failures.append(f"{family}: {out}: {table}: rows {sorted(rows, key=str)}, the fixture "
                        f"has {sorted(expect, key=str)}")
        return 0
    n = 0
    for key, ctx in expect.items():
        for col, (kind, get) in cols.items():
            if col not in rows[key]:
                failures.append(f"{family}: {out}: {table} {key}: no column {col}")
                continue
            cell = rows[key][col]
            exp = want(kind, get(*ctx))
            try:
                v = got(out, kind, cell)
            except (ValueError, TypeError) as e:
                failures.append(f"{family}: {out}: {table} {key}: {col} = {cell!r}: {e} "
                                f"(a {kind} column; the fixture says {exp!r})")
                continue
            n += 1
            if v != exp:
                failures.append(f"{family}: {out}: {table} {key}: {col} = {cell!r}, the "
                                f"fixture says {exp!r}")
    return n


def keyed(out, family, table, rows, failures):
    """[{col: cell}] -> {key: row}; the key as the fixture's context keys it."""
    res = {}
    for r in rows:
        if table == "blocks":
            k = digits(r["number"])
        elif table == "transactions":
            k = got(out, "hex", r["hash"])
        else:
            k = (digits(r["block_number"]), digits(r["log_index"]))
        if k in res:
            failures.append(f"{family}: {out}: {table}: row {k} twice")
        res[k] = r
    return res


# --- each output's rows --------------------------------------------------------------------

def sqlite_rows(db):
    import sqlite3
    con = sqlite3.connect(db)
    try:
        out = {}
        for t in COLS:
            cur = con.execute(f"SELECT * FROM {t}")
            names = [d[0] for d in cur.description]
            out[t] = [dict(zip(names, r)) for r in cur]
        return out
    finally:
        con.close()


def pg_rows(pg, schema):
    out = {}
    for t in COLS:
        rows = pg.sql(f"SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM {schema}.{t} x")
        out[t] = json.loads(rows[0][0])
    return out


def ch_rows(ch, db):
    """Every column as text; FixedString and String hashes as 0x-hex (what lower(hex()) of the
    bytes gives), the rest as TabSeparated writes them."""
    out = {}
    for t, cols in COLS.items():
        types = dict(ch.sql(f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                            f"AND table = '{t}'"))
        names = [c for c in ["number", "block_number", "log_index", "hash"] + list(cols)
                 if c in types]
        names = list(dict.fromkeys(names))
        sel = []
        for c in names:
            kind = cols.get(c, ("hex" if c == "hash" else "int",))[0]
            if kind == "hex":
                sel.append(f"if(isNull({c}), NULL, concat('0x', lower(hex({c}))))")
            else:
                sel.append(c)
        rows = ch.sql(f"SELECT {', '.join(sel)} FROM {t} FINAL", db)
        out[t] = [dict(zip(names, r)) for r in rows]
        out[t + ":types"] = types
    return out


def stream_rows(records, family, out, failures):
    """Stream messages (Redis entries' fields or Kafka values) -> rows by table."""
    res = {t: [] for t in COLS}
    for table, msg in records:
        if msg["type"] != "apply":
            failures.append(f"{family}: {out}: a {msg['type']} message in a backfill")
            continue
        res[table].append(msg["data"])
    return res


def redis_rows(r, prefix, chain):
    recs = []
    for t in COLS:
        for _, fields in entries(r.call("XRANGE", f"{prefix}{t}:{chain}", "-", "+")):
            recs.append((t, {"type": fields["type"], "data": json.loads(fields["data"])}))
    return recs


def kafka_rows(k, prefix):
    recs = []
    for t in COLS:
        for rec in committed(k, k.consume(prefix + t), prefix):
            recs.append((t, rec["value"]))
    return recs


def jsonl_rows(d):
    out = {}
    for t in COLS:
        with open(os.path.join(d, f"{t}.jsonl")) as f:
            out[t] = [o for o in map(json.loads, f) if o.get("type") != "revert"]
    return out


def csv_rows(d):
    def read(name):
        with open(os.path.join(d, name), newline="") as f:
            return list(csv.DictReader(f))
    receipts = {r["transaction_hash"]: r for r in read("receipts.csv")}
    txs = []
    for t in read("transactions.csv"):
        r = receipts.pop(t["hash"], None)
        if r is None:
            raise Fail(f"etl-csv: receipts.csv has no row for {t['hash']}")
        t.update({col: r[etl] for col, etl in CSV_RECEIPT.items()})
        txs.append(t)
    if receipts:
        raise Fail(f"etl-csv: receipts without a transactions.csv row: {list(receipts)}")
    return {"blocks": read("blocks.csv"), "transactions": txs, "logs": read("logs.csv")}


# --- one family ----------------------------------------------------------------------------

def run(args, what):
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise Fail(f"{what}: {' '.join(args)} exited {p.returncode}\n{p.stderr[-3000:]}")


def start_replay(folder, head, chain_id):
    p = subprocess.Popen([sys.executable, os.path.join(SRC, "tests", "tools", "replay_server.py"),
                          folder, "--head", str(head), "--chain-id", str(chain_id),
                          "--lifetime", "300"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise Fail(f"replay_server did not start: {line!r}")
    return p, f"http://127.0.0.1:{int(line.split()[1])}"


def check_family(family, bp, servers, tmp):
    pg, ch, rd, kf = servers
    chain_id, (lo, hi), expect = fixture(family)
    chain = str(chain_id)
    name = family.replace("-", "_")
    db = os.path.join(tmp, f"{family}.db")
    jdir, cdir = os.path.join(tmp, f"{family}-jsonl"), os.path.join(tmp, f"{family}-csv")
    ch.post(f"CREATE DATABASE IF NOT EXISTS {name}")
    streams = "entities=blocks,transactions,logs"
    server, url = start_replay(os.path.join(FIXTURES, family), hi, chain_id)
    try:
        run([bp, "backfill", "--rpc", url, "--from", str(lo), "--to", str(hi),
             "--output", f"sqlite:{db}", "--output", f"jsonl:{jdir}",
             "--output", f"etl-csv:{cdir}", "--output", pg.url(query=f"schema={name}"),
             "--output", ch.url(name),
             "--output", rd.url(query=f"{streams}&maxlen=0&prefix={name}:"),
             "--output", kf.url(f"{streams}&prefix={name}_")], family)
    finally:
        server.terminate()
        server.wait(timeout=30)
    failures = []
    outs = {"sqlite": sqlite_rows(db), "postgres": pg_rows(pg, name),
            "clickhouse": ch_rows(ch, name),
            "redis": stream_rows(redis_rows(rd, f"{name}:", chain), family, "redis", failures),
            "kafka": stream_rows(kafka_rows(kf, f"{name}_"), family, "kafka", failures),
            "jsonl": jsonl_rows(jdir), "etl-csv": csv_rows(cdir)}
    counts = {}
    for out, tables in outs.items():
        n = 0
        for t, cols in COLS.items():
            if out == "jsonl":
                cols = {c: k for c, k in cols.items() if c not in JSONL_LACKS}
                # the L2 keys are written only when set: absent is null
                tables[t] = [{c: r.get(c) for c in set(cols) | set(r)} for r in tables[t]]
            elif out == "etl-csv":
                only = {"blocks": CSV_BLOCK, "transactions": CSV_TX | set(CSV_RECEIPT),
                        "logs": CSV_LOG}[t]
                cols = {c: k for c, k in cols.items() if c in only}
            rows = keyed(out, family, t, tables[t], failures)
            n += compare(out, family, t, rows, expect[t], cols, failures)
        counts[out] = n
    return failures, counts


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    failures = []
    with Postgres() as pg, ClickHouse() as ch, Redis() as rd, KafkaMock() as kf, \
            tempfile.TemporaryDirectory(prefix="bp-chains-") as tmp:
        for family in FAMILIES:
            f, counts = check_family(family, bp, (pg, ch, rd, kf), tmp)
            failures += f
            print(f"  {family}: cells compared with the fixture: "
                  + ", ".join(f"{o} {n}" for o, n in counts.items())
                  + (f"; {len(f)} differ" if f else ""), flush=True)
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print("OK")


if __name__ == "__main__":
    main()
