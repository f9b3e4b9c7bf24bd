"""`blockpipe run --chain-type arch` into PostgreSQL against `blockpipe simnode --chain-type
arch` with forks and rollbacks, killed with SIGKILL and restarted, then compared with the node
(test_arch_run.py's scenario with a PostgreSQL output, tests/tools/pg.py's real server).

The node grows a block every 0.2 s from height 120 (0-8 transactions each), makes a depth-5
fork every 1.5 s and a rollback / re-apply episode every 1.1 s, and answers in the TypeScript
SDK's shapes (--arch-shape ts: hex strings, transactions_count, merkle_root; part_ws's node and
test_arch_run.py's the Rust SDK's wire format). blockpipe follows it from block
0 (a backfill then a follow) with two endpoints, the second with FAULTS. test_arch_run.KILLS times a run is
SIGKILLed at a random moment (seeded) after it committed past the previous run's checkpoint,
then started again. Each restart must re-seed its reorg window from arch_blocks (the log says
"lists no recent blocks" otherwise: a fork then found below the checkpoint would stop the run).
While a run holds the chain, a second `run` on the same output is refused at once (--lock-wait
0) naming the holder: the chain's advisory lock, as for EVM. A last run catches up, walks back
one of the node's forks and stops on SIGINT (exit 0). Then the tables must hold exactly the
node's canonical chain (hashes are bytea, read as hex):
- arch_blocks: heights 0..checkpoint, each once, the checkpoint's hash the row's, every row's
  previous_hash the hash of the row below; every height up to checkpoint - depth has the
  node's canonical hash (get_block_hash);
- arch_transactions: per block, the txids in tx_index order are exactly get_block's
  transactions, each row's block_hash the block's;
- arch_account_updates: every row belongs to a stored transaction, every stored transaction
  has its rows;
- every column of the three tables has the value computed in Python from the node's answers
  (tests/tools/archcheck.py; rolled_back as fetched);
- a `backfill` of canonical blocks 0..N into SQLite stores the same rows as PostgreSQL holds.
Then a run with --ws (its own node, whose episodes the test makes on demand with simnode's
control methods) into another schema: a rollback of a committed block, its re-apply and a
rollback again, each waited for in the tables; then every stored transaction's rolled_back is
the node's rollback_status, arch_events holds the rollback and re-apply events, and every
column of its rows is the node's, rolled_back included (part_ws).
Stdlib only; needs BLOCKPIPE and a PostgreSQL server (tests/tools/pg.py).
"""

import os
import random
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import Postgres  # noqa: E402
import archcheck  # noqa: E402
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from test_arch_run import DEPTH, HANG, call, fail, node_head  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1415"))
SCHEMA = "archpg"


def checkpoint(pg, schema=SCHEMA):
    try:
        rows = pg.sql(f"SELECT number, encode(hash, 'hex') FROM {schema}.checkpoints "
                      "WHERE chain = 'arch'")
    except RuntimeError:
        return None  # the schema is not there yet
    return (int(rows[0][0]), rows[0][1]) if rows else None


def check_lock(bp, urls, out, tmp):
    """A second writer of the chain into the same output is refused, naming the holder."""
    r = subprocess.run([bp, "run", "--chain-type", "arch", "--rpc", urls[0], "--output", out,
                        "--lock-wait", "0", "--log-level", "warn"],
                       capture_output=True, text=True, timeout=HANG, cwd=tmp)
    if r.returncode == 0 or "is already written to output" not in r.stderr:
        fail(f"a second writer of chain 'arch' was not refused: exit {r.returncode}, "
             f"{r.stderr[-1500:]}")
    print("a second writer of the chain is refused (the chain's advisory lock)")


def pg_rows(pg, upto):
    q = {
        "arch_blocks": "SELECT height, encode(hash, 'hex'), encode(previous_hash, 'hex'), "
                       "timestamp, bitcoin_block_height, transaction_count, "
                       "encode(merkle_root, 'hex') FROM {s}.arch_blocks WHERE chain = 'arch' "
                       "AND height <= {u} ORDER BY height",
        "arch_transactions": "SELECT block_height, tx_index, encode(txid, 'hex'), "
                             "encode(block_hash, 'hex'), status, coalesce(failure_reason, ''), "
                             "program_ids::text, bitcoin_txids::text FROM {s}.arch_transactions "
                             "WHERE chain = 'arch' AND block_height <= {u} "
                             "ORDER BY block_height, tx_index",
        "arch_account_updates": "SELECT block_height, tx_index, encode(account, 'hex'), "
                                "encode(txid, 'hex') FROM {s}.arch_account_updates WHERE "
                                "chain = 'arch' AND block_height <= {u} "
                                "ORDER BY block_height, tx_index, account",
    }
    return {t: pg.sql(sql.format(s=SCHEMA, u=upto)) for t, sql in q.items()}


