"""rowcheck.py - every row an output holds against the node, field by field: SQLite,
PostgreSQL, ClickHouse, JSON lines and etl-csv. Python 3 standard library only.

    data = fetch(node_url, range(head + 1))           # the node's blocks and receipts
    sqlite_exact(db_path, data, chain="31337")        # every column of every row
    pg_exact(pg, "schema", data, chain="31337")
    ch_exact(ch, "db", data, chain="31337")           # FINAL and sign weights agree
    jsonl_exact(dir, data, chain="31337")             # replays REVERT lines
    csv_exact(dir, data)                              # drops rows of reverts.csv's blocks
    checkpoint_exact(...)                             # see the functions below

`data` is a list of (block with full transactions, its receipts) for heights 0..N in order;
fetch() also takes block hashes (a block orphaned since is still served by hash by simnode).
Every table must hold exactly the rows those blocks make: a row missing, doubled, extra (an
orphaned block's) or with one field different from the node fails with Mismatch naming the
block, transaction or log and the column. The stored types are checked too: SQLite keeps u64
as INTEGER and 256-bit amounts as exact decimal TEXT (never a lossy REAL).
"""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import json
import os
import re
import sqlite3
import urllib.request

U63 = 2 ** 63 - 1


class Mismatch(AssertionError):
    pass


# --- the node -------------------------------------------------------------------------

