#!/usr/bin/env python3
"""A backfill's ETA counts to its --to, not to the chain's head.

simnode holds 2,000 blocks (answers slowed to 150 ms, one worker, batches of 4, so the backfill
takes some seconds). `blockpipe backfill --from 0 --to 200 --api` is asked /api/sync-status
while it runs: the chain's target must be 200, left (the blocks up to it not committed yet) at
most 201 and at most target - indexed + 1, and eta_s the time left takes at blocks_per_s (before,
eta_s was the lag to the head over blocks_per_s: ten times too long here). The stats lines'
left=N count to the same target (never above 201).
"""

import math
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import API_ANY, Api, api_port  # noqa: E402
from pgcheck import Fail, blockpipe_bin, script_body, tail  # noqa: E402
from simnode import Simnode  # noqa: E402

TO = 200
HANG = 180  # guards against a hang only
LEFT = re.compile(r" stats head=\d+ .* left=(\d+) eta=")


def sample(api):
    """The first chain of /api/sync-status, or None when there is none yet."""
    status, _, body = api.get("/api/sync-status", timeout=5)
    if status != 200 or not isinstance(body, dict) or not body.get("chains"):
        return None
    return body["chains"][0]


def check(c):
    """One running sample: the target is --to, eta_s counts left, not the lag."""
    if c["target"] != TO:
        raise Fail(f"target {c['target']}, want the backfill's --to {TO}: {c}")
    if c["left"] > TO + 1 or (c["indexed"] is not None and c["left"] > TO - c["indexed"]):
        raise Fail(f"left {c['left']} counts past --to {TO} (indexed {c['indexed']}): {c}")
    # blocks_per_s is shown rounded to 3 decimals: eta_s is left over the rate before that
    bps = c["blocks_per_s"]
    lo = math.ceil(c["left"] / (bps + 0.0005))
    hi = math.ceil(c["left"] / (bps - 0.0005)) if bps > 0.0005 else math.inf
    if not lo <= c["eta_s"] <= hi:
        raise Fail(f"eta_s {c['eta_s']}, want {lo}..{hi} (left {c['left']} at {bps} "
                   f"blocks/s; the lag to the head is {c['lag']}): {c}")


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    with script_body("OK: /api/sync-status's eta_s and the stats line count to --to") as keep:
        with tempfile.TemporaryDirectory(prefix="bp-sync-eta-") as tmp:
            node = keep(Simnode(bp, ["--block-time", "0", "--length", "2000",
                                     "--txs-per-block", "2", "--faults", "ep1:latency=150ms"]))
            log_path = os.path.join(tmp, "run.log")
            with open(log_path, "w") as log:
                proc = keep(subprocess.Popen(
                    [bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", str(TO),
                     "--workers", "1", "--batch-size", "4", "--stats-interval", "1",
                     "--output", f"sqlite:{tmp}/out.db", "--api", API_ANY],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
            api = Api(api_port(log_path, HANG, proc))
            seen = []
            deadline = time.monotonic() + HANG
            while proc.poll() is None and time.monotonic() < deadline and len(seen) < 3:
                try:
                    c = sample(api)
                except OSError:  # the backfill ended and its API with it
                    break
                if c and c.get("target") is not None and c["left"] > 0 and c["blocks_per_s"]:
                    check(c)
                    seen.append(c)
                time.sleep(0.2)
            if not seen:
                raise Fail(f"no running sample of /api/sync-status with a rate:\n{tail(log_path)}")
            c = seen[0]
            print(f"check: {len(seen)} samples: target {c['target']}, left {c['left']}, "
                  f"eta_s {c['eta_s']} at {c['blocks_per_s']} blocks/s (head {c['head']}, lag "
                  f"{c['lag']})", flush=True)
            rc = proc.wait(HANG)
            text = open(log_path, errors="replace").read()
            if rc != 0:
                raise Fail(f"the backfill exited {rc}:\n{tail(log_path)}")
            lefts = [int(n) for n in LEFT.findall(text)]
            if not lefts or any(n > TO + 1 for n in lefts):
                raise Fail(f"a stats line's left= counts past --to {TO}: {lefts}")
            print(f"check: the stats lines' left= ({lefts[:5]}...) count to --to", flush=True)


if __name__ == "__main__":
    main()