def check_tables(url, pg):
    cp = checkpoint(pg)
    if not cp:
        fail("no checkpoint")
    rows = pg_rows(pg, cp[0])
    strict = check_rows(url, rows, cp)
    archcheck.check_values(url, archcheck.pg_rows(pg, SCHEMA, "arch", strict))
    return strict


def check_rows(url, rows, cp):
    """The stored rows (arch_blocks, arch_transactions, arch_account_updates as pg_rows gives
    them) of a chain whose checkpoint is cp hold exactly the node's chain; the strictly
    checked height (below the reorg depth) is returned."""
    blocks = [(int(b[0]), b[1], b[2], int(b[5])) for b in rows["arch_blocks"]]
    heights = [b[0] for b in blocks]
    if heights != list(range(cp[0] + 1)):
        fail(f"arch_blocks heights are not exactly 0..{cp[0]}: {len(heights)} rows")
    if blocks[-1][1] != cp[1]:
        fail(f"checkpoint hash {cp[1]} is not block {cp[0]}'s {blocks[-1][1]}")
    for lo, hi in zip(blocks, blocks[1:]):
        if hi[2] != lo[1]:
            fail(f"block {hi[0]}: previous_hash {hi[2]} but block {lo[0]} is {lo[1]}")
    strict = cp[0] - DEPTH
    hashes = call(url, [("get_block_hash", [h]) for h in range(strict + 1)])
    for h in range(strict + 1):
        if blocks[h][1] != hashes[h]:
            fail(f"block {h}: stored {blocks[h][1]}, the node's canonical is {hashes[h]}")
    got, txs = {}, set()
    for t in rows["arch_transactions"]:
        height, idx, txid, bhash = int(t[0]), int(t[1]), t[2], t[3]
        if bhash != blocks[height][1]:
            fail(f"tx {txid}: block_hash {bhash}, block {height} is {blocks[height][1]}")
        lst = got.setdefault(height, [])
        if idx != len(lst):
            fail(f"block {height}: tx_index {idx} after {len(lst)} transactions")
        lst.append(txid)
        txs.add((height, idx, txid))
    ntx = 0
    for i in range(0, len(blocks), 100):
        chunk = blocks[i:i + 100]
        for b, body in zip(chunk, call(url, [("get_block", [b[1]]) for b in chunk])):
            listed = archcheck.block_txids(body)
            ntx += len(listed)
            if got.get(b[0], []) != listed or b[3] != len(listed):
                fail(f"block {b[0]}: stored txids {got.get(b[0], [])} (count {b[3]}), the node's "
                     f"{listed}")
    acc = {(int(a[0]), int(a[1]), a[3]) for a in rows["arch_account_updates"]}
    if acc - txs or txs - acc:
        fail(f"arch_account_updates: {len(acc - txs)} rows without their transaction, "
             f"{len(txs - acc)} transactions without account rows")
    if ntx == 0:
        fail("no transactions at all: nothing was compared")
    print(f"tables match the node: blocks 0..{cp[0]} ({strict + 1} checked against "
          f"get_block_hash), {ntx} transactions, {len(rows['arch_account_updates'])} account "
          "updates")
    return strict


def check_same_as_sqlite(bp, url, pg, tmp, upto):
    """A backfill of the canonical 0..upto into SQLite stores what PostgreSQL holds."""
    db = os.path.join(tmp, "same.db")
    r = subprocess.run([bp, "backfill", "--chain-type", "arch", "--rpc", url, "--from", "0",
                        "--to", str(upto), "--output", f"sqlite:{db}"],
                       capture_output=True, text=True, timeout=HANG)
    if r.returncode != 0:
        fail(f"backfill into SQLite exited {r.returncode}: {r.stderr[-2000:]}")
    con = sqlite3.connect(db)
    lite = {
        "arch_blocks": con.execute(
            "SELECT height, hash, previous_hash, timestamp, bitcoin_block_height, "
            "transaction_count, coalesce(merkle_root, '') FROM arch_blocks WHERE height <= ? "
            "ORDER BY height",
            (upto,)).fetchall(),
        "arch_transactions": con.execute(
            "SELECT block_height, tx_index, txid, block_hash, status, coalesce(failure_reason, "
            "''), program_ids, bitcoin_txids FROM arch_transactions WHERE block_height <= ? "
            "ORDER BY block_height, tx_index", (upto,)).fetchall(),
        "arch_account_updates": con.execute(
            "SELECT block_height, tx_index, account, txid FROM arch_account_updates WHERE "
            "block_height <= ? ORDER BY block_height, tx_index, account", (upto,)).fetchall(),
    }
    con.close()
    pgr = pg_rows(pg, upto)
    for t, want in lite.items():
        # jsonb prints ", " between array items; SQLite keeps the compact text
        norm = [[str(v) if not isinstance(v, str) else v.replace(" ", "") for v in row]
                for row in want]
        have = [[v.replace(" ", "") for v in row] for row in pgr[t]]
        if norm != have:
            diff = next((i for i, (a, b) in enumerate(zip(norm, have)) if a != b), len(norm))
            fail(f"{t}: SQLite and PostgreSQL differ (rows {len(norm)} / {len(have)}, first at "
                 f"{diff}: {norm[diff:diff + 1]} / {have[diff:diff + 1]})")
    print(f"a SQLite backfill of 0..{upto} holds the same rows as PostgreSQL")


