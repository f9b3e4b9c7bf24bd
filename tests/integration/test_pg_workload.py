"""The anvil random workload into PostgreSQL: every value checked against the node.

A real PostgreSQL 15 (tests/tools/pg.py, temp data dir, free loopback port) and an anvil
node with random traffic (legacy / EIP-2930 / EIP-1559 txs, values above 2^64, deployments,
log-emitting and reverting calls). `blockpipe migrate` creates the schema (a second run says
up to date); `blockpipe backfill --output postgres://...?schema=w` must exit 0 and blocks /
transactions / logs / checkpoints must equal eth_getBlockByNumber + eth_getBlockReceipts
column by column (bytea hashes as 0x-hex, numeric(78,0) amounts, bigint gas). Then:
the same through `postgresql://` given as DATABASE_URL into another schema; a schema whose
schema_migrations holds a version newer than the program is refused with a clear error; a
chain with a u64 above 2^63-1 in a bigint column (block gas limit 2^64-1) stops with an error
naming the column and the block.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, unq  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, check_chain, checkpoint, hx, node_chain, run  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "7"))
MIN_TXS = 300
CHAIN = "31337"


def h(v):
    return None if v is None else v.lower()


def q(v):
    return None if v is None else str(unq(v))


BLOCK_COLS = {
    "hash": lambda b: h(b["hash"]), "parent_hash": lambda b: h(b["parentHash"]),
    "miner": lambda b: h(b["miner"]), "logs_bloom": lambda b: h(b["logsBloom"]),
    "state_root": lambda b: h(b["stateRoot"]), "extra_data": lambda b: h(b["extraData"]),
    "gas_limit": lambda b: q(b["gasLimit"]), "gas_used": lambda b: q(b["gasUsed"]),
    "timestamp": lambda b: q(b["timestamp"]), "base_fee_per_gas": lambda b: q(b.get("baseFeePerGas")),
    "difficulty": lambda b: q(b["difficulty"]), "size": lambda b: q(b["size"]),
    "transaction_count": lambda b: str(len(b["transactions"])),
}
TX_COLS = {
    "block_hash": lambda t, r: h(t["blockHash"]), "from_address": lambda t, r: h(t["from"]),
    "to_address": lambda t, r: h(t.get("to")), "value": lambda t, r: q(t["value"]),
    "gas": lambda t, r: q(t["gas"]), "gas_price": lambda t, r: q(t.get("gasPrice")),
    "input": lambda t, r: h(t["input"]), "nonce": lambda t, r: q(t["nonce"]),
    "transaction_type": lambda t, r: q(t.get("type")),
    "max_fee_per_gas": lambda t, r: q(t.get("maxFeePerGas")),
    "max_priority_fee_per_gas": lambda t, r: q(t.get("maxPriorityFeePerGas")),
    "r": lambda t, r: h(t["r"]), "s": lambda t, r: h(t["s"]),
    "receipt_status": lambda t, r: q(r.get("status")),
    "receipt_gas_used": lambda t, r: q(r["gasUsed"]),
    "receipt_cumulative_gas_used": lambda t, r: q(r["cumulativeGasUsed"]),
    "receipt_effective_gas_price": lambda t, r: q(r.get("effectiveGasPrice")),
    "receipt_contract_address": lambda t, r: h(r.get("contractAddress")),
    "receipt_logs_bloom": lambda t, r: h(r["logsBloom"]),
}
LOG_COLS = ("transaction_hash", "transaction_index", "address", "data", "topic0", "topic1",
            "topic2", "topic3", "block_hash")
BYTEA = {"hash", "parent_hash", "miner", "logs_bloom", "state_root", "extra_data", "block_hash",
         "from_address", "to_address", "input", "receipt_contract_address",
         "receipt_logs_bloom", "transaction_hash", "address", "data", "topic0", "topic1",
         "topic2", "topic3"}


def select(pg, schema, table, key, cols):
    exprs = [hx(c) if c in BYTEA else f"{c}::text" for c in cols]
    rows = pg.sql(f"SELECT {', '.join(key + exprs)} FROM {schema}.{table}")
    out = {}
    for r in rows:
        vals = [None if v == "" else v for v in r[len(key):]]
        vals = [None if (c in BYTEA and v == "0x" and c not in ("input", "data", "extra_data"))
                else v for c, v in zip(cols, vals)]
        out[tuple(r[:len(key)])] = dict(zip(cols, vals))
    return out


def want(where, col, got, exp):
    if got != exp:
        raise Fail(f"{where}: column {col} = {got!r}, node says {exp!r}")


def compare(pg, schema, node):
    head = node.block_number()
    blocks = select(pg, schema, "blocks", ["number"], list(BLOCK_COLS))
    txs = select(pg, schema, "transactions", [hx("hash")], list(TX_COLS))
    logs = select(pg, schema, "logs", ["block_number", "log_index"], list(LOG_COLS))
    n_tx = n_log = 0
    for n in range(head + 1):
        b, rs = node.block(n, True), node.receipts(n)
        row = blocks.get((str(n),))
        if row is None:
            raise Fail(f"block {n}: no row")
        for col, get in BLOCK_COLS.items():
            want(f"block {n}", col, row[col], get(b))
        for t, r in zip(b["transactions"], rs):
            trow = txs.get((t["hash"].lower(),))
            if trow is None:
                raise Fail(f"block {n} tx {t['hash']}: no row")
            for col, get in TX_COLS.items():
                want(f"tx {t['hash']}", col, trow[col], get(t, r))
            n_tx += 1
            for lg in r["logs"]:
                lrow = logs.get((str(n), str(unq(lg["logIndex"]))))
                if lrow is None:
                    raise Fail(f"block {n} log {unq(lg['logIndex'])}: no row")
                topics = [x.lower() for x in lg["topics"]] + [None] * 4
                exp = {"transaction_hash": h(lg["transactionHash"]),
                       "transaction_index": q(lg["transactionIndex"]),
                       "address": h(lg["address"]), "data": h(lg["data"]),
                       "block_hash": h(lg["blockHash"]),
                       **{f"topic{k}": topics[k] for k in range(4)}}
                for col in LOG_COLS:
                    want(f"block {n} log {unq(lg['logIndex'])}", col, lrow[col], exp[col])
                n_log += 1
    if len(blocks) != head + 1 or len(txs) != n_tx or len(logs) != n_log:
        raise Fail(f"row counts blocks={len(blocks)} txs={len(txs)} logs={len(logs)}, node has "
                   f"{head + 1} / {n_tx} / {n_log}")
    cp = checkpoint(pg, schema)
    if cp != (head, node.block(head, False)["hash"]):
        raise Fail(f"checkpoint {cp}, want ({head}, hash of {head})")
    return head, n_tx, n_log


def backfill(bp, node, output, env=None):
    head = node.block_number()
    cmd = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head), "--workers", "4"]
    if output:
        cmd += ["--output", output]
    return run(cmd, env=env)


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    with Postgres() as pg, Anvil(["--chain-id", CHAIN]) as node:
        wl = Workload(node, seed=SEED)
        wl.setup()
        sent = 2
        while sent < MIN_TXS:
            k = rng.choice([0, 1, 5, 12, 20])
            wl.mine_batch(k)
            sent += k
        rc, out = run([bp, "migrate", pg.url(), "--pg-schema", "w"])
        if rc != 0 or "migrated from version 0 to 7" not in out:
            raise Fail(f"migrate: exit {rc}, want 0 and 'migrated from version 0 to 7':\n{out}")
        rc, out = run([bp, "migrate", pg.url(query="schema=w")])
        if rc != 0 or "up to date (version 7)" not in out:
            raise Fail(f"second migrate: exit {rc}, want 0 and 'up to date':\n{out}")

        rc, out = backfill(bp, node, pg.url(query="schema=w"))
        if rc != 0:
            raise Fail(f"backfill exit {rc}:\n{out[-3000:]}")
        head, n_tx, n_log = compare(pg, "w", node)
        print(f"[postgres://?schema=w] OK: blocks={head + 1} txs={n_tx} logs={n_log}")

        env = dict(os.environ, DATABASE_URL=pg.url(scheme="postgresql", query="schema=env"))
        rc, out = backfill(bp, node, None, env)
        if rc != 0:
            raise Fail(f"backfill with DATABASE_URL=postgresql://... exit {rc}:\n{out[-3000:]}")
        check_chain(pg, node_chain(node), "DATABASE_URL postgresql://", "env")
        print("[DATABASE_URL=postgresql://...?schema=env] OK")

        pg.sql("INSERT INTO w.schema_migrations(version, description) VALUES (99, 'future')")
        rc, out = backfill(bp, node, pg.url(query="schema=w"))
        if rc == 0 or "version 99" not in out or "newer" not in out:
            raise Fail(f"a schema at version 99: exit {rc}, want an error 'version 99 ... newer':"
                       f"\n{out[-2000:]}")
        print("[newer schema] refused: " + [x for x in out.splitlines() if "newer" in x][0][-160:])

    with Postgres() as pg, Anvil(["--chain-id", CHAIN, "--gas-limit", str(2 ** 64 - 1)]) as node:
        node.mine()
        rc, out = backfill(bp, node, pg.url())
        if rc == 0 or "blocks.gas_limit" not in out or "block 0" not in out:
            raise Fail(f"gas limit 2^64-1 into bigint: exit {rc}, want an error naming "
                       f"blocks.gas_limit and block 0:\n{out[-2000:]}")
        print("[u64 above bigint] refused: " + [x for x in out.splitlines()
                                                 if "gas_limit" in x][0][-200:])
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        sys.exit(f"FAIL: {e}")
