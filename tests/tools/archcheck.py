"""archcheck.py - every stored Arch column compared with the node's own answers (stdlib only).

The expected value of each column of arch_blocks, arch_transactions and arch_account_updates is
computed here, in Python, from the node's JSON (get_block, get_processed_transaction), following
docs/ARCH.md's mapping and the shapes it cites: the Rust SDK's wire format (arch-sdk
sdk/src/types/block.rs, processed_transaction.rs, pinned by sdk/tests/rpc_wire_format.rs:
hashes as 32 byte numbers, timestamp in ms, no transactions_count / merkle_root; simnode's
default) and the TypeScript SDK's (struct/block.ts, processed-transaction.ts,
sanitized-message.ts, header.ts; simnode --arch-shape ts), the book's get-block.md,
get-processed-transaction.md -- not from blockpipe's decoder (src/arch/arch_decode.c), so a
decoder that swaps, drops or mis-reads a field fails here while a run compared with a backfill
(the same decoder) would not.

    rows = archcheck.sqlite_rows(db, "arch", upto)         # or pg_rows(pg, schema, ...),
    archcheck.check_values(url, rows, rollback="fetched")  # ch_rows(ch, db, ...)

rollback: "exact" -- rolled_back must be the node's rollback_status now (a --ws run whose
rollback events were applied); "fetched" -- the value when the row was fetched, which the node
may have changed since (a run without --ws): only its consistency with rollback_reason is
checked. Either way a row that is not rolled back has no rollback_reason, and a rollback_reason
is the node's message where the node says the transaction is rolled back now.
"""

import json
import urllib.request

NULL = "<NULL>"  # what the PostgreSQL / ClickHouse readers give for SQL NULL

BLOCK_COLS = ("height", "hash", "previous_hash", "timestamp", "bitcoin_block_height",
              "transaction_count", "merkle_root")
TX_COLS = ("block_height", "tx_index", "txid", "block_hash", "status", "failure_reason",
           "rolled_back", "rollback_reason", "program_ids", "bitcoin_txids", "fee",
           "compute_units")
ACC_COLS = ("block_height", "tx_index", "account", "txid")


class Mismatch(AssertionError):
    pass


def call(url, calls, timeout=60):
    """Results of a JSON-RPC batch to an Arch node, in call order; an error answer fails."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answers = sorted(json.loads(r.read()), key=lambda a: a["id"])
    for a in answers:
        if "error" in a:
            raise Mismatch(f"node error: {a}")
    return [a["result"] for a in answers]


def batched(url, calls, n=200):
    out = []
    for i in range(0, len(calls), n):
        out += call(url, calls[i:i + n])
    return out


# ---- the node's JSON into the expected column values ----

def key_hex(v, what):
    """A hash or key: 64 hex digits (0x allowed) or 32 byte numbers (the SDK's Uint8Array)."""
    if isinstance(v, list):
        if len(v) != 32 or not all(isinstance(x, int) and 0 <= x <= 255 for x in v):
            raise Mismatch(f"{what}: not 32 bytes: {v!r:.100}")
        return bytes(v).hex()
    if isinstance(v, str):
        s = v[2:] if v[:2].lower() == "0x" else v
        if len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s):
            return s.lower()
    raise Mismatch(f"{what}: not a hash: {v!r:.100}")


def seconds(t):
    """A timestamp in unix seconds: s, ms, us or ns told apart by size (docs/ARCH.md)."""
    t = int(t)  # the block event's is a string of digits (arch-sdk event.rs)
    for unit, below in ((1, 10**11), (1000, 10**14), (10**6, 10**17)):
        if t < below:
            return t // unit
    return t // 10**9


def block_txids(b):
    """get_block's transactions as hex txids (byte arrays in block.rs, strings in block.ts)."""
    return [key_hex(t, f"transactions[{i}]") for i, t in enumerate(b["transactions"])]


