"""The API's push ring (--api-push-ring) is part of the memory budget (--max-memory).

The ring is resident at its full size from the start (184 bytes an event, src/api/push.c):
it is charged to the budget as part of the process's fixed part (one ring for every chain of
the process), so what is left for blocks shrinks by its size.
- A ring that alone does not fit in the budget is refused at start, before it is made, naming
  both sizes (one chain, and a `chains:` config whose max_memory is the whole process's).
- One that fits but leaves blocks less than their minimum is refused by the pipeline, naming
  the ring among what takes the budget.
- One that fits: a backfill of 300 simnode blocks of 200 transactions with --api and a
  100,000-event ring (17.5 MiB) under --max-memory 96MiB says `push_ring=17.5MiB` and
  `push_mem=HELD/3MiB` (the push share, --api-push-memory) in its stats lines and has 20.5 MiB
  less for blocks (`mem_blocks=`) than a backfill without the API under the same budget (the check that fails without the charge); its peak resident set stays under
  the 96 MiB, ring included, and every block is stored. (The peak alone would not catch a
  ring left uncharged at this size: the fixed part the budget assumes, 44 MiB here, is more
  than such a process holds, and 200-tx blocks peaked at about 70 MiB under 96 without a ring
  (docs/PERFORMANCE.md "memory" notes); the accounting is what this test holds.)

As test_memory_budget.py, the peak is measured on a release build of these sources (made
incrementally in BP_BUILD_DIR/rss-release): AddressSanitizer's shadow memory would be what is
measured otherwise. A budget, not a timing: nothing here is timed.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simnode import Simnode  # noqa: E402
from test_memory_budget import backfill, release_binary  # noqa: E402

EVENT = 184  # bytes a ring event takes (push.c's _Static_assert)
BLOCKS = 300
BUDGET = 96
RING = 100000
MiB = 1 << 20
SHARE_MIB = 3  # --api-push-memory's default, charged with the ring


def fail(msg):
    raise AssertionError(msg)


def refused(bp, args, want, label):
    """args (no node needed: refused before any request) must exit non-zero saying want."""
    p = subprocess.run([bp, *args], capture_output=True, text=True, timeout=60)
    missing = [w for w in want if w not in p.stderr]
    if p.returncode == 0 or missing:
        fail(f"{label}: exit {p.returncode}, missing {missing} in: {p.stderr[-1500:]}")
    print(f"ok: {label}")


def refusals(bp, tmp):
    out = ["--output", f"sqlite:{tmp}/x.db", "--rpc", "http://127.0.0.1:9", "--from", "0",
           "--to", "1"]
    ring = 1000000  # 175.5 MiB
    refused(bp, ["backfill", *out, "--max-memory", "128MiB", "--api", "127.0.0.1:0",
                 "--api-push-ring", str(ring)],
            [f"--api-push-ring {ring} takes {ring * EVENT / MiB:.1f} MiB",
             "--max-memory is 128.0 MiB", "the ring alone does not fit"],
            "a ring larger than the budget is refused at start")
    cfg = os.path.join(tmp, "chains.json")
    with open(cfg, "w") as f:
        json.dump({"output": f"sqlite:{tmp}/c.db", "api": "127.0.0.1:0", "max_memory": "128MiB",
                   "api_push_ring": ring, "chains": [{"name": "a", "chain_id": 1,
                                                      "rpc": "http://127.0.0.1:9"}]}, f)
    refused(bp, ["run", "--config", cfg],
            [f"--api-push-ring {ring} takes", "--max-memory is 128.0 MiB"],
            "a chains: config whose ring is larger than max_memory is refused at start")
    # 400,000 events (70.2 MiB) fit in 96 MiB, but with the process and its outputs no room
    # for blocks is left
    refused(bp, ["backfill", *out, "--max-memory", "96MiB", "--api", "127.0.0.1:0",
                 "--api-push-ring", "400000"],
            ["--max-memory 96 MiB is too small",
             f"the API's push ring and memory ({70.2 + SHARE_MIB:.1f} MiB"],
            "a ring that leaves blocks too little room is refused, naming the ring")


def stats_value(log, key):
    """The last stats line's KEY=N.NMiB, in MiB."""
    found = re.findall(rf" {key}=([0-9.]+)MiB", log)
    if not found:
        fail(f"no stats line with {key}=: {log[-2000:]}")
    return float(found[-1])


def main():
    bp = release_binary()
    with tempfile.TemporaryDirectory(prefix="bp-ring-") as tmp:
        refusals(bp, tmp)
        node = Simnode(bp, ["--length", str(BLOCKS), "--txs-per-block", "200",
                            "--block-time", "0"])
        try:
            db = os.path.join(tmp, "ring.db")
            peak, log = backfill(bp, node.urls[0], f"sqlite:{db}", BLOCKS - 1, "--max-memory",
                                 f"{BUDGET}MiB", "--api", "127.0.0.1:0", "--api-push-ring",
                                 str(RING))
            ring_mib = RING * EVENT / MiB
            if abs(stats_value(log, "push_ring") - ring_mib) > 0.06:
                fail(f"push_ring={stats_value(log, 'push_ring')}MiB, want {ring_mib:.1f}")
            with_ring = stats_value(log, "mem_blocks")
            if not re.search(rf" push_mem=[0-9.]+/{SHARE_MIB}MiB", log):
                fail(f"no push_mem=HELD/{SHARE_MIB}MiB in the stats lines: {log[-1000:]}")
            n = sqlite3.connect(db).execute("SELECT count(*) FROM blocks").fetchone()[0]
            if n != BLOCKS:
                fail(f"{n} blocks stored of {BLOCKS}")
            if peak >= BUDGET:
                fail(f"peak RSS {peak:.1f} MiB with a {ring_mib:.1f} MiB push ring under "
                     f"--max-memory {BUDGET}MiB")
            _, log = backfill(bp, node.urls[0], f"sqlite:{tmp}/plain.db", 5, "--max-memory",
                              f"{BUDGET}MiB")
            if " push_ring=" in log:
                fail(f"push_ring= without --api: {log[-1000:]}")
            without = stats_value(log, "mem_blocks")
            if abs(without - with_ring - ring_mib - SHARE_MIB) > 1:
                fail(f"memory for blocks {without} MiB without the API, {with_ring} MiB with a "
                     f"{ring_mib:.1f} MiB ring and the {SHARE_MIB} MiB push share: they are "
                     f"not charged")
            print(f"ok: a {ring_mib:.1f} MiB ring leaves blocks {with_ring:.0f} MiB of "
                  f"{BUDGET} (without the API: {without:.0f}); peak RSS {peak:.1f} MiB")
        finally:
            node.kill()


if __name__ == "__main__":
    main()
