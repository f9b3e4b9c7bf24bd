"""metricscheck.py - the derived analytics tables (docs/SCHEMA.md "Derived tables") recomputed
in Python from a node's own blocks and receipts, independently of blockpipe's C, and compared
with what a SQLite or PostgreSQL output holds. Python 3.11 standard library only.

    from metricscheck import Expected, read_sqlite, read_pg, compare, TokenEmitter
    exp = Expected(node_blocks, node_receipts, origin="anvil", prices=[(ts, usd)], max_age=7200)
    got = read_sqlite(db_path, "anvil")        # or read_pg(pg, "anvil", schema="public")
    compare(exp, got)                          # raises Mismatch naming the first difference

Definitions (the same words as docs/SCHEMA.md, written again here from the issue, not from
the C): a tx's fee is receipt gasUsed x effectiveGasPrice (gasPrice without one); a block's
median gas price is the lower median of its txs' effective gas prices; a window's medians are
the lower medians of its finer rows' values (blocks -> 1m -> 1h -> 1d), its USD the sum of
the finer rows' when all have one; active addresses are distinct senders (the 1h and 1d windows keep
their sets, each row with the lowest block of the window the address sent in; minutes keep
none); a contract is the `to` of a tx with input,
or the created address of a creation.
"""

from __future__ import annotations

import math
import random
import sqlite3

GRAINS = (("1m", 60), ("1h", 3600), ("1d", 86400))
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SINGLE = "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
TRANSFER_BATCH = "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"

CHAIN_SUMS = ("txcount", "txcount_failed", "txcount_contract_creation", "gas_used", "gas_limit")
FLOAT_COLUMNS = {"fees_paid_native", "fees_paid_usd", "usd", "fraud_score"}


class Mismatch(AssertionError):
    pass


def _int(x):
    return None if x is None else int(x, 16)


