"""Providers' request limits, learnt from the endpoint's answers and lived within.

simnode (ours) plays a provider with one limit at a time on endpoint ep1 (ep2 has none and
is the reference the rows are compared with):
  - max_batch=1: every batch answered with one error object (-32600 "batch of 2 exceeds the
    limit of 1"), as several public endpoints and gateways do: single calls from then on;
  - max_batch=10: a batch cap;
  - max_response_bytes=300000: geth's batch answer cap ("response too large" for the calls
    after it): fewer blocks per request.
Each backfill of 0..N runs with --max-retries 0, so a limit counted as a block's failure
would stop it: it must exit 0, hold every row exactly as the node has it, say what it
learnt (no warning), show the limit in the stats lines (main line and the endpoint's line) and count no
error on the endpoint. Then `run --ws` follows a growing chain through the endpoint without
batches, and its rows are compared the same way.
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from rowcheck import Mismatch  # noqa: E402
from rtcheck import Blockpipe, CheckFailed  # noqa: E402
from simnode import Simnode  # noqa: E402

BLOCKS = 120
CHAIN = "1337"
CASES = [
    ("max_batch=1", "no-batches", "refuses batches"),
    ("max_batch=10", "batch<=10", "at most 10 calls per request"),
    ("max_response_bytes=300000", "answers<=", "refuses answers of about"),
]


def one(blockpipe, tmp, faults, shown, said):
    node = Simnode(blockpipe, ["--length", str(BLOCKS), "--block-time", "0", "--txs-per-block",
                               "5-40", "--faults", f"ep1:{faults}"], endpoints=2)
    try:
        db = os.path.join(tmp, re.sub(r"\W", "_", faults) + ".db")
        cmd = [blockpipe, "backfill", "--rpc", node.urls[0], "--from", "0", "--to",
               str(BLOCKS - 1), "--output", f"sqlite:{db}", "--max-retries", "0",
               "--stats-interval", "0.2"]
        print("running:", " ".join(cmd), flush=True)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=300)
        log = p.stderr
        if p.returncode != 0:
            raise Mismatch(f"[{faults}] backfill exited {p.returncode}:\n{log[-3000:]}")
        counts = rowcheck.sqlite_exact(db, rowcheck.fetch(node.urls[1], range(BLOCKS)), CHAIN,
                                       label=faults)
        # said when learnt (a lower cap found by another worker meanwhile is said again)
        if not 1 <= log.count(said) <= 3:
            raise Mismatch(f"[{faults}] '{said}' said {log.count(said)} times, want 1..3:\n"
                           f"{log[-3000:]}")
        loud = [ln for ln in log.splitlines() if re.search(r"Z (warn|error) ", ln)]
        if loud:
            raise Mismatch(f"[{faults}] a limit is not a problem, yet: {loud[:3]}")
        main = [ln for ln in log.splitlines() if " stats head=" in ln]
        ep = [ln for ln in log.splitlines() if " stats rpc[0] " in ln]
        if not main or f"limits=rpc[0]:{shown}" not in main[-1]:
            raise Mismatch(f"[{faults}] the last stats line lacks limits=rpc[0]:{shown}: "
                           f"{main[-1:]}")
        if not ep or f"limits={shown}" not in ep[-1] or " errors=0 " not in ep[-1]:
            raise Mismatch(f"[{faults}] the endpoint's stats line lacks limits={shown} or "
                           f"errors=0: {ep[-1:]}")
        stats = node.stats()
        print(f"[{faults}] OK: {counts} shown as '{shown}'; simnode ep1: "
              f"requests={stats['endpoints'][0]['requests']} "
              f"calls={stats['endpoints'][0]['calls']}", flush=True)
        node.stop()
    finally:
        node.kill()


def follow_without_batches(blockpipe, tmp):
    """`run` at the head of a chain that grows, through an endpoint without batches."""
    node = Simnode(blockpipe, ["--length", "80", "--block-time", "0.2", "--start-head", "20",
                               "--txs-per-block", "5-40", "--faults", "ep1:max_batch=1"],
                   endpoints=2)
    bp = None
    try:
        ws = node.urls[0].replace("http://", "ws://")
        bp = Blockpipe(tmp, ["--rpc", node.urls[0], "--ws", ws, "--start-block", "0",
                             "--max-retries", "0", "--stats-interval", "0.5"], name="follow")
        cp = bp.wait_checkpoint_at_least(60, 120, "following without batches")
        bp.stop()
        log = bp.log()
        if "refuses batches" not in log or "limits=rpc[0]:no-batches" not in log:
            raise Mismatch(f"[run max_batch=1] the limit was not learnt or not shown:\n"
                           f"{bp.tail()}")
        n = bp.checkpoint()[0]
        counts = rowcheck.sqlite_exact(bp.db, rowcheck.fetch(node.urls[1], range(n + 1)), CHAIN,
                                       label="run max_batch=1")
        print(f"[run max_batch=1] OK: followed to {n} (waited for {cp[0]}), rows exact {counts}",
              flush=True)
        node.stop()
    except CheckFailed as e:
        raise Mismatch(f"[run max_batch=1] {e}") from None
    finally:
        if bp:
            bp.kill()
        node.kill()


def main():
    print(__doc__.strip(), flush=True)
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    with tempfile.TemporaryDirectory(prefix="bp-limits-") as tmp:
        try:
            for faults, shown, said in CASES:
                one(blockpipe, tmp, faults, shown, said)
            follow_without_batches(blockpipe, tmp)
        except (Mismatch, AssertionError) as e:
            sys.exit(f"FAIL: {e}")
    print("OK")


if __name__ == "__main__":
    main()