def part_ws(bp, pg, tmp):
    """--ws into PostgreSQL: the node's events in arch_events (one row per key) and its
    rollback / re-apply episodes in arch_transactions.rolled_back, compared with the node as
    test_arch_ws.py part 2 does for SQLite. Its own node, whose episodes the test makes on
    demand (simnode_rollback / simnode_reapply of a block the run committed), each waited for
    in the tables: none comes between the stop and the comparison."""
    schema = "archws"
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "60",
                        "--txs-per-block", "1-8", "--seed", str(SEED + 1)], endpoints=1)
    url = node.urls[0]
    head = node_head(url)
    proc = None
    logpath = os.path.join(tmp, "ws.log")

    def stored(txids, back):
        """Every one of txids stored with rolled_back = back."""
        ids = ",".join(f"'\\x{t}'" for t in txids)
        n = pg.sql(f"SELECT count(*) FROM {schema}.arch_transactions WHERE rolled_back = "
                   f"{'true' if back else 'false'} AND txid IN ({ids})")
        return int(n[0][0]) == len(txids)

    try:
        with open(logpath, "w") as log:
            proc = arch.start(bp, [url, url], pg.url(query=f"schema={schema}"), log,
                              ["--ws", "ws://" + url.split("://", 1)[1], "--start-block",
                               str(head)])
            ws.wait_subscribed(logpath, proc, "ws run")
            arch.wait_progress(lambda: checkpoint(pg, schema), proc, head + 10, "ws run")
            # a rollback, its re-apply, a rollback again (of a block the run committed: the
            # events change stored rows), each waited for in the tables
            r = ws.episode_pair(node, checkpoint(pg, schema)[0], stored, proc, "ws run")
            e = node.stats()["episodes"]
            ws.stop(proc, "ws run")
        rows = pg.sql(f"SELECT encode(txid, 'hex'), rolled_back FROM {schema}.arch_transactions "
                      f"WHERE block_height > {head + 5} ORDER BY block_height, tx_index")
        view = []
        for i in range(0, len(rows), 200):
            view += call(url, [("get_processed_transaction", [r[0]]) for r in rows[i:i + 200]])
        if node.stats()["episodes"] != e:
            fail("the node made an episode the test did not ask for")
        wrong = [(r, v["rollback_status"]) for r, v in zip(rows, view)
                 if (r[1] == "t") != (v["rollback_status"]["type"] == "rolledback")]
        if wrong:
            fail(f"{len(wrong)} of {len(rows)} transactions' rolled_back differ from the node: "
                 f"{wrong[:3]}")
        # every column, rolled_back as the node says now (the episodes' events applied)
        archcheck.check_values(url, archcheck.pg_rows(pg, schema, "arch", 1 << 62, head + 5),
                               rollback="exact", variety=False)
        back = sum(r[1] == "t" for r in rows)
        topics = dict(pg.sql(f"SELECT topic, count(*) FROM {schema}.arch_events GROUP BY topic"))
        if not topics.get("rolledback_transactions") or not topics.get("reapplied_transactions"):
            fail(f"no rollback and re-apply events stored: {topics}")
        if back != len(r["txids"]):
            fail(f"{back} stored transactions rolled back, the node's last rollback "
                 f"{len(r['txids'])}")
        print(f"--ws: {len(rows)} transactions match the node's rollback_status ({back} rolled "
              f"back), events {topics}")
    except AssertionError:
        print("--- ws.log (tail) ---\n" + open(logpath).read()[-6000:])
        raise
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-pg-")
    logpath = os.path.join(tmp.name, "run.log")
    # the TypeScript SDK's shapes (merkle_root stored; test_arch_run.py has the Rust SDK's
    # wire format, as part_ws here)
    node = Simnode(bp, arch.node_args() + ["--arch-shape", "ts"], endpoints=2)
    url = node.urls[0]
    try:
        with Postgres() as pg, open(logpath, "w") as log:
            out = pg.url(query=f"schema={SCHEMA}")
            arch.kill_and_follow(bp, node, out, lambda: checkpoint(pg), log, logpath, rng,
                                 lambda proc: check_lock(bp, node.urls, out, tmp.name))
            strict = check_tables(url, pg)
            check_same_as_sqlite(bp, url, pg, tmp.name, min(strict, 40))
            part_ws(bp, pg, tmp.name)
        print("OK")
    except AssertionError:
        print_tails(logpath)
        raise
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