def want_block(hash_, b):
    """arch_blocks' row of get_block(hash_)'s answer b (arch-sdk block.rs or TS block.ts)."""
    txids = block_txids(b)
    if b.get("transactions_count") is not None and b["transactions_count"] != len(txids):
        raise Mismatch(f"get_block({hash_}): transactions_count {b['transactions_count']}, "
                       f"{len(txids)} listed")
    btc = b.get("bitcoin_block_height")
    root = b.get("merkle_root")
    return {"height": b["block_height"], "hash": key_hex(hash_, "get_block's parameter"),
            "previous_hash": key_hex(b["previous_block_hash"], "previous_block_hash"),
            "timestamp": seconds(b["timestamp"]),
            "bitcoin_block_height": None if btc is None else int(btc),  # a string in block.ts
            "transaction_count": len(txids),
            "merkle_root": None if root is None else key_hex(root, "merkle_root")}


def want_status(s):
    """(status, failure_reason): "Confirmed"/"Processed" (book), {type, message} (serde's Status
    in arch-sdk, the TS struct), {"Failed": message} (TS event); any other string is processed
    (arch-sdk's Status::from_value)."""
    words = {"processed": "processed", "confirmed": "processed", "processing": "processing",
             "queued": "queued", "failed": "failed"}
    if isinstance(s, str):
        return words.get(s.lower(), "processed"), None
    if "type" in s:
        st = words[s["type"].lower()]
        return st, (s["message"] if st == "failed" else None)
    return "failed", s["Failed"]


def writable_keys(msg):
    """The writable account_keys (Solana-style header, docs/ARCH.md item 9), distinct, in order."""
    h, keys = msg["header"], msg["account_keys"]
    sig, ro_sig = h["num_required_signatures"], h["num_readonly_signed_accounts"]
    ro_unsig = h["num_readonly_unsigned_accounts"]
    out = []
    for i, k in enumerate(keys):
        w = i < sig - ro_sig if i < sig else i < len(keys) - ro_unsig
        if w and key_hex(k, f"account_keys[{i}]") not in out:
            out.append(key_hex(k, f"account_keys[{i}]"))
    return out


def want_tx(txid, p):
    """arch_transactions' values of get_processed_transaction(txid)'s answer p (SDK
    struct/processed-transaction.ts; the book's bitcoin_txids) and its writable accounts."""
    msg = p["runtime_transaction"]["message"]
    programs = []
    for ins in msg["instructions"]:
        k = key_hex(msg["account_keys"][ins["program_id_index"]], "program id")
        if k not in programs:
            programs.append(k)
    if p.get("bitcoin_txids") is not None:
        btc = [key_hex(x, "bitcoin_txids[]") for x in p["bitcoin_txids"]]
    elif p.get("bitcoin_txid") is not None:
        btc = [key_hex(p["bitcoin_txid"], "bitcoin_txid")]
    else:
        btc = []
    status, failure = want_status(p["status"])
    rb = p.get("rollback_status") or {"type": "notRolledback"}
    return {"txid": key_hex(txid, "txid"), "status": status, "failure_reason": failure,
            "rolled_back": rb["type"] == "rolledback",
            "rollback_reason": rb.get("message", "") if rb["type"] == "rolledback" else None,
            "program_ids": programs, "bitcoin_txids": btc, "fee": None,
            "compute_units": None}, writable_keys(msg)


# ---- the stored rows, as dicts of Python values, from each output ----

def _int(v):
    return None if v in (None, NULL) else int(v)


def _text(v):
    return None if v in (None, NULL) else v


def _bool(v):
    return v in (1, "1", "t", "true", True)


