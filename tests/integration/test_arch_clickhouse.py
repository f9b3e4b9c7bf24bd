"""`blockpipe run --chain-type arch` into ClickHouse against `blockpipe simnode --chain-type
arch` with forks and rollbacks, killed with SIGKILL and restarted, then compared with the node
(test_arch_pg.py's scenario with a ClickHouse output, tests/tools/clickhouse.py's real server).

Part 1 (test_arch_run.kill_and_follow): the node grows a block every 0.2 s from height 120,
forks its top 5 blocks every 1.5 s and makes rollback / re-apply episodes every 1.1 s;
blockpipe follows it from block 0 by polling with two endpoints (the second with FAULTS), is
SIGKILLed test_arch_run.KILLS times at random moments and restarted; a last run walks back one
of the node's forks (REVERT: the +1 rows taken back by -1 rows) and stops on SIGINT. Then
arch_blocks / arch_transactions / arch_account_updates read with FINAL must hold exactly the
node's canonical chain (test_arch_pg.check_tables' checks), every row key once (sum(_sign) 1:
nothing twice, nothing of an abandoned fork or a killed batch left), every column the value
computed in Python from the node's answers (tests/tools/archcheck.py), and the same rows as a
SQLite backfill of the canonical blocks.
Part 2 (--ws, its own node, whose episodes the test makes on demand with simnode's control
methods): a run with --ws rolls back a block it committed and is SIGKILLed at once (the event
may be lost) and started again: the rollback must be stored (its re-read at the start); then
its re-apply and a rollback of a block the second run committed, each waited for in the view;
then arch_transactions_current must give every stored transaction the node's rollback_status,
arch_events must hold the rollback and re-apply events, each key once.
Stdlib only; needs BLOCKPIPE and a ClickHouse server (tests/tools/clickhouse.py).
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clickhouse import ClickHouse  # noqa: E402
import archcheck  # noqa: E402
from simnode import Simnode  # noqa: E402
import test_arch_pg as archpg  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from test_arch_run import DEPTH, HANG, call, fail, node_head  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1416"))
DB = "archch"


def checkpoint(ch, db=DB):
    try:
        rows = ch.sql(f"SELECT number, lower(hex(hash)) FROM {db}.checkpoints WHERE chain = "
                      "'arch' ORDER BY seq DESC LIMIT 1")
    except RuntimeError:
        return None  # the database is not there yet
    return (int(rows[0][0]), rows[0][1]) if rows else None


def ch_rows(ch, upto, db=DB):
    q = {
        "arch_blocks": "SELECT height, lower(hex(hash)), lower(hex(previous_hash)), timestamp, "
                       "bitcoin_block_height, transaction_count, "
                       "ifNull(lower(hex(merkle_root)), '') "
                       "FROM {d}.arch_blocks FINAL WHERE chain = 'arch' AND height <= {u} "
                       "ORDER BY height",
        "arch_transactions": "SELECT block_height, tx_index, lower(hex(txid)), "
                             "lower(hex(block_hash)), status, ifNull(failure_reason, ''), "
                             "program_ids, bitcoin_txids FROM {d}.arch_transactions FINAL "
                             "WHERE chain = 'arch' AND block_height <= {u} "
                             "ORDER BY block_height, tx_index",
        "arch_account_updates": "SELECT block_height, tx_index, lower(hex(account)), "
                                "lower(hex(txid)) FROM {d}.arch_account_updates FINAL WHERE "
                                "chain = 'arch' AND block_height <= {u} "
                                "ORDER BY block_height, tx_index, account",
    }
    return {t: ch.sql(sql.format(d=db, u=upto)) for t, sql in q.items()}


def check_signs(ch):
    """Every row key's signs sum to 0 or 1: nothing written twice, nothing taken back twice."""
    keys = {"arch_blocks": "height, hash",
            "arch_transactions": "block_height, block_hash, tx_index",
            "arch_account_updates": "block_height, block_hash, tx_index, account"}
    for t, k in keys.items():
        bad = ch.sql(f"SELECT {k}, sum(_sign) AS s FROM {DB}.{t} WHERE chain = 'arch' "
                     f"GROUP BY {k} HAVING s NOT IN (0, 1) LIMIT 3")
        if bad:
            fail(f"{t}: row keys with a sign sum other than 0 or 1: {bad}")
    print("every row key's sign sum is 0 or 1")


def check_tables(url, ch):
    """test_arch_pg's checks of the rows (check_rows) on the ClickHouse tables (FINAL)."""
    cp = checkpoint(ch)
    if not cp:
        fail("no checkpoint")
    strict = archpg.check_rows(url, ch_rows(ch, cp[0]), cp)
    archcheck.check_values(url, archcheck.ch_rows(ch, DB, "arch", strict))
    return strict


def check_same_as_sqlite(bp, url, ch, tmp, upto):
    """A backfill of the canonical 0..upto into SQLite stores what ClickHouse holds."""
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
    have = ch_rows(ch, upto)
    for t, want in lite.items():
        want = [[str(v) for v in row] for row in want]
        if want != have[t]:
            diff = next((i for i, (a, b) in enumerate(zip(want, have[t])) if a != b), len(want))
            fail(f"{t}: SQLite and ClickHouse differ (rows {len(want)} / {len(have[t])}, first "
                 f"at {diff}: {want[diff:diff + 1]} / {have[t][diff:diff + 1]})")
    print(f"a SQLite backfill of 0..{upto} holds the same rows as ClickHouse")


