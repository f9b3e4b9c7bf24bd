"""Rollbacks and re-applies the Arch node announced while no blockpipe ran, deep below the tip,
are caught at the next start (docs/ARCH.md item 17, "resync floor"): each output stores with
its checkpoint the lowest block a start must read the rollback state of again.

simnode --chain-type arch grows a block every 0.1 s; its best finalized block is 275 below
the head. The test makes the rollback episodes on demand (simnode's control methods,
docs/ARCH.md), so the node changes only when the test says, however loaded the machine.
blockpipe follows it with --ws into SQLite, PostgreSQL, Redis and JSON lines. A rollback (R1:
simnode_rollback, the even transactions of the newest block with transactions at least 255
below the head, not final) is stored in every output; then blockpipe stops (SIGINT). While it
is down the node re-applies R1 (simnode_reapply), then rolls back R2 (simnode_rollback of the
block blockpipe stored 95 below its tip, above the finalized block it last saw); blockpipe
starts again once R2's block is final (20 blocks below the finalized one), and stops once
caught up. Then every stored transaction's rolled_back - SQLite's and PostgreSQL's column, the
last Redis state entry or JSON line naming it - must be the node's rollback_status
(get_processed_transaction), the node still at R2. Without the floor a start re-reads the
blocks above the node's finalized block now, at least the last 64: R2's block is final and 95
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

FINALITY = 275  # simnode's finalized block below its head
DEPTH = 255  # R1: simnode_rollback's choice this far below the head (--rollback-depth)
R2_BELOW = 95  # R2: this far below the tip blockpipe stopped at
HANG = 90  # guards against a hang only
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


def outputs(db, pg, r, jdir, logs=True):
    """{output: {txid: (block height, rolled_back)}} (logs: Redis and JSON lines too, read
    whole once blockpipe stopped)"""
    got = {"sqlite": sqlite_rows(db)}
    got["postgres"] = {t: (int(h), b == "t") for t, h, b in pg.sql(
        f"SELECT encode(txid, 'hex'), block_height, rolled_back FROM {SCHEMA}.arch_transactions")}
    if not logs:
        return got
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


def wait_rolled(outs, want, proc, label, soft=False):
    """Until every output outs() reads holds exactly `want` rolled back ({txid: height}).
    soft: False after HANG s (the caller's checks then say what is wrong), not a failure."""
    deadline = time.monotonic() + HANG
    while True:
        got = outs()
        if all({t for t, (_, b) in rows.items() if b} == set(want) for rows in got.values()):
            return True
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}")
        if time.monotonic() > deadline:
            if soft:
                return False
            fail(f"{label}: not in every output within {HANG} s: " + ", ".join(
                f"{n} {len({t for t, (_, b) in rows.items() if b})} rolled back"
                for n, rows in got.items()) + f", want {len(want)}")
        time.sleep(0.2)


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
        if node.stats()["episodes"]:
            fail(f"the node made episodes of its own: {node.stats()}")
        while arch.node_head(url) < DEPTH + 20:  # R1's block: 255 below the head
            time.sleep(0.05)
        a1 = node.control("simnode_rollback")  # R1: its event reaches the outputs
        r1 = {t: a1["block_height"] for t in a1["txids"]}
        wait_rolled(lambda: outputs(db, pg, r, jdir, logs=False), r1, proc, "R1's rollback")
        ws.stop(proc, "first run")
        tip = arch.checkpoint(db)[0]
        before = outputs(db, pg, r, jdir)
        for name, rows in before.items():
            if {t for t, (_, b) in rows.items() if b} != set(r1):
                fail(f"{name} after the stop: not R1's {len(r1)} transactions rolled back")
        print(f"stopped at {tip} with R1 stored: {len(r1)} transactions of block "
              f"{a1['block_height']} rolled back", flush=True)
        node.control("simnode_reapply")  # the re-apply of R1, then R2: no process listens
        a2 = node.control("simnode_rollback", {"height": tip - R2_BELOW})
        e3 = node.stats()["episodes"]
        t3 = time.monotonic()
        while arch.node_head(url) < a2["block_height"] + FINALITY + 20:  # R2's block final
            time.sleep(0.05)
        log.flush()
        mark = os.path.getsize(logpath)
        proc = start(bp, url, outs, log)
        m = wait_log(logpath, mark, r"rollback state of blocks (\d+)\.\.(\d+) re-read "
                     r"\((\d+) rolled back", proc, "the restart's re-read")
        lo, hi = int(m.group(1)), int(m.group(2))
        arch.wait_caught_up(url, db, proc, "the restart")  # the re-read goes after the events
        # received meanwhile, which wait for their blocks: until the tables show it (or
        # HANG s: the checks below then say what is missing)
        want2 = {t: a2["block_height"] for t in a2["txids"]}
        wait_rolled(lambda: outputs(db, pg, r, jdir, logs=False), want2, proc, "the restart",
                    soft=True)
        ws.stop(proc, "the restart")
        if node.stats()["episodes"] != e3:
            fail(f"the node made an episode of its own after R2: {node.stats()}")
        print(f"the restart stopped {time.monotonic() - t3:.1f} s after R2", flush=True)
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
                            "--txs-per-block", "1-4", "--rollback-depth", str(DEPTH),
                            "--finality", str(FINALITY), "--seed", "11"])
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
