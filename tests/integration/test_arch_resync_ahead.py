"""A rollback the Arch node made while no blockpipe ran, of a block one output holds and another
does not yet, is caught in the output that holds it (docs/ARCH.md item 17): a start with
outputs at different checkpoints begins after the lowest, and its re-read of the rollback state
waits until the blocks up to the highest checkpoint are committed (resync_rollbacks'
aws_ahead in src/core/pipeline.c); a re-read at once stops below the lowest and leaves the
output ahead as it stored the block.

simnode --chain-type arch grows a block every 0.2 s (1-6 transactions each, finalized 50 below
the head) and changes only when the test asks. Run 1 follows it with --ws into SQLite A from
block 20, catches up and stops (SIGINT) at checkpoint C; while no process runs the test rolls
back block C (simnode_rollback). Run 2 writes A and a new SQLite B from block 20 (B is empty:
the run starts there, below A's checkpoint): once it is past C, B and A must both hold C's
rolled-back transactions as rolled back, and every transaction A stores its rolled_back as the
node's rollback_status.
Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from pgcheck import blockpipe_bin, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1419"))


def fail(msg):
    raise AssertionError(msg)


def start(bp, url, dbs, log):
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", url, "--ws",
           "ws://" + url.split("://", 1)[1], "--start-block", "20", "--confirmations", "0",
           "--poll-interval", "0.2", "--log-level", "info"]
    for db in dbs:
        cmd += ["--output", f"sqlite:{db}"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "40",
                        "--txs-per-block", "1-6", "--finality", "50", "--seed", str(SEED)])
    url = node.urls[0]
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-ahead-")
    a, b = (os.path.join(tmp.name, n) for n in ("a.db", "b.db"))
    logpath = os.path.join(tmp.name, "run.log")
    proc = None
    try:
        with open(logpath, "w") as log:
            proc = start(bp, url, [a], log)
            ws.wait_subscribed(logpath, proc, "run 1")
            arch.wait_caught_up(url, a, proc, "run 1")
            ws.stop(proc, "run 1")
            c = arch.checkpoint(a)[0]
            r = node.control("simnode_rollback", {"height": c})  # no process runs
            episode, t = node.stats()["episodes"], time.monotonic()
            print(f"run 1 stopped at {c}; block {c}: {len(r['txids'])} transactions rolled "
                  "back while no process ran", flush=True)
            log.flush()
            mark = os.path.getsize(logpath)
            proc = start(bp, url, [a, b], log)
            arch.wait_progress(b, proc, c, "run 2")
            for label, db in (("B (fetched after the rollback)", b), ("A (held block C)", a)):
                ws.wait_for(f"run 2: {label}: block {c}'s rollback stored", lambda db=db: (
                    ws.rolled_back_stored(db, r["txids"]) == len(r["txids"])), proc)
            back, n = ws.compare_rollbacks(node, url, a, -1, episode, t)
            if back != len(r["txids"]):
                fail(f"A: {back} stored transactions rolled back, the node {len(r['txids'])}")
            proc.send_signal(signal.SIGINT)
            if proc.wait(timeout=90) != 0:
                fail(f"run 2 exited {proc.returncode} on SIGINT")
        text = open(logpath).read()[mark:]
        if "starting at block 20" not in text:
            fail("run 2 did not start at B's block 20")
        print(f"OK: A's block {c} (above the lowest checkpoint at the start) re-read: all {n} "
              f"of A's transactions' rolled_back as the node's ({back} rolled back)")
    except AssertionError:
        if os.path.exists(logpath):
            lines = [ln for ln in open(logpath).read().splitlines() if " stats " not in ln]
            print("--- blockpipe log (no stats lines, tail) ---\n" + "\n".join(lines)[-4000:])
        raise
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