def lower_median(values):
    vs = sorted(v for v in values if v is not None)
    return vs[(len(vs) - 1) // 2] if vs else None


def contract_of(tx, receipt):
    if tx.get("to") is None:
        return (receipt.get("contractAddress") or "").lower() or None
    if tx.get("input", "0x") not in ("0x", "", None):
        return tx["to"].lower()
    return None


# --- token transfers (ethereum-etl's extractor, ERC-1155 added) ------------------------------

def _words(log):
    data = log.get("data") or "0x"
    d = data[2:]
    return [t[2:] for t in log["topics"][1:]] + [d[i:i + 64] for i in range(0, len(d), 64)]


def _addr(word):
    return None if len(word) < 40 else "0x" + word[-40:].lower()


def token_transfers(block, receipts, chain):
    out = []
    for r in receipts:
        for log in r["logs"]:
            topics = [t.lower() for t in log["topics"]]
            if not topics:
                continue
            base = {"chain": chain, "token_address": log["address"].lower(),
                    "transaction_hash": log["transactionHash"].lower(),
                    "log_index": _int(log["logIndex"]), "block_number": _int(block["number"]),
                    "block_timestamp": _int(block["timestamp"]), "block_hash": block["hash"],
                    "operator_address": None, "token_id": None, "batch_index": 0}
            if topics[0] == TRANSFER:
                w = _words(log)
                if len(w) != 4 - 1:
                    continue
                row = dict(base, from_address=_addr(w[0]), to_address=_addr(w[1]),
                           value=int(w[2], 16),
                           token_standard="erc721" if len(topics) == 4 else "erc20")
                if row["from_address"] is None or row["to_address"] is None:
                    continue
                if len(topics) == 4:
                    row["token_id"] = row["value"]
                out.append(row)
            elif topics[0] in (TRANSFER_SINGLE, TRANSFER_BATCH) and len(topics) == 4:
                out += _erc1155(base, topics, log["data"][2:], topics[0] == TRANSFER_BATCH)
    return out


def _erc1155(base, topics, data, batch):
    if len(data) % 64:
        return []
    words = [int(data[i:i + 64], 16) for i in range(0, len(data), 64)]
    if not batch:
        pairs = [(words[0], words[1])] if len(words) == 2 else []
    else:
        def array(off):
            if off % 32 or off // 32 >= len(words):
                return None
            n = words[off // 32]
            first = off // 32 + 1
            return words[first:first + n] if first + n <= len(words) else None
        if len(words) < 2:
            return []
        ids, vals = array(words[0]), array(words[1])
        if ids is None or vals is None or len(ids) != len(vals):
            return []
        pairs = list(zip(ids, vals))
    common = dict(base, operator_address=_addr(topics[1][2:]), from_address=_addr(topics[2][2:]),
                  to_address=_addr(topics[3][2:]), token_standard="erc1155")
    return [dict(common, token_id=i, value=v, batch_index=k) for k, (i, v) in enumerate(pairs)]


# --- the expected tables ----------------------------------------------------------------

class Expected:
    """Every derived table of an output that holds exactly blocks (node JSON, full txs) with
    their receipts (eth_getBlockReceipts), keyed as read_sqlite / read_pg key them."""

    def __init__(self, blocks, receipts, origin, prices=(), max_age=7200, symbol="ETH"):
        self.origin = origin
        self.prices = sorted((int(t), float(u)) for t, u in prices)
        self.max_age = max_age
        self.tables = {name: {} for name in TABLES}
        self.txs = {(_int(b["number"]), _int(t["transactionIndex"])): t["hash"].lower()
                    for b in blocks for t in b["transactions"]}
        per_block = [self._block(b, r) for b, r in zip(blocks, receipts)]
        self._windows(per_block)

    def price_at(self, ts):
        best = None
        for t, u in self.prices:
            if t <= ts:
                best = (t, u)
        return best[1] if best and ts - best[0] <= self.max_age else None

    def _block(self, b, receipts):
        by_hash = {r["transactionHash"].lower(): r for r in receipts}
        fees, prices, failed, creations = 0, [], 0, 0
        senders, contracts, pairs = set(), {}, set()
        for tx in b["transactions"]:
            r = by_hash[tx["hash"].lower()]
            price = _int(r.get("effectiveGasPrice") or tx.get("gasPrice") or "0x0")
            fee = _int(r["gasUsed"]) * price
            fees += fee
            prices.append(price)
            failed += r.get("status") is not None and _int(r["status"]) == 0
            creations += tx.get("to") is None
            sender = tx["from"].lower()
            senders.add(sender)
            c = contract_of(tx, r)
            if c:
                k = contracts.setdefault(c, [0, 0, 0])
                k[0] += 1
                k[1] += _int(r["gasUsed"])
                k[2] += fee
                pairs.add((c, sender))
        ts, number = _int(b["timestamp"]), _int(b["number"])
        native = float(fees) / 1e18
        price = self.price_at(ts)
        row = {"block_number": number, "block_hash": b["hash"], "block_timestamp": ts,
               "txcount": len(b["transactions"]), "txcount_failed": failed,
               "txcount_contract_creation": creations, "gas_used": _int(b["gasUsed"]),
               "gas_limit": _int(b["gasLimit"]), "fees_paid_wei": fees, "fees_paid_native": native,
               "fees_paid_usd": None if price is None else native * price,
               "base_fee_per_gas": _int(b.get("baseFeePerGas")),
               "median_gas_price": lower_median(prices), "active_addresses": len(senders)}
        self.tables["chain_metrics_block"][number] = row
        for t in token_transfers(b, receipts, self.origin):
            self.tables["token_transfers"][(t["block_number"], t["log_index"],
                                            t["batch_index"])] = t
        return row, senders, contracts, pairs

    def _windows(self, per_block):
        finer = [(row, senders) for row, senders, _, _ in per_block]
        for g, (grain, length) in enumerate(GRAINS):
            groups = {}
            for row, senders in finer:
                ts = row["block_timestamp"] if g == 0 else row["window_start"]
                groups.setdefault(ts - ts % length, []).append((row, senders))
            coarser = []
            for w, members in groups.items():
                rows = [m[0] for m in members]
                union = set().union(*(m[1] for m in members))
                wei = sum(r["fees_paid_wei"] for r in rows)
                usd = [r["fees_paid_usd"] for r in rows]
                out = {"window_start": w,
                       "block_count": len(rows) if g == 0 else sum(r["block_count"] for r in rows),
                       "first_block": min(r["block_number"] if g == 0 else r["first_block"]
                                          for r in rows),
                       "last_block": max(r["block_number"] if g == 0 else r["last_block"]
                                         for r in rows),
                       "fees_paid_wei": wei, "fees_paid_native": float(wei) / 1e18,
                       "fees_paid_usd": None if None in usd else math.fsum(usd),
                       "base_fee_per_gas": lower_median(r["base_fee_per_gas"] for r in rows),
                       "median_gas_price": lower_median(r["median_gas_price"] for r in rows),
                       "active_addresses": len(union)}
                for k in CHAIN_SUMS:
                    out[k] = sum(r[k] for r in rows)
                self.tables[f"chain_metrics_{grain}"][w] = out
                for a in (union if grain != "1m" else ()):  # minutes keep no set
                    self.tables["active_addresses"][(grain, w, a)] = min(
                        row["block_number"] for row, s in finer_blocks(per_block, grain, length, w)
                        if a in s)
                coarser.append((out, union))
            finer = coarser
        self._contract_windows(per_block)

    def _contract_windows(self, per_block):
        for grain, length in GRAINS:
            kw, pairs = {}, {}
            for row, _, contracts, bpairs in per_block:
                w = row["block_timestamp"] - row["block_timestamp"] % length
                for c, (n, gas, fee) in contracts.items():
                    k = kw.setdefault((w, c), [0, 0, 0, set()])
                    k[0] += n
                    k[1] += gas
                    k[2] += fee
                for c, a in bpairs:
                    kw[(w, c)][3].add(a)
                    n = row["block_number"]
                    if grain != "1m":  # minutes keep no set
                        pairs[(grain, w, c, a)] = min(pairs.get((grain, w, c, a), n), n)
            for (w, c), (n, gas, fee, senders) in kw.items():
                self.tables[f"contract_metrics_{grain}"][(w, c)] = {
                    "txcount": n, "gas_used": gas, "fees_paid_wei": fee,
                    "fees_paid_native": float(fee) / 1e18, "unique_senders": len(senders)}
            self.tables["contract_senders"].update(pairs)


def finer_blocks(per_block, grain, length, w):
    """The blocks of window w of a grain, with their senders."""
    for row, senders, _, _ in per_block:
        if row["block_timestamp"] - row["block_timestamp"] % length == w:
            yield row, senders


TABLES = ("chain_metrics_block", "chain_metrics_1m", "chain_metrics_1h", "chain_metrics_1d",
          "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d", "active_addresses",
          "contract_senders", "token_transfers")

# (table, key columns, value columns) as read back
LAYOUT = {
    "chain_metrics_block": (("block_number",), (
        "block_hash", "block_timestamp") + CHAIN_SUMS + (
        "fees_paid_wei", "fees_paid_native", "fees_paid_usd", "base_fee_per_gas",
        "median_gas_price", "active_addresses")),
    "active_addresses": (("grain", "window_start", "address"), ("first_block",)),
    "contract_senders": (("grain", "window_start", "contract_address", "address"),
                         ("first_block",)),
    "token_transfers": (("block_number", "log_index", "batch_index"), (
        "chain", "token_address", "from_address", "to_address", "value", "transaction_hash",
        "block_timestamp", "block_hash", "token_standard", "token_id", "operator_address")),
}
for _g, _ in GRAINS:
    LAYOUT[f"chain_metrics_{_g}"] = (("window_start",), (
        "block_count", "first_block", "last_block") + CHAIN_SUMS + (
        "fees_paid_wei", "fees_paid_native", "fees_paid_usd", "base_fee_per_gas",
        "median_gas_price", "active_addresses"))
    LAYOUT[f"contract_metrics_{_g}"] = (("window_start", "contract_address"), (
        "txcount", "gas_used", "fees_paid_wei", "fees_paid_native", "unique_senders"))
BIG = {"fees_paid_wei", "base_fee_per_gas", "median_gas_price", "value", "token_id"}
BYTEA = {"block_hash", "contract_address", "address", "token_address", "from_address",
         "to_address", "transaction_hash", "operator_address"}
ORIGIN = {"token_transfers": "chain"}


def _value(col, v):
    if v is None or v == "":
        return None
    if col in FLOAT_COLUMNS:
        return float(v)
    if col in BIG or col.endswith("_number") or col in ("block_timestamp", "window_start",
                                                         "log_index", "batch_index",
                                                         "first_block") \
            or col in CHAIN_SUMS or col in ("block_count", "first_block", "last_block",
                                            "active_addresses", "unique_senders"):
        return int(v)
    return v


def _rows(table, records):
    keys, vals = LAYOUT[table]
    out = {}
    for rec in records:
        d = {c: _value(c, v) for c, v in zip(keys + vals, rec)}
        k = tuple(d[c] for c in keys)
        out[k[0] if len(k) == 1 else k] = {c: d[c] for c in vals}
    return out


PREDICTIONS = ("SELECT block_number, transaction_index, {h}, fraud_score, model"
               " FROM ml_predictions")
MODEL = "iforest-v1"  # docs/SCHEMA.md


# SQLite stores a window's address sets only once a count needs them (docs/SCHEMA.md): the
# windows it has must be whole and exact, the others are not compared.
STORED_SETS = "_stored_sets"


def read_sqlite(path, origin):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        db.execute("BEGIN")
        got = {}
        for t in TABLES:
            keys, vals = LAYOUT[t]
            cols = ", ".join(f"CAST({c} AS TEXT)" if c in BIG else c for c in keys + vals)
            got[t] = _rows(t, db.execute(
                f"SELECT {cols} FROM {t} WHERE {ORIGIN.get(t, 'origin_key')} = ?", (origin,)))
        got["ml_predictions"] = db.execute(
            PREDICTIONS.format(h="transaction_hash") + " WHERE origin_key = ?", (origin,)).fetchall()
        got[STORED_SETS] = True
        db.execute("COMMIT")
    finally:
        db.close()
    return got


# PostgreSQL keeps the set of an hour or day listed in lazy_set_windows as its blocks' raw
# transactions (docs/SCHEMA.md): these are its rows, from the raw blocks and transactions.
_LAZY_TXS = ("FROM {s}.lazy_set_windows m JOIN {s}.blocks b ON b.chain = m.origin_key"
             " AND b.timestamp >= m.window_start AND b.timestamp < m.window_start"
             " + CASE WHEN m.grain = '1h' THEN 3600 ELSE 86400 END"
             " JOIN {s}.transactions t ON t.chain = b.chain AND t.block_number = b.number"
             " WHERE m.origin_key = {lit}")
LAZY_PG = {
    "active_addresses": "SELECT m.grain, m.window_start::text, '0x' || encode(t.from_address,"
                        " 'hex'), min(t.block_number)::text " + _LAZY_TXS +
                        " AND t.from_address IS NOT NULL GROUP BY 1, 2, 3",
    "contract_senders": "SELECT grain, w, '0x' || encode(c, 'hex'), '0x' || encode(a, 'hex'),"
                        " min(n)::text FROM (SELECT m.grain, m.window_start::text AS w,"
                        " CASE WHEN t.to_address IS NULL THEN t.receipt_contract_address"
                        " WHEN length(t.input) > 0 THEN t.to_address END AS c,"
                        " t.from_address AS a, t.block_number AS n " + _LAZY_TXS +
                        ") x WHERE c IS NOT NULL AND a IS NOT NULL GROUP BY 1, 2, 3, 4",
}


def read_pg(pg, origin, schema="public"):
    got = {}
    lit = "'" + origin.replace("'", "''") + "'"
    # a lazy window's contract_senders rows are its raw transactions' pairs only when the
    # database writes contract_metrics (its derived_groups record; none: every group)
    record = pg.sql(f"SELECT groups FROM {schema}.derived_groups WHERE id = 1")
    groups = record[0][0] if record and record[0] and record[0][0] else ""
    lazy = dict(LAZY_PG)
    if groups and "contract_metrics" not in groups.split(","):
        del lazy["contract_senders"]
    for t in TABLES:
        keys, vals = LAYOUT[t]
        cols = []
        for c in keys + vals:
            if c in BYTEA:
                cols.append(f"'0x' || encode({c}, 'hex')")
            else:
                cols.append(f"{c}::text")
        rows = pg.sql(f"SELECT {', '.join(cols)} FROM {schema}.{t}"
                      f" WHERE {ORIGIN.get(t, 'origin_key')} = {lit}")
        if t in lazy:
            rows += pg.sql(lazy[t].format(s=schema, lit=lit))
        got[t] = _rows(t, rows)
        if len(got[t]) != len(rows):
            raise Mismatch(f"{t}: {len(rows) - len(got[t])} rows both stored and in a window of "
                           f"lazy_set_windows")
    got["ml_predictions"] = [
        (int(n), int(i), h, float(f), m) for n, i, h, f, m in pg.sql(
            PREDICTIONS.format(h="'0x' || encode(transaction_hash, 'hex')")
            + f" WHERE origin_key = {lit}")]
    return got


def read_clickhouse(ch, db, origin):
    """The derived tables of a ClickHouse output as a query sees them: the per-block tables
    collapsed (FINAL; the sign sum must equal FINAL's row count, i.e. every key's signs
    alternate), the rollups' newest versions without the empty windows, the sets without the
    minutes' (ClickHouse keeps those too; SQLite and PostgreSQL count minutes from their raw
    rows)."""
    got = {}
    lit = "'" + origin.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for t in TABLES:
        keys, vals = LAYOUT[t]
        cols = []
        for c in keys + vals:
            if c in BYTEA:
                cols.append(f"concat('0x', lower(hex({c})))")
            elif c in BIG:
                cols.append(f"toString({c})")
            else:
                cols.append(c)
        where = f"{ORIGIN.get(t, 'origin_key')} = {lit}"
        if t.startswith("chain_metrics_") and t != "chain_metrics_block":
            where += " AND block_count > 0"
        elif t.startswith("contract_metrics_"):
            where += " AND txcount > 0"
        elif t in ("active_addresses", "contract_senders"):
            where += " AND grain != '1m'"
        rows = ch.sql(f"SELECT {', '.join(cols)} FROM (SELECT * FROM {db}.{t} FINAL"
                      f" WHERE {ORIGIN.get(t, 'origin_key')} = {lit}) WHERE {where}")
        got[t] = _rows(t, rows)
        if t in ("chain_metrics_block", "token_transfers", "active_addresses",
                 "contract_senders"):
            signs = ch.sql(f"SELECT sum(_sign) FROM {db}.{t} WHERE {where}")
            final = ch.sql(f"SELECT count() FROM (SELECT * FROM {db}.{t} FINAL"
                           f" WHERE {ORIGIN.get(t, 'origin_key')} = {lit}) WHERE {where}")
            if int(signs[0][0] or 0) != int(final[0][0]):
                raise Mismatch(f"{t}: sum(_sign) = {signs[0][0]} but FINAL has {final[0][0]} "
                               f"rows: a key's signs do not alternate")
    got["ml_predictions"] = [
        (int(n), int(i), h, float(f), m) for n, i, h, f, m in ch.sql(
            PREDICTIONS.format(h="concat('0x', lower(hex(transaction_hash)))")
            .replace("FROM ml_predictions", f"FROM {db}.ml_predictions FINAL")
            + f" WHERE origin_key = {lit}")]
    return got


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _expected_view(exp, table):
    """The expected rows keyed as read back (windows by start; the others as stored)."""
    rows = exp.tables[table]
    if table in ("active_addresses", "contract_senders"):
        return {k: {"first_block": v} for k, v in rows.items()}
    if table.startswith("contract_metrics_"):
        return dict(rows)
    return {k: {c: v for c, v in r.items() if c in LAYOUT[table][1]} for k, r in rows.items()}


def compare(exp, got, only=None, label="", scored=()):
    """Every row of every table equal (floats to 1e-9): raises Mismatch with the first
    difference; returns {table: rows}. ml_predictions: every row a canonical transaction's
    (none of a reverted block's), with a score in [0, 1] and the model's name, a block's
    transactions all scored or none (a block is scored whole), and the blocks numbered in
    scored (those a process with a trained model applied) scored."""
    counts = {}
    for t in only or TABLES:
        want, have = _expected_view(exp, t), got[t]
        if got.get(STORED_SETS) and t in ("active_addresses", "contract_senders"):
            stored = {k[:2] for k in have}
            want = {k: v for k, v in want.items() if k[:2] in stored}
        if set(want) != set(have):
            missing = sorted(set(want) - set(have), key=str)[:5]
            extra = sorted(set(have) - set(want), key=str)[:5]
            raise Mismatch(f"{label}{t}: {len(have)} rows, want {len(want)}; missing {missing}, "
                           f"unexpected {extra}")
        for k in want:
            for c, v in want[k].items():
                h = have[k].get(c)
                ok = _close(v, h) if c in FLOAT_COLUMNS else v == h
                if not ok:
                    raise Mismatch(f"{label}{t} {k}: {c} = {h!r}, recomputed from the node: {v!r}")
        counts[t] = len(want)
    per_block, preds = {}, got.get("ml_predictions", ())
    for n, i, h, score, model in preds:
        if exp.txs.get((n, i)) != h or not 0 <= score <= 1 or model != MODEL:
            raise Mismatch(f"{label}ml_predictions: ({n}, {i}, {h}, {score}, {model!r}) is not a "
                           f"canonical transaction with a score in [0, 1] by {MODEL} (the node "
                           f"has {exp.txs.get((n, i))})")
        per_block.setdefault(n, []).append(i)
    txs = {}
    for n, i in exp.txs:
        txs.setdefault(n, []).append(i)
    for n in set(per_block) | {n for n in scored if n in txs}:
        if sorted(per_block.get(n, [])) != sorted(txs.get(n, [])):
            raise Mismatch(f"{label}ml_predictions: block {n} has rows for transactions "
                           f"{sorted(per_block.get(n, []))}, the node's are {sorted(txs[n])}")
    counts["ml_predictions"] = len(preds)
    return counts


# --- a token-emitting contract for anvil ---------------------------------------------------
#
# Runtime, for calldata C of size S: n = C[0] % 5 topics, topic i = the word at 1 + 32 i, and
# LOGn with data = C[1 + 32 n : S]: any Transfer / TransferSingle / TransferBatch a test wants.

_OPS = {"STOP": 0x00, "SUB": 0x03, "MOD": 0x06, "EQ": 0x14, "ISZERO": 0x15, "SHR": 0x1C,
        "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CALLDATACOPY": 0x37, "CODECOPY": 0x39,
        "JUMP": 0x56, "JUMPI": 0x57, "JUMPDEST": 0x5B, "DUP1": 0x80, "SWAP1": 0x90,
        "LOG0": 0xA0, "LOG1": 0xA1, "LOG2": 0xA2, "LOG3": 0xA3, "LOG4": 0xA4, "RETURN": 0xF3}


def _assemble(prog):
    labels, pc = {}, 0
    for item in prog:
        if isinstance(item, tuple) and item[0].startswith(":"):
            labels[item[0][1:]] = pc
        else:
            pc += 2 if isinstance(item, tuple) else 1
    out = bytearray()
    for item in prog:
        if isinstance(item, tuple) and item[0].startswith(":"):
            continue
        if isinstance(item, tuple):
            out += bytes([0x60, item[1] if item[0] == "PUSH1" else labels[item[0][1:]]])
        else:
            out.append(_OPS[item])
    return bytes(out)


def _branch(n):
    off = 1 + 32 * n
    code = [(":log%d" % n,), "JUMPDEST",
            ("PUSH1", off), "CALLDATASIZE", "SUB",            # [len]
            ("PUSH1", off), ("PUSH1", 0), "CALLDATACOPY"]     # mem[0:len] = C[off:]
    for i in reversed(range(n)):
        code += [("PUSH1", 1 + 32 * i), "CALLDATALOAD"]
    return code + [("PUSH1", off), "CALLDATASIZE", "SUB", ("PUSH1", 0), "LOG%d" % n, "STOP"]


EMITTER_RUNTIME = _assemble(
    [("PUSH1", 0), "CALLDATALOAD", ("PUSH1", 0xF8), "SHR", ("PUSH1", 5), "SWAP1", "MOD",
     "DUP1", "ISZERO", ("@log0",), "JUMPI",
     "DUP1", ("PUSH1", 1), "EQ", ("@log1",), "JUMPI",
     "DUP1", ("PUSH1", 2), "EQ", ("@log2",), "JUMPI",
     "DUP1", ("PUSH1", 3), "EQ", ("@log3",), "JUMPI",
     ("@log4",), "JUMP"] + _branch(0) + _branch(1) + _branch(2) + _branch(3) + _branch(4))
EMITTER_CREATION = bytes([0x60, len(EMITTER_RUNTIME), 0x80, 0x60, 0x0C, 0x60, 0x00, 0x39,
                          0x60, 0x00, 0xF3, 0x00]) + EMITTER_RUNTIME


def _word(x):
    return "%064x" % x


def _addr_word(a):
    return "0" * 24 + a[2:].lower()


class TokenEmitter:
    """Token events from an emitter contract, sent through a tests/tools/anvil.py Workload."""

    KINDS = ("erc20", "erc721", "erc1155_single", "erc1155_batch", "weird")

    def __init__(self, wl, rng: random.Random):
        self.wl, self.rng = wl, rng
        self.contracts: list[str] = []
        for k in self.KINDS + ("emitter_deploy",):
            wl.sent.setdefault(k, 0)

    def deploy(self):
        h = self.wl._send("emitter_deploy", {"from": self.wl.accounts[0], "gas": hex(200000),
                                             "data": "0x" + EMITTER_CREATION.hex()})
        self.wl.node.mine()
        r = self.wl.node.rpc("eth_getTransactionReceipt", [h])
        if not r or not r.get("contractAddress") or int(r["status"], 16) != 1:
            raise RuntimeError(f"emitter deployment failed: {r}")
        self.contracts.append(r["contractAddress"].lower())

    def calldata(self, kind):
        rng, a = self.rng, self.wl.accounts
        frm, to, op = rng.choice(a), rng.choice(a), rng.choice(a)
        if kind == "erc20":
            return "03" + TRANSFER[2:] + _addr_word(frm) + _addr_word(to) + _word(
                rng.randrange(0, 2 ** 200))
        if kind == "erc721":
            return "04" + TRANSFER[2:] + _addr_word(frm) + _addr_word(to) + _word(
                rng.randrange(0, 10 ** 6))
        if kind == "erc1155_single":
            return ("04" + TRANSFER_SINGLE[2:] + _addr_word(op) + _addr_word(frm) + _addr_word(to)
                    + _word(rng.randrange(1, 100)) + _word(rng.randrange(1, 10 ** 9)))
        if kind == "erc1155_batch":
            n = rng.randrange(0, 4)
            ids = [rng.randrange(1, 1000) for _ in range(n)]
            vals = [rng.randrange(1, 10 ** 12) for _ in range(n)]
            data = _word(64) + _word(64 + 32 * (n + 1)) + _word(n) + "".join(map(_word, ids)) \
                + _word(n) + "".join(map(_word, vals))
            return "04" + TRANSFER_BATCH[2:] + _addr_word(op) + _addr_word(frm) + _addr_word(to) \
                + data
        # a Transfer with two data words: 5 words in all, not a transfer for ethereum-etl
        return "03" + TRANSFER[2:] + _addr_word(frm) + _addr_word(to) + _word(1) + _word(2)

    def send(self, kind=None):
        if not self.contracts:
            self.deploy()
        kind = kind or self.rng.choice(self.KINDS)
        return self.wl._send(kind, {"from": self.rng.choice(self.wl.accounts),
                                    "to": self.rng.choice(self.contracts), "gas": hex(120000),
                                    "data": "0x" + self.calldata(kind)})
