"""A second `make run` resumes the devnet chain the first one indexed.

scripts/run.sh is started as `make run` starts it (BLOCKPIPE: the build under test,
API_LISTEN: a free loopback port, OUTPUT: a temp SQLite file), three times:
- run 1: a new anvil chain; once some blocks are committed, Ctrl-C (SIGINT to the script):
  blockpipe exits 0, anvil is stopped (no anvil left with our state file) and its chain is
  kept beside the output (blockpipe.db.anvil.json);
- run 2: anvil resumes that chain, blockpipe resumes after its checkpoint and commits blocks
  above it. Before, run.sh started a new devnet (same chain id 31337, other blocks) and
  blockpipe waited under its checkpoint for ever: committed stayed where run 1 left it.
  The blocks table is then one chain: each block once, its parent the block below it;
- run 3, with the kept chain removed: run.sh refuses at once (exit 1), naming the database,
  rather than start a devnet the database's blocks do not belong to.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import Api  # noqa: E402
from pgcheck import Fail, blockpipe_bin, wait_for  # noqa: E402
from server import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANG = 90  # a hang guard only


def anvils_with(state):
    """PIDs of anvil processes whose command line names our state file."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"anvil") and state.encode() in args:
            pids.append(int(pid))
    return pids


class Run:
    """scripts/run.sh with its output collected."""

    def __init__(self, env, cwd):
        self.out = []
        self.proc = subprocess.Popen(["bash", os.path.join(ROOT, "scripts", "run.sh")],
                                     env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.reader = threading.Thread(target=lambda: self.out.extend(self.proc.stdout),
                                       daemon=True)
        self.reader.start()

    def text(self):
        return "".join(self.out)

    def stop(self):
        """Ctrl-C; returns the script's exit status."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(HANG)
        self.reader.join(10)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # its EXIT trap stops anvil and the traffic
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def committed(api):
    try:
        chains = api.ok("/api/sync-status").get("chains") or [{}]
    except (OSError, AssertionError, ValueError):
        return 0
    return chains[0].get("committed") or 0


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-makerun-resume-")
    db = os.path.join(tmp.name, "bp.db")
    state = db + ".anvil.json"
    runs = []
    try:
        def start():
            port = free_port()
            env = dict(os.environ, BLOCKPIPE=blockpipe_bin(), API_LISTEN=f"127.0.0.1:{port}",
                       OUTPUT=f"sqlite:{db}", STATS_INTERVAL="5")
            for name in ("RPC_URL", "ANKR_RPC_URL", "ANVIL_STATE"):
                env.pop(name, None)
            runs.append(Run(env, tmp.name))
            return runs[-1], Api(port)

        run, api = start()
        wait_for(lambda: committed(api) >= 4, HANG, "run 1: blocks committed")
        rc = run.stop()
        if rc != 0 or "blockpipe stopped (exit 0)" not in run.text():
            raise Fail(f"run 1: run.sh exited {rc} after Ctrl-C")
        left = anvils_with(state)
        if left:
            raise Fail(f"run 1: anvil still running after run.sh exited: pids {left}")
        if not os.path.getsize(state) > 0:
            raise Fail(f"run 1: the devnet's chain was not kept in {state}")
        with sqlite3.connect(db) as c:
            first = c.execute("select max(number) from blocks").fetchone()[0]
        print(f"check: run 1 committed blocks up to {first}, stopped cleanly, kept its chain",
              flush=True)

        run, api = start()
        wait_for(lambda: "resuming the chain kept in" in run.text(), HANG,
                 "run 2: anvil resuming the kept chain")
        wait_for(lambda: committed(api) >= first + 3, HANG,
                 f"run 2: blocks committed above run 1's last block {first}")
        rc = run.stop()
        if rc != 0:
            raise Fail(f"run 2: run.sh exited {rc} after Ctrl-C")
        with sqlite3.connect(db) as c:
            rows = c.execute("select number, hash, parent_hash from blocks order by number"
                             ).fetchall()
        low = rows[0][0]  # (run 1 starts at anvil's head then: --start-block latest)
        if [r[0] for r in rows] != list(range(low, low + len(rows))):
            raise Fail(f"run 2: the blocks are not {low}..{low + len(rows) - 1} once each")
        for below, b in zip(rows, rows[1:]):
            if b[2] != below[1]:
                raise Fail(f"run 2: block {b[0]}'s parent {b[2]} is not block {below[0]} "
                           f"{below[1]}: two chains in one table")
        print(f"check: run 2 resumed: blocks {low}..{rows[-1][0]}, one chain", flush=True)

        os.remove(state)
        run, _ = start()
        rc = run.proc.wait(HANG)
        run.reader.join(10)
        if rc != 1 or db not in run.text() or "start afresh" not in run.text():
            raise Fail(f"run 3 (kept chain removed): run.sh exited {rc}, expected 1 naming "
                       f"{db}:\n{run.text()}")
        print("check: run 3 without the kept chain: refused, naming the database", flush=True)
    except (Fail, AssertionError, TimeoutError, OSError, KeyError,
            subprocess.TimeoutExpired) as e:
        if runs:
            print(runs[-1].text()[-6000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for r in runs:
            r.kill()
        tmp.cleanup()
    print(f"OK: a second make run resumes the devnet's chain ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
