"""Chain-family fixtures through decoding into every kind of output.

Each folder of tests/fixtures/chains (OP stack, Arbitrum, zkSync Era, Polygon PoS, Ethereum
Prague and pre-Byzantium: answers built from the chains' specifications and client sources,
cited in its README) is served by tests/tools/replay_server.py and backfilled into SQLite,
PostgreSQL, JSON lines and etl-csv at once. Then the fields each family adds are read back
from every one of them: OP deposits (source_hash, mint, is_system_tx) and the receipts' L1 fee
fields, Arbitrum's gasUsedForL1 and l1BlockNumber, the keys no column models in the extra
JSON of blocks, transactions, receipts and logs (Arbitrum's sendRoot, zkSync's l1BatchNumber),
Polygon's state-sync receipt stored as a transaction of its own, blob and set-code fields,
and a pre-Byzantium root without status.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ["BP_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SRC, "tests", "tools"))
from pg import Postgres  # noqa: E402

FIXTURES = os.path.join(SRC, "tests", "fixtures", "chains")


def h(tag, n):
    return "0x%02x%062x" % (tag, n)


def a(tag, n):
    return "0x%02x%038x" % (tag, n)


ZERO = "0x" + "00" * 20

# family: (chain id, blocks, [(table, key column, key, column, expected)]). Expected values as
# the JSON-lines output writes them: numbers as ints, JSON as parsed values.
CASES = {
    "op-stack": (8453, (1, 2), [
        ("transactions", "hash", h(0xe0, 100), "transaction_type", 126),
        ("transactions", "hash", h(0xe0, 100), "source_hash", h(0x5c, 1)),
        ("transactions", "hash", h(0xe0, 100), "is_system_tx", 0),
        ("transactions", "hash", h(0xe0, 100), "mint", None),
        ("transactions", "hash", h(0xe0, 100), "receipt_deposit_nonce", 16),
        ("transactions", "hash", h(0xe0, 100), "receipt_deposit_receipt_version", 1),
        ("transactions", "hash", h(0xe0, 101), "mint", 10**18),
        ("transactions", "hash", h(0xe0, 101), "extra", None),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_fee", 10**16),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_gas_used", 1600),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_gas_price", 10**10),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_blob_base_fee", 1),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_base_fee_scalar", 2269),
        ("transactions", "hash", h(0xe0, 102), "receipt_l1_blob_base_fee_scalar", 1055762),
        ("transactions", "hash", h(0xe0, 102), "receipt_extra",
         {"operatorFeeScalar": "0x0", "operatorFeeConstant": "0x0"}),
        ("transactions", "hash", h(0xe0, 200), "receipt_l1_fee_scalar", "0.684"),
        ("blocks", "number", 1, "extra", None),
    ]),
    "arbitrum": (42161, (1, 1), [
        ("blocks", "number", 1, "extra",
         {"l1BlockNumber": "0x13a8f6b", "sendCount": "0x5d0a1", "sendRoot": h(0x5e, 1)}),
        ("transactions", "hash", h(0xe0, 100), "transaction_type", 0x6a),
        ("transactions", "hash", h(0xe0, 101), "transaction_type", 0x69),
        ("transactions", "hash", h(0xe0, 101), "extra",
         {"requestId": h(0x1e, 1), "l1BaseFee": "0x6fc23ac00",
          "depositValue": "0x2386f26fc10000", "retryTo": a(0x77, 1), "retryValue": "0x0",
          "retryData": "0x", "beneficiary": a(0xbe, 1), "maxSubmissionFee": "0x5af3107a4000",
          "refundTo": a(0xbe, 1)}),
        ("transactions", "hash", h(0xe0, 102), "transaction_type", 0x64),
        ("transactions", "hash", h(0xe0, 103), "receipt_gas_used_for_l1", 100000),
        ("transactions", "hash", h(0xe0, 103), "receipt_l1_block_number", 0x13a8f6b),
        ("transactions", "hash", h(0xe0, 103), "extra", {"timeboosted": False}),
        ("transactions", "hash", h(0xe0, 103), "receipt_extra", {"timeboosted": False}),
    ]),
    "zksync": (324, (1, 1), [
        ("blocks", "number", 1, "extra",
         {"l1BatchNumber": "0x7a1", "l1BatchTimestamp": "0x6553f100", "sealFields": []}),
        ("transactions", "hash", h(0xe0, 100), "transaction_type", 0xff),
        ("transactions", "hash", h(0xe0, 100), "extra",
         {"l1BatchNumber": "0x7a1", "l1BatchTxIndex": "0x0"}),
        ("transactions", "hash", h(0xe0, 101), "transaction_type", 0x71),
        ("transactions", "hash", h(0xe0, 101), "receipt_root", h(0, 0)),
        ("transactions", "hash", h(0xe0, 100), "receipt_extra",
         {"l1BatchNumber": "0x7a1", "l1BatchTxIndex": "0x0", "l2ToL1Logs": []}),
        ("logs", "log_index", 0, "extra", {"l1BatchNumber": "0x7a1", "transactionLogIndex": "0x0"}),
    ]),
    "polygon-pos": (137, (1, 1), [
        ("blocks", "number", 1, "transaction_count", 1),
        ("transactions", "hash", h(0x55, 1), "transaction_index", 1),
        ("transactions", "hash", h(0x55, 1), "transaction_type", 0x7f),
        ("transactions", "hash", h(0x55, 1), "from_address", ZERO),
        ("transactions", "hash", h(0x55, 1), "receipt_gas_used", 0),
        ("logs", "log_index", 1, "transaction_hash", h(0x55, 1)),
        ("logs", "log_index", 1, "address", "0x0000000000000000000000000000000000001001"),
    ]),
    "ethereum": (1, (0x1500000, 0x1500000), [
        ("blocks", "number", 0x1500000, "blob_gas_used", 262144),
        ("blocks", "number", 0x1500000, "excess_blob_gas", 0),
        ("blocks", "number", 0x1500000, "requests_hash", h(0xe7, 1)),
        ("transactions", "transaction_index", 0, "max_fee_per_blob_gas", 10**9),
        ("transactions", "transaction_index", 0, "blob_versioned_hashes",
         ["0x01" + "ab" * 31, "0x01" + "cd" * 31]),
        ("transactions", "transaction_index", 0, "receipt_blob_gas_used", 262144),
        ("transactions", "transaction_index", 0, "receipt_blob_gas_price", 1),
        ("transactions", "transaction_index", 1, "transaction_type", 4),
        ("transactions", "transaction_index", 1, "authorization_list",
         [{"chainId": "0x1", "address": a(0x63, 1), "nonce": "0x2", "yParity": "0x0",
           "r": "0x1", "s": "0x2"}]),
        ("transactions", "transaction_index", 1, "extra", None),
        ("transactions", "transaction_index", 1, "receipt_extra", None),
    ]),
    "ethereum-frontier": (1, (0x76250, 0x76250), [
        ("transactions", "transaction_index", 0, "receipt_root", h(0x2f, 7)),
        ("transactions", "transaction_index", 0, "receipt_status", None),
        ("transactions", "transaction_index", 0, "receipt_l1_fee", None),
    ]),
}

PG_HEX = {"hash", "source_hash", "from_address", "to_address", "receipt_root", "requests_hash",
          "transaction_hash", "address", "block_hash"}
PG_TEXT = {"mint", "receipt_l1_fee", "receipt_l1_gas_used", "receipt_l1_gas_price",
           "receipt_l1_blob_base_fee", "max_fee_per_blob_gas", "receipt_blob_gas_price",
           "receipt_deposit_nonce"}
JSON_COLS = {"extra", "receipt_extra", "blob_versioned_hashes", "authorization_list"}


def norm(col, v):
    """A stored cell (text, number, JSON text or parsed JSON) as the expected value's form."""
    if v is None or v == "":
        return None
    if col in JSON_COLS:
        return json.loads(v) if isinstance(v, str) else v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (bytes, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return v


def run(args, what):
    p = subprocess.run(args, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"{what}: {' '.join(args)} exited {p.returncode}\n{p.stderr[-3000:]}")
    return p.stderr


def start_replay(folder, head, chain_id):
    p = subprocess.Popen([sys.executable, os.path.join(SRC, "tests", "tools", "replay_server.py"),
                          folder, "--head", str(head), "--chain-id", str(chain_id),
                          "--lifetime", "300"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise AssertionError(f"replay_server did not start: {line!r}")
    return p, f"http://127.0.0.1:{int(line.split()[1])}"


def sqlite_cell(db, table, key_col, key, col):
    import sqlite3
    con = sqlite3.connect(db)
    try:
        rows = con.execute(f"SELECT {col} FROM {table} WHERE {key_col} = ?", (key,)).fetchall()
    finally:
        con.close()
    assert len(rows) == 1, f"sqlite {table}.{key_col}={key}: {len(rows)} rows"
    return rows[0][0]


def pg_cell(pg, schema, table, key_col, key, col):
    expr = (f"'0x' || encode({col}, 'hex')" if col in PG_HEX
            else f"{col}::int::text" if col == "is_system_tx" else f"{col}::text")
    kexpr = f"'0x' || encode({key_col}, 'hex')" if key_col in PG_HEX else f"{key_col}::text"
    rows = pg.sql(f"SELECT coalesce({expr}, '') FROM {schema}.{table} WHERE {kexpr} = '{key}'")
    assert len(rows) == 1, f"postgres {table}.{key_col}={key}: {rows}"
    return rows[0][0]


def jsonl_cell(d, table, key_col, key, col):
    rows = []
    with open(os.path.join(d, f"{table}.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if o.get("type") != "revert" and o.get(key_col) == key:
                rows.append(o)
    assert len(rows) == 1, f"jsonl {table}.{key_col}={key}: {len(rows)} rows"
    return rows[0].get(col)  # the L2 keys are written only when set: absent is null


# ethereum-etl's stream format has no such keys (the SQL outputs have them)
JSONL_LACKS = {"blob_gas_used", "excess_blob_gas", "requests_hash", "max_fee_per_blob_gas",
               "blob_versioned_hashes", "receipt_blob_gas_used", "receipt_blob_gas_price",
               "authorization_list"}


def check_family(family, bp, pg, tmp):
    chain_id, (lo, hi), expect = CASES[family]
    folder = os.path.join(FIXTURES, family)
    server, url = start_replay(folder, hi, chain_id)
    schema = family.replace("-", "_")
    db = os.path.join(tmp, f"{family}.db")
    jdir, cdir = os.path.join(tmp, f"{family}-jsonl"), os.path.join(tmp, f"{family}-csv")
    try:
        run([bp, "backfill", "--rpc", url, "--from", str(lo), "--to", str(hi),
             "--output", f"sqlite:{db}", "--output", f"jsonl:{jdir}",
             "--output", f"etl-csv:{cdir}", "--output", pg.url() + f"?schema={schema}"],
            family)
    finally:
        server.terminate()
        server.wait(timeout=30)
    failures = []
    for table, key_col, key, col, want in expect:
        got = {"sqlite": norm(col, sqlite_cell(db, table, key_col, key, col)),
               "postgres": norm(col, pg_cell(pg, schema, table, key_col, key, col))}
        if col not in JSONL_LACKS:
            got["jsonl"] = norm(col, jsonl_cell(jdir, table, key_col, key, col))
        for out, v in got.items():
            if v != want:
                failures.append(f"{family}: {out}: {table} {key_col}={key}: {col} is {v!r}, "
                                f"expected {want!r}")
    # etl-csv: ethereum-etl's receipts.csv layout, the L1 fee columns filled
    with open(os.path.join(cdir, "receipts.csv")) as f:
        receipts = {r["transaction_hash"]: r for r in csv.DictReader(f)}
    for table, key_col, key, col, want in expect:
        etl = {"receipt_l1_fee": "l1_fee", "receipt_l1_gas_used": "l1_gas_used",
               "receipt_l1_gas_price": "l1_gas_price",
               "receipt_l1_fee_scalar": "l1_fee_scalar"}.get(col)
        if etl and key_col == "hash":
            v = norm(col, receipts[key][etl])
            if v != want:
                failures.append(f"{family}: etl-csv receipts {key}: {etl} is {v!r}, "
                                f"expected {want!r}")
    return failures


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    failures = []
    with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-chains-") as tmp:
        for family in CASES:
            failures += check_family(family, bp, pg, tmp)
            print(f"  {family}: {len(CASES[family][2])} fields checked in sqlite, postgres, "
                  f"jsonl{', etl-csv' if family == 'op-stack' else ''}")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))
    print("OK")


if __name__ == "__main__":
    main()
