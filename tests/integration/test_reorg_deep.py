"""A reorg deeper than --reorg-window stops blockpipe with a clear error, and loses nothing.

blockpipe follows an anvil chain with --reorg-window 3; the test replaces the last 6 blocks
(anvil_reorg depth 6). blockpipe must exit non-zero by itself with a message that says the
reorg is deeper than the reorg window, and the SQLite output must still hold the old branch
exactly up to its checkpoint (nothing half-reverted, checkpoint consistent with the rows):
the operator decides, blockpipe never forks silently.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-deep-") as tmp:
        wl = Workload(node, seed=11)
        wl.setup()
        for _ in range(12):
            wl.mine_batch(3)
        head = node.block_number()
        old = {n: node.block(n, False)["hash"] for n in range(head + 1)}
        db = os.path.join(tmp, "bp.db")
        err_path = os.path.join(tmp, "stderr.log")
        with open(err_path, "w") as err:
            proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", f"sqlite:{db}",
                                     "--start-block", "0", "--reorg-window", "3",
                                     "--poll-interval", "0.1", "--stats-interval", "1"],
                                    stderr=err)
        try:
            def caught_up():
                if not os.path.exists(db):
                    return False
                c = sqlite3.connect(db, timeout=10)
                try:
                    row = c.execute("SELECT number FROM checkpoints").fetchone()
                except sqlite3.OperationalError:
                    return False
                finally:
                    c.close()
                return row and row[0] == head
            wait_until(caught_up, 60, f"blockpipe to reach block {head}")
            node.rpc("anvil_reorg", [6, []])
            new_head = node.block_number()
            if node.block(head - 5, False)["hash"] == old[head - 5]:
                raise AssertionError("anvil_reorg did not replace the last 6 blocks")
            print(f"reorg of depth 6 at head {new_head} with --reorg-window 3")
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("blockpipe did not stop by itself on a reorg deeper than "
                                     "the window")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = open(err_path).read()
        if rc == 0:
            raise AssertionError(f"blockpipe exited 0 on a too-deep reorg\n{stderr[-2000:]}")
        if "deeper than the reorg window" not in stderr:
            raise AssertionError(f"no clear error on stderr:\n{stderr[-2000:]}")
        c = sqlite3.connect(db)
        rows = dict(c.execute("SELECT number, hash FROM blocks").fetchall())
        cp = c.execute("SELECT number, hash FROM checkpoints").fetchone()
        c.close()
        if rows != old:
            raise AssertionError("the output changed: it must still hold the old branch whole")
        if cp != (head, old[head]):
            raise AssertionError(f"checkpoint {cp} is not the last applied block {head}")
        line = [ln for ln in stderr.splitlines() if "deeper than the reorg window" in ln][0]
        print(f"OK: exit {rc}; output unchanged ({len(rows)} blocks); stderr: {line.strip()}")


if __name__ == "__main__":
    main()
