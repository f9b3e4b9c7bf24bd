"""Retry-After is honoured: after a 429 the endpoint stays idle as long as the header asks.

simnode ep1 serves 3 requests per quota window and answers the rest with HTTP 429. blockpipe
backfills through it with one worker (so its requests never overlap: the time simnode sees
from a 429 to the next request is blockpipe's pause, not a request that was already on its
way). Three runs, each must store every block once:
  retry_after=3     every 429 says `Retry-After: 3`: the gap is at least 3 s
  retry_after=none  no header: the default pause of 1 s applies, the gap is at least 1 s
  retry_after=date  an HTTP-date (the window's end, 3 s windows): no request arrives inside
                    the wait it names
The bounds are what the code guarantees (a lower bound, minus 100 ms for clock rounding), not
a speed: a loaded machine only makes the gaps longer.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
LAST = 39
TOLERANCE_MS = 100


def fail(msg):
    raise AssertionError(msg)


def backfill(faults):
    """Backfills 0..LAST through a simnode with `faults` on ep1; returns ep1's counters."""
    sim = Simnode(BP, ["--block-time", "0", "--length", "5000", "--txs-per-block", "1",
                       "--faults", faults])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-retryafter-") as tmp:
            db = os.path.join(tmp, "out.db")
            rpc = json.dumps({"url": sim.urls[0], "max_workers": 1})
            p = subprocess.run([BP, "backfill", "--rpc", rpc, "--from", "0", "--to", str(LAST),
                                "--output", f"sqlite:{db}"],
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                fail(f"{faults}: backfill exited {p.returncode}:\n{p.stderr[-3000:]}")
            c = sqlite3.connect(db)
            numbers = [n for (n,) in c.execute("SELECT number FROM blocks ORDER BY number")]
            c.close()
        if numbers != list(range(LAST + 1)):
            fail(f"{faults}: {len(numbers)} blocks stored, want 0..{LAST} once each")
        stats = sim.stats()["endpoints"][0]
    finally:
        sim.stop()
        sim.kill()
    print(f"{faults}: requests={stats['requests']} 429s={stats['faults']['rate_limit']} "
          f"waits={stats['waits']}")
    if stats["faults"]["rate_limit"] < 1:
        fail(f"{faults}: simnode never answered 429 (nothing was tested): {stats}")
    if stats["waits"]["ignored"] != 0 or stats["waits"]["in_flight"] != 0:
        fail(f"{faults}: requests arrived inside an announced wait: {stats['waits']}")
    return stats


def main():
    print(__doc__.strip().splitlines()[0])
    for ra, want_ms in (("3", 3000), ("none", 1000)):
        stats = backfill(f"quota=3,quota_window=1s,retry_after={ra}")
        gap = stats["waits"]["min_gap_ms"]
        if gap < want_ms - TOLERANCE_MS:
            fail(f"retry_after={ra}: a request came {gap} ms after a 429, want >= {want_ms} ms")
    stats = backfill("quota=3,quota_window=3s,retry_after=date")
    if stats["waits"]["announced"] < 1:
        fail(f"retry_after=date: no wait announced: {stats['waits']}")
    print("ok: Retry-After seconds, its absence and an HTTP-date each kept the endpoint idle")


if __name__ == "__main__":
    main()
