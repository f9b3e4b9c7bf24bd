"""A node whose head is far below what the output holds is named in the log.

A backfill writes blocks 0..40 of a simnode into SQLite. Then `run` follows another simnode
of the same chain id that starts afresh (head 2, a block a second: a dev node restarted under
the database of the last one), with --reorg-window 8. Nothing below the window can be
compared, so blockpipe can only wait; before, it waited with no word (the stats said
head=3 indexed=40 lag=0). Now one warning names the head, the block the output holds, the
window and the likely causes, and the run goes on waiting (it stops cleanly on SIGINT, the
output's checkpoint still 40).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, kill_running, run, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402

HANG = 60  # a hang guard only


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-below-")
    db = os.path.join(tmp.name, "bp.db")
    old = new = proc = None
    out = []
    try:
        old = Simnode(bp, ["--block-time", "0", "--length", "100", "--txs-per-block", "2"])
        rc, text = run([bp, "backfill", "--rpc", old.urls[0], "--from", "0", "--to", "40",
                        "--output", f"sqlite:{db}"], timeout=HANG)
        if rc != 0:
            raise Fail(f"backfill exited {rc}:\n{text[-3000:]}")
        old.stop()
        print("check: blocks 0..40 of the first node in SQLite", flush=True)

        new = Simnode(bp, ["--block-time", "1", "--start-head", "2", "--seed", "2",
                           "--txs-per-block", "2"])
        proc = subprocess.Popen([bp, "run", "--rpc", new.urls[0], "--output", f"sqlite:{db}",
                                 "--reorg-window", "8", "--poll-interval", "0.2",
                                 "--stats-interval", "1"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
        reader.start()
        wait_for(lambda: any("is far behind" in line or "run done" in line for line in out) or
                 proc.poll() is not None, HANG, "a warning about the head below the output")
        warned = [line for line in out if "below block 40, the last the outputs hold" in line]
        if not warned or "warn" not in warned[0] or "--reorg-window 8" not in warned[0]:
            raise Fail("no warning naming the head below block 40 and the window:\n" +
                       "".join(out[-30:]))
        print(f"check: {warned[0].strip()}", flush=True)
        wait_for(lambda: sum("stats head=" in line for line in out) >= 2, HANG,
                 "two stats lines")
        if sum("is far behind" in line for line in out) != 1:
            raise Fail("the warning was not said once")
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(HANG)
        reader.join(10)
        if rc != 0:
            raise Fail(f"run exited {rc} on SIGINT:\n{''.join(out[-30:])}")
        with sqlite3.connect(db) as c:
            top = c.execute("select max(number) from blocks").fetchone()[0]
        if top != 40:
            raise Fail(f"the output's blocks changed: max {top}, expected 40")
        print("check: said once, the run waits and stops cleanly, the output untouched",
              flush=True)
    except (Fail, AssertionError, OSError, subprocess.TimeoutExpired) as e:
        print("".join(out[-40:]))
        sys.exit(f"FAIL: {e}")
    finally:
        kill_running(proc)
        for node in (old, new):
            if node:
                node.kill()
        tmp.cleanup()
    print("OK: a head far below the output's blocks is named once")


if __name__ == "__main__":
    main()