def _rows(blocks, txs, accs):
    return {
        "arch_blocks": [{**dict(zip(BLOCK_COLS, r)), "height": int(r[0]), "timestamp": int(r[3]),
                         "bitcoin_block_height": _int(r[4]), "transaction_count": int(r[5]),
                         "merkle_root": _text(r[6])}
                        for r in blocks],
        "arch_transactions": [{**dict(zip(TX_COLS, r)), "block_height": int(r[0]),
                               "tx_index": int(r[1]), "failure_reason": _text(r[5]),
                               "rolled_back": _bool(r[6]), "rollback_reason": _text(r[7]),
                               "program_ids": json.loads(r[8]), "bitcoin_txids": json.loads(r[9]),
                               "fee": _int(r[10]), "compute_units": _int(r[11])} for r in txs],
        "arch_account_updates": [(int(a[0]), int(a[1]), a[2], a[3]) for a in accs],
    }


def sqlite_rows(db, chain, upto, since=-1):
    import sqlite3
    con = sqlite3.connect(db)
    q = lambda sql: con.execute(sql, (chain, upto, since)).fetchall()  # noqa: E731
    try:
        return _rows(
            q(f"SELECT {', '.join(BLOCK_COLS)} FROM arch_blocks WHERE chain = ? AND height <= ? "
              "AND height > ? ORDER BY height"),
            q(f"SELECT {', '.join(TX_COLS)} FROM arch_transactions WHERE chain = ? AND "
              "block_height <= ? AND block_height > ? ORDER BY block_height, tx_index"),
            q(f"SELECT {', '.join(ACC_COLS)} FROM arch_account_updates WHERE chain = ? AND "
              "block_height <= ? AND block_height > ? ORDER BY block_height, tx_index, account"))
    finally:
        con.close()


def _sql_rows(sql, hexf, nullf, table_suffix, chain, upto, since):
    """PostgreSQL / ClickHouse: hashes through hexf, nullable columns through nullf."""
    h = {c: hexf(c) for c in ("hash", "previous_hash", "merkle_root", "txid", "block_hash",
                              "account")}
    h["merkle_root"] = nullf(h["merkle_root"])  # NULL where the node sends none (block.rs)
    blocks = sql(f"SELECT height, {h['hash']}, {h['previous_hash']}, timestamp, "
                 f"{nullf('bitcoin_block_height')}, transaction_count, {h['merkle_root']} "
                 f"FROM {{t}}arch_blocks{table_suffix} WHERE chain = '{chain}' AND height <= "
                 f"{upto} AND height > {since} ORDER BY height")
    txs = sql(f"SELECT block_height, tx_index, {h['txid']}, {h['block_hash']}, status, "
              f"{nullf('failure_reason')}, rolled_back, {nullf('rollback_reason')}, "
              f"program_ids, bitcoin_txids, {nullf('fee')}, {nullf('compute_units')} "
              f"FROM {{t}}arch_transactions{table_suffix} WHERE chain = '{chain}' AND "
              f"block_height <= {upto} AND block_height > {since} ORDER BY block_height, tx_index")
    accs = sql(f"SELECT block_height, tx_index, {h['account']}, {h['txid']} "
               f"FROM {{t}}arch_account_updates{table_suffix} WHERE chain = '{chain}' AND "
               f"block_height <= {upto} AND block_height > {since} "
               "ORDER BY block_height, tx_index, account")
    return _rows(blocks, txs, accs)


def pg_rows(pg, schema, chain, upto, since=-1):
    return _sql_rows(lambda s: pg.sql(s.replace("{t}", schema + ".")),
                     lambda c: f"encode({c}, 'hex')",
                     lambda c: f"coalesce({c}::text, '{NULL}')", "", chain, upto, since)


def ch_rows(ch, db, chain, upto, since=-1):
    """arch_transactions FINAL: rolled_back as fetched (the rollback events go to
    arch_rollbacks in ClickHouse, docs/SCHEMA.md)."""
    return _sql_rows(lambda s: ch.sql(s.replace("{t}", db + ".")),
                     lambda c: f"lower(hex({c}))",
                     lambda c: f"ifNull(toString({c}), '{NULL}')", " FINAL", chain, upto, since)


# ---- the comparison ----