def rpc_batch(url: str, calls, timeout: float = 60.0):
    """Results of a JSON-RPC batch, in call order; an error answer raises Mismatch."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)]
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answers = sorted(json.loads(r.read()), key=lambda a: a["id"])
    bad = [a for a in answers if a.get("error") is not None]
    if bad or len(answers) != len(calls):
        raise Mismatch(f"node {url}: batch of {len(calls)} calls answered {bad[:1] or answers[:1]}")
    return [a.get("result") for a in answers]


def fetch(url: str, refs, chunk: int = 100):
    """[(block, receipts)] for refs (block numbers, or 0x hashes of 32 bytes), in order."""
    refs = list(refs)

    def one(part):
        calls = []
        for r in part:
            if isinstance(r, str) and len(r) == 66:
                calls += [("eth_getBlockByHash", [r, True]), ("eth_getBlockReceipts", [r])]
            else:
                calls += [("eth_getBlockByNumber", [hex(r), True]),
                          ("eth_getBlockReceipts", [hex(r)])]
        res = rpc_batch(url, calls)
        out = []
        for k, r in enumerate(part):
            b, rs = res[2 * k], res[2 * k + 1]
            if b is None or rs is None:
                raise Mismatch(f"node {url}: no block or receipts for {r}")
            out.append((b, rs))
        return out
    parts = [refs[i:i + chunk] for i in range(0, len(refs), chunk)]
    # a few batches in flight: the node builds one while we decode another
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        return [x for part in ex.map(one, parts) for x in part]


def qty(x):
    return None if x is None else (x if isinstance(x, int) else int(x, 16))


# --- columns: name -> (kind, the node's value) ----------------------------------------
#
# kinds: hex (lower-case text), u64 (integer), dec (256-bit integer), flex (integer kept as
# text of any form: v, r, s, y_parity), json (a list), eq (a fixed value)

def _topic(i):
    return lambda b, lg: (lg["topics"] + [None] * 4)[i]


BLOCK_COLS = {
    "number": ("u64", lambda b: b["number"]),
    "hash": ("hex", lambda b: b["hash"]),
    "parent_hash": ("hex", lambda b: b["parentHash"]),
    "nonce": ("hex", lambda b: b.get("nonce")),
    "sha3_uncles": ("hex", lambda b: b.get("sha3Uncles")),
    "logs_bloom": ("hex", lambda b: b.get("logsBloom")),
    "transactions_root": ("hex", lambda b: b.get("transactionsRoot")),
    "state_root": ("hex", lambda b: b.get("stateRoot")),
    "receipts_root": ("hex", lambda b: b.get("receiptsRoot")),
    "miner": ("hex", lambda b: b.get("miner")),
    "mix_hash": ("hex", lambda b: b.get("mixHash")),
    "difficulty": ("dec", lambda b: b.get("difficulty")),
    "total_difficulty": ("dec", lambda b: b.get("totalDifficulty")),
    "size": ("u64", lambda b: b.get("size")),
    "extra_data": ("hex", lambda b: b.get("extraData")),
    "gas_limit": ("u64", lambda b: b["gasLimit"]),
    "gas_used": ("u64", lambda b: b["gasUsed"]),
    "timestamp": ("u64", lambda b: b["timestamp"]),
    "transaction_count": ("u64", lambda b: len(b["transactions"])),
    "base_fee_per_gas": ("dec", lambda b: b.get("baseFeePerGas")),
    "withdrawals_root": ("hex", lambda b: b.get("withdrawalsRoot")),
    "withdrawals": ("json", lambda b: b.get("withdrawals")),
    "blob_gas_used": ("u64", lambda b: b.get("blobGasUsed")),
    "excess_blob_gas": ("u64", lambda b: b.get("excessBlobGas")),
    "parent_beacon_block_root": ("hex", lambda b: b.get("parentBeaconBlockRoot")),
    "requests_hash": ("hex", lambda b: b.get("requestsHash")),
    "uncle_count": ("u64", lambda b: len(b.get("uncles") or [])),
}

TX_COLS = {
    "hash": ("hex", lambda b, t, r: t["hash"]),
    "nonce": ("u64", lambda b, t, r: t["nonce"]),
    "block_hash": ("hex", lambda b, t, r: b["hash"]),
    "block_number": ("u64", lambda b, t, r: b["number"]),
    "transaction_index": ("u64", lambda b, t, r: t["transactionIndex"]),
    "from_address": ("hex", lambda b, t, r: t["from"]),
    "to_address": ("hex", lambda b, t, r: t.get("to")),
    "value": ("dec", lambda b, t, r: t["value"]),
    "gas": ("u64", lambda b, t, r: t["gas"]),
    "gas_price": ("dec", lambda b, t, r: t.get("gasPrice")),
    "input": ("hex", lambda b, t, r: t["input"]),
    "block_timestamp": ("u64", lambda b, t, r: b["timestamp"]),
    "max_fee_per_gas": ("dec", lambda b, t, r: t.get("maxFeePerGas")),
    "max_priority_fee_per_gas": ("dec", lambda b, t, r: t.get("maxPriorityFeePerGas")),
    "max_fee_per_blob_gas": ("dec", lambda b, t, r: t.get("maxFeePerBlobGas")),
    "transaction_type": ("u64", lambda b, t, r: t.get("type")),
    "chain_id": ("u64", lambda b, t, r: t.get("chainId")),
    "v": ("flex", lambda b, t, r: t.get("v")),
    "r": ("flex", lambda b, t, r: t.get("r")),
    "s": ("flex", lambda b, t, r: t.get("s")),
    "y_parity": ("flex", lambda b, t, r: t.get("yParity")),
    "access_list": ("json", lambda b, t, r: t.get("accessList")),
    "blob_versioned_hashes": ("json", lambda b, t, r: t.get("blobVersionedHashes")),
    "authorization_list": ("json", lambda b, t, r: t.get("authorizationList")),
    # NULL for the types the decoder knows (0..4), else the whole tx as JSON
    "raw": ("json", lambda b, t, r: None if qty(t.get("type") or "0x0") <= 4 else t),
    "receipt_cumulative_gas_used": ("u64", lambda b, t, r: r["cumulativeGasUsed"]),
    "receipt_gas_used": ("u64", lambda b, t, r: r["gasUsed"]),
    "receipt_contract_address": ("hex", lambda b, t, r: r.get("contractAddress")),
    "receipt_root": ("hex", lambda b, t, r: r.get("root")),
    "receipt_status": ("u64", lambda b, t, r: r.get("status")),
    "receipt_effective_gas_price": ("dec", lambda b, t, r: r.get("effectiveGasPrice")),
    "receipt_blob_gas_used": ("u64", lambda b, t, r: r.get("blobGasUsed")),
    "receipt_blob_gas_price": ("dec", lambda b, t, r: r.get("blobGasPrice")),
    "receipt_logs_bloom": ("hex", lambda b, t, r: r.get("logsBloom")),
}

LOG_COLS = {
    "block_number": ("u64", lambda b, lg: b["number"]),
    "block_hash": ("hex", lambda b, lg: b["hash"]),
    "log_index": ("u64", lambda b, lg: lg["logIndex"]),
    "transaction_hash": ("hex", lambda b, lg: lg["transactionHash"]),
    "transaction_index": ("u64", lambda b, lg: lg["transactionIndex"]),
    "address": ("hex", lambda b, lg: lg["address"]),
    "data": ("hex", lambda b, lg: lg["data"]),
    "topic0": ("hex", _topic(0)),
    "topic1": ("hex", _topic(1)),
    "topic2": ("hex", _topic(2)),
    "topic3": ("hex", _topic(3)),
}


_HEX = re.compile(r"0x[0-9a-fA-F]*\Z")
_DEC = re.compile(r"(?:0|[1-9][0-9]*)\Z")


@functools.lru_cache(maxsize=None)
def _snake(k):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k)


def _norm(v):
    """JSON value -> comparable form: keys snake_case, hex and decimal strings -> int."""
    t = type(v)
    if t is dict:
        return {_snake(k): _norm(x) for k, x in v.items()}
    if t is list:
        return [_norm(x) for x in v]
    if t is str:
        if _HEX.match(v):
            return int(v, 16) if len(v) > 2 else 0
        if _DEC.match(v):
            return int(v)
    return v


def node_value(kind, v):
    if v is None:
        return None
    if kind == "hex":
        return v.lower()
    if kind in ("u64", "dec", "flex"):
        return qty(v)
    if kind == "json":
        return _norm(v)
    return v


# --- stored values -> the same form, with each backend's storage rules -----------------

def _int_text(s, allow_hex=False):
    if isinstance(s, str) and _DEC.match(s):
        return int(s)
    if allow_hex and isinstance(s, str) and _HEX.match(s) and len(s) > 2 and s == s.lower():
        return int(s, 16)
    raise ValueError


def sqlite_value(kind, v):
    """SQLite: hex TEXT, u64 INTEGER (a BLOB of decimal digits above 2^63-1, which INTEGER
    cannot hold), 256-bit amounts decimal TEXT, lists compact JSON TEXT."""
    if v is None:
        return None
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if kind == "hex" and isinstance(v, str):
        return v
    if kind == "u64" and is_int:
        return v
    if kind == "u64" and isinstance(v, bytes) and re.fullmatch(rb"[1-9][0-9]*", v) \
            and int(v) > U63:
        return int(v)
    if kind == "dec":
        return _int_text(v)
    if kind == "flex":
        return v if is_int else _int_text(v, allow_hex=True)
    if kind == "json" and isinstance(v, str):
        got = json.loads(v)
        if json.dumps(got, separators=(",", ":"), ensure_ascii=False) != v:
            raise ValueError("not compact JSON")
        return _norm(got)
    if kind == "eq":
        return v
    raise ValueError(f"{type(v).__name__} is not the storage of a {kind} column")


def pg_value(kind, v):
    """PostgreSQL through row_to_json: bytea '\\x..', numeric/bigint numbers, jsonb values,
    v/r/s/y_parity text."""
    if v is None:
        return None
    if kind == "hex" and isinstance(v, str) and v.startswith("\\x"):
        return "0x" + v[2:]
    if kind in ("u64", "dec") and isinstance(v, int) and not isinstance(v, bool):
        return v
    if kind == "flex":
        return _int_text(v, allow_hex=True)
    if kind == "json":
        return _norm(v)
    if kind == "eq":
        return v
    raise ValueError(f"{type(v).__name__} is not the storage of a {kind} column")


# --- the comparison ---------------------------------------------------------------------

def expected_rows(data):
    """{"blocks": {number: (block,)}, "transactions": {hash: (block, tx, receipt)},
    "logs": {(number, log_index): (block, log)}}: what the node says each row must be."""
    blocks, txs, logs = {}, {}, {}
    for b, rs in data:
        n = qty(b["number"])
        if n in blocks:
            raise Mismatch(f"the expected chain has block {n} twice")
        blocks[n] = (b,)
        if len(rs) != len(b["transactions"]):
            raise Mismatch(f"node: block {n} has {len(b['transactions'])} txs but {len(rs)} "
                           f"receipts")
        for t, r in zip(b["transactions"], rs):
            if r["transactionHash"].lower() != t["hash"].lower():
                raise Mismatch(f"node: receipt order differs from tx order in block {n}")
            txs[t["hash"].lower()] = (b, t, r)
            for lg in r["logs"]:
                logs[(n, qty(lg["logIndex"]))] = (b, lg)
    return {"blocks": blocks, "transactions": txs, "logs": logs}


def _where(table, key):
    if table == "blocks":
        return f"block {key}"
    if table == "transactions":
        return f"tx {key}"
    return f"block {key[0]} log {key[1]}"


def compare_table(label, table, cols, stored, expected, to_value, chain=None):
    """stored: {key: {col: raw}}; expected: {key: the node's (block, tx, receipt) / (block,
    log) / (block,)}. Every key on both sides, every column equal."""
    missing = [k for k in expected if k not in stored]
    extra = [k for k in stored if k not in expected]
    if missing or extra:
        raise Mismatch(f"{label}: {table}: {len(stored)} rows, node has {len(expected)}; "
                       f"missing {sorted(missing)[:5]} extra {sorted(extra)[:5]}")
    for key, ctx in expected.items():
        row = stored[key]
        where = f"{label}: {_where(table, key)}"
        for col, (kind, get) in cols.items():
            if col not in row:
                raise Mismatch(f"{where}: no column {col}")
            node_raw = get(*ctx)
            try:
                got = to_value(kind, row[col])
            except ValueError as e:
                why = str(e) or "not how this output stores"
                raise Mismatch(f"{where}: column {col} = {row[col]!r}: {why} a {kind} "
                               f"value") from None
            if got != node_value(kind, node_raw):
                raise Mismatch(f"{where}: column {col} = {row[col]!r}, node says {node_raw!r}")
        if chain is not None and row.get("chain") != chain:
            raise Mismatch(f"{where}: column chain = {row.get('chain')!r}, want {chain!r}")
    return len(expected)


def _keyed(rows, key, label, table):
    out = {}
    for r in rows:
        k = key(r)
        if k in out:
            raise Mismatch(f"{label}: {table}: row {k} twice")
        out[k] = r
    return out


COLS = {"blocks": BLOCK_COLS, "transactions": TX_COLS, "logs": LOG_COLS}


def _compare_all(label, tables, data, to_value, chain):
    exp = expected_rows(data)
    keys = {"blocks": lambda r: to_value("u64", r["number"]),
            "transactions": lambda r: to_value("hex", r["hash"]),
            "logs": lambda r: (to_value("u64", r["block_number"]),
                               to_value("u64", r["log_index"]))}
    counts = {}
    for table in ("blocks", "transactions", "logs"):
        stored = _keyed(tables[table], keys[table], label, table)
        counts[table] = compare_table(label, table, COLS[table], stored, exp[table], to_value,
                                      chain)
    return counts


def sqlite_rows(db_path):
    """Every row of the three tables as dicts, read in one transaction."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        db.execute("BEGIN")
        out = {}
        for table in ("blocks", "transactions", "logs"):
            cur = db.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            out[table] = [dict(zip(names, row)) for row in cur]
        cur = db.execute("SELECT * FROM checkpoints")
        names = [d[0] for d in cur.description]
        out["checkpoints"] = [dict(zip(names, row)) for row in cur]
        db.execute("COMMIT")
        return out
    finally:
        db.close()


