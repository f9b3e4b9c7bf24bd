"""Blocks that use up --max-retries are reported, kept in the state, and retried later.

1. The only endpoint is a proxy that answers every block fetch with HTTP 500: `backfill
   --max-retries 1 --state-dir D` must stop with exit 1 and an error naming a block and the
   HTTP 500, commit nothing past the hole, and leave D/<chain>.json listing the failed
   blocks and the command.
2. The endpoint is fixed (a proxy without faults on the same port): `blockpipe
   retry-failed --state-dir D` runs the saved command again; it must exit 0, the output must
   then hold every block exactly once, and the state must say nothing failed.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")


def proxy(upstream, faults, port=0):
    p = subprocess.Popen([sys.executable, os.path.join(TOOLS, "faultproxy.py"), "--upstream",
                          upstream, "--faults", faults, "--every", "1", "--port", str(port),
                          "--only-methods", "eth_getBlockReceipts",
                          "--lifetime", "300"], stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline().split()[1])


def stop(p):
    p.terminate()
    p.wait(timeout=10)


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-retry-") as tmp:
        wl = Workload(node, seed=3)
        wl.setup()
        for _ in range(10):
            wl.mine_batch(2)
        head = node.block_number()
        db, state = os.path.join(tmp, "bp.db"), os.path.join(tmp, "state")
        bad, port = proxy(node.url, "http500")
        try:
            p = subprocess.run([bp, "backfill", "--rpc", f"http://127.0.0.1:{port}", "--from",
                                "0", "--to", str(head), "--output", f"sqlite:{db}",
                                "--max-retries", "1", "--state-dir", state],
                               capture_output=True, text=True, timeout=120)
        finally:
            stop(bad)
        if p.returncode != 1:
            raise AssertionError(f"want exit 1, got {p.returncode}\n{p.stderr[-2000:]}")
        if "failed after 2 attempts" not in p.stderr or "HTTP 500" not in p.stderr:
            raise AssertionError(f"no clear error naming the block:\n{p.stderr[-2000:]}")
        saved = json.load(open(os.path.join(state, "31337.json")))
        if saved["failed_count"] < 1 or not saved["failed"]:
            raise AssertionError(f"state lists no failed block: {saved}")
        first = saved["failed"][0]
        if "HTTP 500" not in first["error"] or saved["argv"][0] != "backfill":
            raise AssertionError(f"state file incomplete: {saved}")
        if os.path.exists(db):
            c = sqlite3.connect(db)
            top = c.execute("SELECT MAX(number) FROM blocks").fetchone()[0]
            c.close()
            if top is not None and top >= min(f["number"] for f in saved["failed"]):
                raise AssertionError(f"block {top} was committed past the hole")
        print(f"run 1: exit 1, {saved['failed_count']} failed block(s) in the state, first "
              f"{first['number']}: {first['error'][:80]}")

        good, _ = proxy(node.url, "", port)
        try:
            p = subprocess.run([bp, "retry-failed", "--state-dir", state],
                               capture_output=True, text=True, timeout=120)
        finally:
            stop(good)
        if p.returncode != 0:
            raise AssertionError(f"retry-failed exited {p.returncode}\n{p.stderr[-2000:]}")
        c = sqlite3.connect(db)
        rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
        c.close()
        want = [(n, node.block(n, False)["hash"]) for n in range(head + 1)]
        if rows != want:
            raise AssertionError(f"after retry-failed the output has {len(rows)} blocks, "
                                 f"want exactly 0..{head}")
        saved = json.load(open(os.path.join(state, "31337.json")))
        if saved["failed_count"] != 0:
            raise AssertionError(f"state still lists failures: {saved}")
        print(f"OK: retry-failed completed 0..{head} exactly; the state lists no failure")


if __name__ == "__main__":
    main()
