"""A strict provider as the only endpoint: a backfill completes, and never asks inside a wait.

simnode ep1 serves 8 requests per 4 s window and answers the rest of the window with HTTP 429
and `Retry-After: <whole seconds left>` (quota=8,quota_window=4s), like a strict free plan.
`blockpipe backfill` of 400 blocks with ep1 as its only endpoint and the default
--max-retries must exit 0 with every block stored exactly once and equal to the chain (read
from ep2, which has no faults and which blockpipe does not use), although it was answered
429s (a 429 is not a failed attempt). simnode counts the requests that arrived inside a wait
it had announced (later than 0.5 s after the 429, before which a request may already have
been on its way): there must be none - every worker and the coordinator's own requests keep
to the pause. The stats lines must say the endpoint is rate-limited and at what rate it is
held (learnt from the 429s).
"""

import os
import re
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
LAST = 399


def fail(msg):
    raise AssertionError(msg)


def main():
    print(__doc__.strip().splitlines()[0])
    sim = Simnode(BP, ["--block-time", "0", "--length", "5000", "--txs-per-block", "2",
                       "--faults", "ep1:quota=8,quota_window=4s"], endpoints=2)
    try:
        with tempfile.TemporaryDirectory(prefix="bp-ratelimit-") as tmp:
            db = os.path.join(tmp, "out.db")
            p = subprocess.run([BP, "backfill", "--rpc", sim.urls[0], "--from", "0", "--to",
                                str(LAST), "--output", f"sqlite:{db}", "--stats-interval", "1"],
                               capture_output=True, text=True, timeout=600)
            log = p.stderr
            if p.returncode != 0:
                fail(f"backfill exited {p.returncode}:\n{log[-4000:]}")
            c = sqlite3.connect(db)
            rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
            c.close()
        stats = sim.stats()["endpoints"][0]
        truth = sim.rpc_batch([("eth_getBlockByNumber", [hex(n), False])
                               for n in range(LAST + 1)], ep=1)
    finally:
        sim.stop()
        sim.kill()
    numbers = [n for n, _ in rows]
    if numbers != list(range(LAST + 1)):
        fail(f"blocks stored: {len(rows)} rows, {len(set(numbers))} distinct, want 0..{LAST} "
             f"once each")
    bad = [n for n, h in rows if h != truth[n]["hash"]]
    if bad:
        fail(f"blocks differ from the chain: {bad[:10]}")
    waits = stats["waits"]
    print(f"simnode ep1: requests={stats['requests']} 429s={stats['faults']['rate_limit']} "
          f"waits={waits}")
    if stats["faults"]["rate_limit"] < 1 or waits["announced"] < 1:
        fail(f"the provider never limited the backfill (nothing was tested): {stats}")
    if waits["ignored"] != 0:
        fail(f"{waits['ignored']} request(s) arrived inside a wait the endpoint had announced: "
             f"{waits}\n{log[-3000:]}")
    if "failed after" in log or "attempt " in log:
        fail(f"a 429 was counted as a failed attempt:\n{log[-3000:]}")
    ep_lines = re.findall(r"stats rpc\[0\] \S+ state=(\S+) .* rps=(\S+) .* errors=(\d+) "
                          r"429s=(\d+)", log)
    if not any(state == "rate-limited" for state, _, _, _ in ep_lines):
        fail(f"no stats line says state=rate-limited:\n{log[-3000:]}")
    state, rps, errors, n429 = ep_lines[-1]
    if rps == "-" or float(rps) <= 0 or int(n429) < 1 or int(errors) != 0:
        fail(f"last per-endpoint stats: state={state} rps={rps} errors={errors} 429s={n429}")
    if not re.search(r"stats head=.* rate_limited=rpc\[0\]@\d+\.\d+rps", log):
        fail(f"the main stats line never says the chain is rate-limited:\n{log[-3000:]}")
    print(f"ok: {LAST + 1} blocks once each, held to {rps} requests/s, no request inside an "
          f"announced wait")


if __name__ == "__main__":
    main()