def sqlite_exact(db_path, data, chain, label="sqlite"):
    """The SQLite file holds exactly the rows of `data`, every column equal. Returns the row
    counts {"blocks": n, "transactions": n, "logs": n}."""
    return _compare_all(label, sqlite_rows(db_path), data, sqlite_value, chain)


def sqlite_branch_exact(url, db_path, chain, margin, label="sqlite"):
    """For a node that may reorg after blockpipe stopped (simnode serves an orphaned block by
    its hash): the SQLite blocks are 0..checkpoint once with unbroken parent links, each one
    the node serves by that hash with every field of it, its transactions and its logs equal
    (the newest included), and the blocks at least `margin` below the checkpoint are on the
    node's canonical chain now. Returns (checkpoint number, data, row counts)."""
    rows = [(r["number"], r["hash"], r["parent_hash"])
            for r in sorted(sqlite_rows(db_path)["blocks"], key=lambda r: r["number"])]
    cps = list(sqlite_checkpoints(db_path, chain).values())
    if len(cps) != 1 or not rows or cps[0] != rows[-1][:2]:
        raise Mismatch(f"{label}: checkpoints {cps}, want one at the top block "
                       f"{rows[-1][:2] if rows else None}")
    cp = cps[0][0]
    if [r[0] for r in rows] != list(range(cp + 1)):
        raise Mismatch(f"{label}: blocks are not exactly 0..{cp} once each ({len(rows)} rows)")
    for prev, cur in zip(rows, rows[1:]):
        if cur[2] != prev[1]:
            raise Mismatch(f"{label}: block {cur[0]}'s parent {cur[2]} is not block {prev[0]} "
                           f"{prev[1]}")
    data = fetch(url, [h for _, h, _ in rows], chunk=250)
    counts = sqlite_exact(db_path, data, chain, label)
    for lo in range(0, cp - margin + 1, 500):
        nums = range(lo, min(cp - margin, lo + 499) + 1)
        res = rpc_batch(url, [("eth_getBlockByNumber", [hex(n), False]) for n in nums])
        bad = [n for n, b in zip(nums, res) if (b or {}).get("hash") != rows[n][1]]
        if bad:
            raise Mismatch(f"{label}: {len(bad)} blocks at least {margin} below the checkpoint "
                           f"{cp} are not on the node's canonical chain, first {bad[0]}")
    return cp, data, counts


