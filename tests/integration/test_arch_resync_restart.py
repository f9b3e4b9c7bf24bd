"""Rollbacks and re-applies the Arch node announced while no blockpipe ran, deep below the tip,
are caught at the next start (docs/ARCH.md item 17, "resync floor"): each output stores with
its checkpoint the lowest block a start must read the rollback state of again.

simnode --chain-type arch grows a block every 0.1 s; its best finalized block is 275 below
the head, and every EVERY s an episode either rolls back the even transactions of the newest
block with transactions at least 255 below the head (not final), or re-applies them.
blockpipe follows it with --ws into SQLite, PostgreSQL, Redis and JSON lines. A rollback (R1)
is stored; shortly before its re-apply blockpipe stops (SIGINT). While it is down the node
re-applies R1, then rolls back R2, a block blockpipe stored ~95 below its tip and above the
finalized block it last saw; blockpipe starts again once R2's block is final, and stops once
caught up. Then every stored transaction's rolled_back - SQLite's and PostgreSQL's column, the
last Redis state entry or JSON line naming it - must be the node's rollback_status
(get_processed_transaction), the node still at R2. Without the floor a start re-reads the
blocks above the node's finalized block now, at least the last 64: R2's block is final and ~95
below the tip, R1's lower still (both missed).
Stdlib only; needs BLOCKPIPE, PostgreSQL and redis-server.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from pg import Postgres  # noqa: E402
from redis import Redis  # noqa: E402
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_streams as streams  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from test_arch_resync import wait_log  # noqa: E402

EVERY = 14.0  # seconds between episodes: the restart, re-read and stop fit in R2's
SCHEMA = "floor"


def fail(msg):
    raise AssertionError(msg)


def start(bp, url, outs, log):
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", url, "--ws",
           "ws://" + url.split("://", 1)[1], "--start-block", "0", "--poll-interval", "0.2",
           "--ws-reconnect-interval", "0.2", "--reorg-window", "1000", "--log-level", "info"]
    for o in outs:
        cmd += ["--output", o]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def sqlite_rows(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    rows = con.execute("SELECT txid, block_height, rolled_back FROM arch_transactions").fetchall()
    con.close()
    return {t: (h, bool(b)) for t, h, b in rows}


def outputs(db, pg, r, jdir):
    """{output: {txid: (block height, rolled_back)}}"""
    got = {"sqlite": sqlite_rows(db)}
    got["postgres"] = {t: (int(h), b == "t") for t, h, b in pg.sql(
        f"SELECT encode(txid, 'hex'), block_height, rolled_back FROM {SCHEMA}.arch_transactions")}
    got["redis"] = {t: (h, b) for h, _, t, b in streams.fold_redis(r).result()[1]}
    got["jsonl"] = {t: (h, b) for h, _, t, b in streams.fold_jsonl(jdir).result()[1]}
    return got


def node_rolled(url, txids):
    """The txids of txids the node says are rolled back now."""
    txids = sorted(txids)
    out = set()
    for i in range(0, len(txids), 200):
        view = arch.call(url, [("get_processed_transaction", [t]) for t in txids[i:i + 200]])
        out |= {t for t, v in zip(txids[i:i + 200], view)
                if v["rollback_status"]["type"] == "rolledback"}
    return out


def run(bp, node, pg, r, tmp):
    url = node.urls[0]
    db, jdir = os.path.join(tmp, "a.db"), os.path.join(tmp, "jsonl")
    logpath = os.path.join(tmp, "run.log")
    outs = [f"sqlite:{db}", pg.url(query=f"schema={SCHEMA}"),
            r.url(query="maxlen=0&entities=arch_blocks,arch_transactions"), f"jsonl:{jdir}"]
    with open(logpath, "w") as log:
        proc = start(bp, url, outs, log)
        arch.wait_caught_up(url, db, proc, "first run")
        wait_log(logpath, 0, r"subscribed \(subscribe \(Arch topics\)\)", proc, "first run")
        e1 = ws.wait_episode(node, True)  # R1: its event reaches the outputs
        t1 = time.monotonic()
        deadline = t1 + EVERY / 2
        while not any(b for _, b in sqlite_rows(db).values()):
            if time.monotonic() > deadline:
                fail(f"R1's rollback not stored within {EVERY / 2} s")
            time.sleep(0.05)
        time.sleep(max(0.0, t1 + EVERY - 2.5 - time.monotonic()))  # shortly before R1's re-apply
        ws.stop(proc, "first run")
        if node.stats()["episodes"] != e1:
            fail("the node re-applied R1 before blockpipe stopped: raise EVERY")
        tip = arch.checkpoint(db)[0]
        before = outputs(db, pg, r, jdir)
        r1 = {t: h for t, (h, b) in before["sqlite"].items() if b}
        for name, rows in before.items():
            if {t for t, (_, b) in rows.items() if b} != set(r1):
                fail(f"{name} before the stop: rolled back {len(r1)} in SQLite, not in {name}")
        print(f"stopped with R1 stored: {len(r1)} transactions of block {min(r1.values())} "
              f"rolled back", flush=True)
        e3 = ws.wait_episode(node, True)  # the re-apply of R1, then R2: no process listens
        t3 = time.monotonic()
        if e3 != e1 + 2:
            fail(f"episode {e3} after {e1}: blockpipe stopped too slowly")
        h3 = arch.node_head(url)
        while arch.node_head(url) < h3 + 40:  # R2's block (h3 - 255) 20 below the final one
            time.sleep(0.05)
        log.flush()
        mark = os.path.getsize(logpath)
        proc = start(bp, url, outs, log)
        m = wait_log(logpath, mark, r"rollback state of blocks (\d+)\.\.(\d+) re-read "
                     r"\((\d+) rolled back", proc, "the restart's re-read")
        lo, hi = int(m.group(1)), int(m.group(2))
        arch.wait_caught_up(url, db, proc, "the restart")  # the re-read goes after the events
        time.sleep(0.5)  # received meanwhile, which wait for their blocks
        ws.stop(proc, "the restart")
        if node.stats()["episodes"] != e3:
            fail("the node re-applied R2 before blockpipe stopped: raise EVERY")
        print(f"the restart stopped {time.monotonic() - t3:.1f} s after R2 (its re-apply at "
              f"{EVERY:.0f} s)", flush=True)
        text = open(logpath).read()
    errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
    if errors:
        fail("blockpipe logged errors:\n" + "\n".join(errors[:10]))
    after = outputs(db, pg, r, jdir)
    truth = node_rolled(url, after["sqlite"])
    r2 = {after["sqlite"][t][0] for t in truth}
    print(f"restart: re-read blocks {lo}..{hi}; R2 rolled back {len(truth)} transactions of "
          f"block(s) {sorted(r2)}, the tip at the stop {tip}; R1 in block {min(r1.values())}",
          flush=True)
    if not truth or any(tip - h <= 64 for h in r2) or set(r1) & truth:
        fail("the node's episodes did not make the case (R2 more than 64 below the tip at the "
             "stop, R1 re-applied)")
    for name, rows in after.items():
        if set(rows) != set(after["sqlite"]):
            fail(f"{name}: {len(rows)} transactions, SQLite {len(after['sqlite'])}")
        back = {t for t, (_, b) in rows.items() if b}
        if back != truth:
            fail(f"{name}: rolled back {len(back)} transactions, the node {len(truth)}: "
                 f"{len(back & set(r1))} of R1 still rolled back (re-applied while blockpipe "
                 f"was down), {len(truth - back)} of R2 missed")
        print(f"{name}: {len(rows)} transactions' rolled_back as the node's ({len(back)} rolled "
              f"back: R2; R1's {len(r1)} re-applied)", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    with tempfile.TemporaryDirectory(prefix="bp-arch-floor-") as tmp, Postgres() as pg, \
            Redis() as r:
        node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.1", "--start-head", "200",
                            "--txs-per-block", "1-4", "--rollback-every", str(EVERY),
                            "--rollback-depth", "255", "--finality", "275", "--seed", "11"])
        try:
            run(bp, node, pg, r, tmp)
        except AssertionError:
            log = os.path.join(tmp, "run.log")
            if os.path.exists(log):
                print("--- blockpipe log (tail) ---\n" + open(log).read()[-5000:])
            raise
        finally:
            node.kill()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