def check_values(url, rows, rollback="fetched", variety=True):
    """Every column of every stored row (rows as the *_rows readers give them) against the
    node's get_block / get_processed_transaction; Mismatch names the first wrong column.
    variety: the rows must include failed transactions and bitcoin txids (else a wrong
    failure_reason or bitcoin_txids could not show)."""
    blocks, txs = rows["arch_blocks"], rows["arch_transactions"]
    answers = batched(url, [("get_block", [b["hash"]]) for b in blocks], 100)
    for b, ans in zip(blocks, answers):
        want = want_block(b["hash"], ans)
        for c in BLOCK_COLS:
            if b[c] != want[c]:
                raise Mismatch(f"arch_blocks height {b['height']}: {c} is {b[c]!r}, the node's "
                               f"get_block gives {want[c]!r}")
    by_block = {b["height"]: b for b in blocks}
    listed = {b["height"]: block_txids(a) for b, a in zip(blocks, answers)}
    answers = batched(url, [("get_processed_transaction", [t["txid"]]) for t in txs], 400)
    accs, rolled, counts = set(), 0, {}
    for t, ans in zip(txs, answers):
        where = f"arch_transactions {t['block_height']}/{t['tx_index']} ({t['txid']})"
        want, keys = want_tx(t["txid"], ans)
        blk = by_block.get(t["block_height"])
        if blk is None:
            raise Mismatch(f"{where}: no arch_blocks row at its height")
        if t["block_hash"] != blk["hash"]:
            raise Mismatch(f"{where}: block_hash {t['block_hash']}, the block's is {blk['hash']}")
        lst = listed[t["block_height"]]
        if t["tx_index"] >= len(lst) or key_hex(lst[t["tx_index"]], "txid") != t["txid"]:
            raise Mismatch(f"{where}: not get_block's transactions[{t['tx_index']}]")
        cols = [c for c in want if c not in ("rolled_back", "rollback_reason")]
        if rollback == "exact":
            cols.append("rolled_back")
        for c in cols:
            if t[c] != want[c]:
                raise Mismatch(f"{where}: {c} is {t[c]!r}, the node's get_processed_transaction "
                               f"gives {want[c]!r}")
        if not t["rolled_back"] and t["rollback_reason"] is not None:
            raise Mismatch(f"{where}: not rolled back but rollback_reason {t['rollback_reason']!r}")
        if t["rolled_back"] and want["rolled_back"] and t["rollback_reason"] not in (
                None, want["rollback_reason"]):
            raise Mismatch(f"{where}: rollback_reason {t['rollback_reason']!r}, the node's "
                           f"{want['rollback_reason']!r}")
        rolled += t["rolled_back"]
        counts[t["status"]] = counts.get(t["status"], 0) + 1
        accs |= {(t["block_height"], t["tx_index"], k, t["txid"]) for k in keys}
    per_block = {}
    for t in txs:
        per_block[t["block_height"]] = per_block.get(t["block_height"], 0) + 1
    for h, lst in listed.items():
        n = per_block.get(h, 0)
        if n != len(lst):
            raise Mismatch(f"block {h}: {n} arch_transactions rows, get_block lists {len(lst)}")
    stored = set(rows["arch_account_updates"])
    if len(stored) != len(rows["arch_account_updates"]) or stored != accs:
        extra, missing = sorted(stored - accs), sorted(accs - stored)
        raise Mismatch(f"arch_account_updates: {len(extra)} rows the node's writable "
                       f"account_keys do not give (first {extra[:1]}), {len(missing)} missing "
                       f"(first {missing[:1]}), {len(rows['arch_account_updates'])} rows")
    if not txs or variety and ("failed" not in counts or not any(t["bitcoin_txids"] for t in txs)):
        raise Mismatch(f"too little to compare: {len(txs)} transactions, statuses {counts}, "
                       "some must have failed and some have bitcoin txids")
    print(f"column values match the node: {len(blocks)} arch_blocks, {len(txs)} "
          f"arch_transactions (statuses {counts}, {rolled} rolled back, rollback "
          f"{rollback}), {len(stored)} arch_account_updates", flush=True)