def pg_rows(pg, schema):
    out = {}
    for table in ("blocks", "transactions", "logs", "checkpoints"):
        rows = pg.sql(f"SELECT coalesce(json_agg(row_to_json(t)), '[]') FROM {schema}.{table} t")
        out[table] = json.loads(rows[0][0])
    return out


def pg_exact(pg, schema, data, chain, label="postgres"):
    """The schema's tables hold exactly the rows of `data`, every column equal."""
    return _compare_all(f"{label} ({schema})", pg_rows(pg, schema), data, pg_value, chain)


def checkpoints(rows, to_value, chain=None):
    """{output name: (number, hash)}; every row must name `chain` when given."""
    out = {}
    for r in rows:
        if chain is not None and r["chain"] != chain:
            raise Mismatch(f"checkpoint row {r}: chain is not {chain!r}")
        out[r["output"]] = (to_value("u64", r["number"]), to_value("hex", r["hash"]))
    return out


def sqlite_checkpoints(db_path, chain=None):
    """{output name: (number, hash)} of the SQLite checkpoints table."""
    return checkpoints(sqlite_rows(db_path)["checkpoints"], sqlite_value, chain)


def pg_checkpoints(pg, schema, chain=None):
    """{output name: (number, hash)} of schema.checkpoints."""
    rows = pg.sql(f"SELECT coalesce(json_agg(row_to_json(t)), '[]') FROM {schema}.checkpoints t")
    return checkpoints(json.loads(rows[0][0]), pg_value, chain)