def part_ws(bp, ch, tmp):
    """--ws into ClickHouse, SIGKILLed once and started again: the rollback state through the
    view matches the node after the test's rollback / re-apply / rollback (simnode's control
    methods, each waited for in the view); arch_events has one row per key."""
    db = "archws"
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "60",
                        "--txs-per-block", "1-8", "--seed", str(SEED + 1)], endpoints=1)
    url = node.urls[0]
    head = node_head(url)
    out = ch.url(db)
    extra = ["--ws", "ws://" + url.split("://", 1)[1], "--start-block", str(head)]
    proc = None
    logpath = os.path.join(tmp, "ws.log")

    def stored(txids, back):
        """Every one of txids read through the view with rolled_back = back."""
        ids = ",".join(f"'{t}'" for t in txids)
        n = ch.sql(f"SELECT count() FROM {db}.arch_transactions_current WHERE chain = 'arch' "
                   f"AND rolled_back = {int(back)} AND lower(hex(txid)) IN ({ids})")
        return int(n[0][0]) == len(txids)

    try:
        with open(logpath, "w") as log:
            proc = arch.start(bp, [url, url], out, log, extra)
            ws.wait_subscribed(logpath, proc, "ws run 1")
            arch.wait_progress(lambda: checkpoint(ch, db), proc, head + 5, "ws run 1")
            arch.wait_caught_up(url, lambda: checkpoint(ch, db), proc, "ws run 1")
            # a rollback of a committed block (not final: the restart's re-read reaches it),
            # its event on its way: the kill may lose it
            r = node.control("simnode_rollback",
                             {"height": ws.not_final(node, checkpoint(ch, db)[0])})
            time.sleep(random.Random(SEED).uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            last = checkpoint(ch, db)[0]
            print(f"--ws: SIGKILL at checkpoint {last}, after the rollback of block "
                  f"{r['block_height']}", flush=True)
            mark = os.path.getsize(logpath)
            proc = arch.start(bp, [url, url], out, log, extra)
            arch.wait_progress(lambda: checkpoint(ch, db), proc, last, "ws run 2")
            # the restart's re-read (or the event before the kill) stored it
            ws.wait_for("ws run 2: the rollback made before the kill stored",
                        lambda: stored(r["txids"], True), proc)
            node.control("simnode_reapply")  # its re-apply,
            ws.wait_for("ws run 2: the re-apply stored", lambda: stored(r["txids"], False), proc)
            # then a rollback of a block this run committed: its event reaches the tables
            r = node.control("simnode_rollback", {"height": checkpoint(ch, db)[0]})
            ws.wait_for("ws run 2: the second rollback stored", lambda: stored(r["txids"], True),
                        proc)
            e = node.stats()["episodes"]
            ws.stop(proc, "ws run 2")
            if "subscribed (subscribe (Arch topics))" not in open(logpath).read()[mark:]:
                fail("ws run 2 never subscribed")
        rows = ch.sql(f"SELECT lower(hex(txid)), rolled_back FROM {db}.arch_transactions_current "
                      f"WHERE chain = 'arch' AND block_height > {head + 5} "
                      "ORDER BY block_height, tx_index")
        view = []
        for i in range(0, len(rows), 200):
            view += call(url, [("get_processed_transaction", [r[0]]) for r in rows[i:i + 200]])
        if node.stats()["episodes"] != e:
            fail("the node made an episode the test did not ask for")
        wrong = [(r, v["rollback_status"]) for r, v in zip(rows, view)
                 if (r[1] == "1") != (v["rollback_status"]["type"] == "rolledback")]
        if wrong:
            fail(f"{len(wrong)} of {len(rows)} transactions' rolled_back differ from the node: "
                 f"{wrong[:3]}")
        back = sum(row[1] == "1" for row in rows)
        if back != len(r["txids"]):
            fail(f"{back} stored transactions rolled back, the node's last rollback "
                 f"{len(r['txids'])}")
        topics = dict(ch.sql(f"SELECT topic, count() FROM {db}.arch_events FINAL "
                             "GROUP BY topic"))
        if not topics.get("rolledback_transactions") or not topics.get("reapplied_transactions"):
            fail(f"no rollback and re-apply events stored: {topics}")
        dup = ch.sql(f"SELECT key, count() AS n FROM {db}.arch_events GROUP BY key "
                     "HAVING n > 1 LIMIT 3")
        if dup:
            fail(f"arch_events keys stored more than once: {dup}")
        print(f"--ws: {len(rows)} transactions match the node's rollback_status ({back} rolled "
              f"back) through arch_transactions_current, events {topics}, each key once")
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
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-ch-")
    logpath = os.path.join(tmp.name, "run.log")
    node = Simnode(bp, arch.node_args(), endpoints=2)
    url = node.urls[0]
    try:
        with ClickHouse() as ch, open(logpath, "w") as log:
            if os.environ.get("BP_ARCH_CH_PART") != "ws":
                arch.kill_and_follow(bp, node, ch.url(DB), lambda: checkpoint(ch), log, logpath,
                                     rng)
                strict = check_tables(url, ch)
                check_signs(ch)
                check_same_as_sqlite(bp, url, ch, tmp.name, min(strict, 40))
            part_ws(bp, ch, tmp.name)
        print("OK")
    except AssertionError:
        print_tails(logpath)
        raise
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