def ch_value(kind, v):
    """ClickHouse through TabSeparated text: hashes and bytes read as 0x + lower(hex()),
    UInt64 and 256-bit amounts (String on 18.16, UInt256 later) decimal text, JSON text."""
    if v is None:
        return None
    if kind == "hex" and isinstance(v, str) and v.startswith("0x"):
        return v
    if kind in ("u64", "dec"):
        return _int_text(v)
    if kind == "flex":
        return _int_text(v, allow_hex=True)
    if kind == "json":
        return _norm(json.loads(v))
    if kind == "eq":
        return v
    raise ValueError(f"{type(v).__name__} is not the storage of a {kind} column")


def _ch_select(table, cols):
    """Every column as text; hashes and bytes as 0x-hex."""
    out = ["chain"]
    for col, (kind, _) in cols.items():
        out.append(f"concat('0x', lower(hex({col})))" if kind == "hex" else col)
    return f"SELECT {', '.join(out)}, _sign FROM {table} FINAL"


def ch_rows(ch, db):
    """Every row of the three tables as dicts, as `FINAL` shows them. Each row's _sign must
    be +1 (a lone -1 is a reverted row that was never written), and the sign-weighted count
    (`sum(_sign)`, the other way to read the tables) must agree with FINAL's."""
    out = {}
    for table, cols in COLS.items():
        names = ["chain"] + list(cols) + ["_sign"]
        rows = [dict(zip(names, r)) for r in ch.sql(_ch_select(table, cols), db)]
        bad = [r for r in rows if r["_sign"] != "1"]
        if bad:
            raise Mismatch(f"clickhouse ({db}): {table}: {len(bad)} rows with _sign "
                           f"{bad[0]['_sign']} under FINAL, e.g. {dict(list(bad[0].items())[:4])}")
        weighted = int(ch.sql(f"SELECT sum(_sign) FROM {table}", db)[0][0] or 0)
        if weighted != len(rows):
            raise Mismatch(f"clickhouse ({db}): {table}: sum(_sign) is {weighted}, FINAL has "
                           f"{len(rows)} rows")
        out[table] = rows
    return out


def ch_exact(ch, db, data, chain, label="clickhouse"):
    """The database's tables hold exactly the rows of `data`, every column equal."""
    return _compare_all(f"{label} ({db})", ch_rows(ch, db), data, ch_value, chain)


def ch_checkpoints(ch, db, chain=None):
    """{output name: (number, hash)}: each output's newest checkpoint row (highest seq)."""
    rows = ch.sql("SELECT chain, output, number, concat('0x', lower(hex(hash))) FROM "
                  "checkpoints ORDER BY seq", db)
    latest = {}
    for c, o, n, h in rows:
        latest[(c, o)] = {"chain": c, "output": o, "number": n, "hash": h}
    return checkpoints(latest.values(), ch_value, chain)


# --- file outputs -------------------------------------------------------------------------

JSONL_BLOCK = ["number", "hash", "parent_hash", "nonce", "sha3_uncles", "logs_bloom",
               "transactions_root", "state_root", "receipts_root", "miner", "difficulty",
               "total_difficulty", "size", "extra_data", "gas_limit", "gas_used", "timestamp",
               "transaction_count", "base_fee_per_gas", "withdrawals_root", "withdrawals"]
JSONL_TX = ["hash", "nonce", "transaction_index", "from_address", "to_address", "value", "gas",
            "gas_price", "input", "block_timestamp", "block_number", "block_hash",
            "max_fee_per_gas", "max_priority_fee_per_gas", "transaction_type",
            "receipt_cumulative_gas_used", "receipt_gas_used", "receipt_contract_address",
            "receipt_root", "receipt_status", "receipt_effective_gas_price"]
JSONL_LOG = ["log_index", "transaction_hash", "transaction_index", "address", "data",
             "block_number", "block_hash"]


def _file_cols(names, table):
    src = {"blocks": BLOCK_COLS, "transactions": TX_COLS, "logs": LOG_COLS}[table]
    cols = {n: src[n] for n in names}
    if table == "blocks":  # the file formats write [] for a block without withdrawals
        cols["withdrawals"] = ("json", lambda b: b.get("withdrawals") or [])
    if table == "logs":
        cols["topics"] = ("json", lambda b, lg: lg["topics"])
    return cols


def file_value(kind, v):
    """JSON lines: bare numbers, strings, arrays. CSV: text, '' for nothing, decimals."""
    if v is None or v == "":
        return None
    if kind == "hex" and isinstance(v, str):
        return v
    if kind in ("u64", "dec"):
        return v if isinstance(v, int) and not isinstance(v, bool) else _int_text(v)
    if kind == "json":
        return _norm(v)
    raise ValueError(f"{type(v).__name__} is not the form of a {kind} value")


def _replay(events, label):
    """events: [(kind 'block'|'revert', number, hash, parent)] in file order -> the final
    chain [(number, hash)] and {hash: times applied}. An APPLY must extend the tip, a REVERT
    must remove it."""
    stack, applied = [], {}
    for i, (kind, n, h, parent) in enumerate(events, 1):
        if kind == "block":
            if stack and (n != stack[-1][0] + 1 or parent != stack[-1][1]):
                raise Mismatch(f"{label}: event {i}: block {n} {h} (parent {parent}) does not "
                               f"extend the tip {stack[-1]}")
            stack.append((n, h))
            applied[h] = applied.get(h, 0) + 1
        elif not stack or stack[-1] != (n, h):
            raise Mismatch(f"{label}: event {i}: revert of {n} {h}, the tip is "
                           f"{stack[-1] if stack else None}")
        else:
            stack.pop()
    return stack, applied


def _files_exact(label, events, tables, data, orphans):
    """tables: {"blocks": rows, "transactions": rows, "logs": rows} as dicts of file cells.
    The replayed chain must be `data`'s, and the rows of each applied block appear once per
    APPLY of it, every field equal to the node. Rows of an orphaned block (reverted each time
    it was applied) are compared with `orphans` when given (then every applied block must be
    known), else only counted."""
    chain, applied = _replay(events, label)
    want = [(qty(b["number"]), b["hash"].lower()) for b, _ in data]
    if chain != want:
        bad = next(i for i in range(max(len(chain), len(want)))
                   if i >= len(chain) or i >= len(want) or chain[i] != want[i])
        raise Mismatch(f"{label}: the replayed chain ({len(chain)} blocks) differs from the "
                       f"node's ({len(want)}) at height {bad}: "
                       f"{chain[bad] if bad < len(chain) else None} vs "
                       f"{want[bad] if bad < len(want) else None}")
    live = {h for _, h in chain}
    by_hash = {b["hash"].lower(): expected_rows([(b, rs)])
               for b, rs in list(data) + list(orphans or ())}
    if orphans is not None:
        unknown = [h for h in applied if h not in by_hash]
        if unknown:
            raise Mismatch(f"{label}: applied blocks that are neither the node's nor known "
                           f"orphans: {unknown[:3]}")
    cols = {"blocks": _file_cols(JSONL_BLOCK, "blocks"),
            "transactions": _file_cols(JSONL_TX, "transactions"),
            "logs": _file_cols(JSONL_LOG, "logs")}
    counts = {}
    for table in ("blocks", "transactions", "logs"):
        seen = {}
        for r in tables[table]:
            if table == "blocks":
                key, bh = file_value("u64", r["number"]), r["hash"]
            elif table == "transactions":
                key, bh = r["hash"], r["block_hash"]
            else:
                key = (file_value("u64", r["block_number"]), file_value("u64", r["log_index"]))
                bh = r["block_hash"]
            seen.setdefault((bh, key), []).append(r)
        for (bh, key), rows in seen.items():
            if applied.get(bh, 0) != len(rows):
                raise Mismatch(f"{label}: {table}: {len(rows)} rows of {_where(table, key)} "
                               f"in block {bh}, which was applied {applied.get(bh, 0)} times")
            if bh not in by_hash:
                continue  # an orphaned block's row, with no orphan data to compare it with
            ctx = by_hash[bh][table].get(key)
            if ctx is None:
                raise Mismatch(f"{label}: {table}: {_where(table, key)} is not in block {bh}")
            for r in rows:
                compare_table(label, table, cols[table], {key: r}, {key: ctx}, file_value)
        for bh, exp in by_hash.items():
            for key in exp[table]:
                if bh in applied and (bh, key) not in seen:
                    raise Mismatch(f"{label}: {table}: no row for {_where(table, key)} of "
                                   f"block {bh}")
        counts[table] = sum(1 for (bh, _) in seen if bh in live)
    return counts


def _lines(path, label):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.endswith("\n"):
                raise Mismatch(f"{label}: {path} line {i} is cut short: {line[:80]!r}")
            out.append(json.loads(line))
    return out


def jsonl_reverted(dirpath):
    """The hashes blocks.jsonl has REVERT lines for, each once, in order."""
    out = []
    for o in _lines(os.path.join(dirpath, "blocks.jsonl"), "jsonl"):
        if o.get("type") == "revert" and o["hash"] not in out:
            out.append(o["hash"])
    return out


def jsonl_exact(dirpath, data, chain, orphans=None, label="jsonl", chains=None):
    """blocks.jsonl replayed (APPLY extends the tip, REVERT removes it) ends as `data`; the
    rows of its blocks are in blocks/transactions/logs.jsonl once per APPLY, every field
    equal to the node (and `chain` in each line). chains: the files are shared by these
    chains (every line names one of them), `chain`'s lines are checked. Returns live row
    counts."""
    def mine(lines, name):
        if chains is None:
            return lines
        other = [o for o in lines if o.get("chain") not in chains]
        if other:
            raise Mismatch(f"{label}: {name} line {other[0]!r:.200}: chain not one of {chains}")
        return [o for o in lines if o["chain"] == chain]
    blocks = mine(_lines(os.path.join(dirpath, "blocks.jsonl"), label), "blocks.jsonl")
    events, block_rows = [], []
    for o in blocks:
        if o.get("chain") != chain or o.get("type") not in ("block", "revert"):
            raise Mismatch(f"{label}: blocks.jsonl line {o!r:.200}: want type block|revert, "
                           f"chain {chain!r}")
        events.append((o["type"], o["number"], o["hash"], o["parent_hash"]))
        if o["type"] == "block":
            block_rows.append(o)
    tables = {"blocks": block_rows,
              "transactions": mine(_lines(os.path.join(dirpath, "transactions.jsonl"), label),
                                   "transactions.jsonl"),
              "logs": mine(_lines(os.path.join(dirpath, "logs.jsonl"), label), "logs.jsonl")}
    for t in ("transactions", "logs"):
        for o in tables[t]:
            if o.get("chain") != chain or o.get("type") != t[:-1]:
                raise Mismatch(f"{label}: {t}.jsonl line {o!r:.200}: want type {t[:-1]}, "
                               f"chain {chain!r}")
    return _files_exact(label, events, tables, data, orphans)


def _csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def csv_exact(dirpath, data, orphans=None, label="etl-csv"):
    """blocks.csv minus the blocks in reverts.csv is `data`; transactions.csv (with
    receipts.csv joined by transaction hash) and logs.csv hold their rows once per write,
    every cell equal to the node. Rows are never rewritten, so the events are the block rows
    in order with every revert placed after the rows of the block it reverts."""
    blocks = _csv(os.path.join(dirpath, "blocks.csv"))
    reverts = _csv(os.path.join(dirpath, "reverts.csv"))
    # reverts.csv says which (number, hash) left; replaying needs them at their place: a
    # revert comes before the next block row at a height <= its own
    events, pending = [], list(reverts)
    for r in blocks:
        n = int(r["number"])
        while pending and int(pending[0]["block_number"]) >= n and any(
                e[0] == "block" and e[2] == pending[0]["block_hash"] for e in events):
            p = pending.pop(0)
            events.append(("revert", int(p["block_number"]), p["block_hash"], p["parent_hash"]))
        events.append(("block", n, r["hash"], r["parent_hash"]))
    for p in pending:
        events.append(("revert", int(p["block_number"]), p["block_hash"], p["parent_hash"]))
    receipts = {}
    for r in _csv(os.path.join(dirpath, "receipts.csv")):
        receipts.setdefault((r["transaction_hash"], r["block_hash"]), []).append(r)
    txs = []
    for t in _csv(os.path.join(dirpath, "transactions.csv")):
        rs = receipts.get((t["hash"], t["block_hash"]))
        if not rs:
            raise Mismatch(f"{label}: receipts.csv has no row for tx {t['hash']}")
        rc = rs[0]
        for k in ("cumulative_gas_used", "gas_used", "contract_address", "root", "status",
                  "effective_gas_price"):
            t["receipt_" + k] = rc[k]
        txs.append(t)
    if sum(len(v) for v in receipts.values()) != len(txs):
        raise Mismatch(f"{label}: receipts.csv has {sum(len(v) for v in receipts.values())} "
                       f"rows for {len(txs)} transactions.csv rows")
    logs = []
    for lg in _csv(os.path.join(dirpath, "logs.csv")):
        lg["topics"] = lg["topics"].split(",") if lg["topics"] else []
        logs.append(lg)
    for b in blocks:
        b["withdrawals"] = json.loads("[" + b["withdrawals"] + "]")
    return _files_exact(label, events, {"blocks": blocks, "transactions": txs, "logs": logs},
                        data, orphans)
