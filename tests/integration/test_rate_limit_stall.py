"""A provider that stalls is not a rate limit: the run ends with an error that names the stall.

simnode ep1 answers every request except those calling eth_getBlockReceipts, which it holds
back 5 s (stall_rate=1,stall=5s,stall_method=eth_getBlockReceipts), longer than blockpipe's
--rpc-timeout of 1 s. The endpoint's URL carries an API key in its path (/v3/<key>).

A stall (no answer within --rpc-timeout) counts as a failed attempt: one timeout cannot tell
a provider that stalls from a block whose answer takes longer than --rpc-timeout to build,
and --max-retries is what ends a backfill against a provider that never answers (as against
one that refuses connections); a 429 alone is waited for without counting, because it says
when to come back. So `blockpipe backfill --max-retries 2` must exit 1 (not hang: the test
gives it 120 s) after exactly 3 attempts at the first block, and every message about them
says what happened: no answer within the request timeout (--rpc-timeout, 1000 ms), the
provider stalled, with the endpoint's key masked (never in the log) - not "timed out" alone,
nor anything about the block's size ("outgrew", "too large", "memory").
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
KEY = "0123456789abcdef0123456789abcdef"
HANG = 120  # guards against a hang only


def fail(msg):
    raise AssertionError(msg)


def main():
    print(__doc__.strip().splitlines()[0])
    sim = Simnode(BP, ["--block-time", "0", "--length", "100", "--txs-per-block", "2",
                       "--faults", "stall_rate=1,stall=5s,stall_method=eth_getBlockReceipts"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-stall-") as tmp:
            try:
                p = subprocess.run([BP, "backfill", "--rpc", f"{sim.urls[0]}/v3/{KEY}",
                                    "--from", "0", "--to", "3", "--rpc-timeout", "1",
                                    "--max-retries", "2",
                                    "--output", f"sqlite:{os.path.join(tmp, 'out.db')}"],
                                   capture_output=True, text=True, timeout=HANG)
            except subprocess.TimeoutExpired:
                fail(f"the backfill did not end within {HANG} s against a provider that "
                     f"stalls for ever")
        stalls = sim.stats()["endpoints"][0]["faults"]["stall"]
    finally:
        sim.stop()
        sim.kill()
    log = p.stderr
    if p.returncode != 1:
        fail(f"backfill exited {p.returncode}, want 1:\n{log[-3000:]}")
    if stalls < 3:
        fail(f"simnode stalled {stalls} request(s): nothing was tested")
    if KEY in log:
        fail(f"the endpoint's key is in the log:\n{log[-3000:]}")
    for bad in ("outgrew", "too large", "memory was", "--max-memory"):
        if bad in log:
            fail(f"the log blames the block's size ({bad!r}) for a stall:\n{log[-3000:]}")
    attempts = re.findall(r"block 0: (POST .*) \(attempt (\d) of 3, retrying", log)
    final = re.findall(r"error block 0 failed after (\d+) attempts: block 0: (POST .*)", log)
    if [n for _, n in attempts] != ["1", "2"] or not final or final[0][0] != "3":
        fail(f"want attempts 1 and 2 of 3 at block 0, then 'failed after 3 attempts': "
             f"{attempts} {final}\n{log[-3000:]}")
    want = (f"POST {sim.urls[0]}/v3/***: no answer within the request timeout of 1000 ms "
            f"(--rpc-timeout): the provider stalled")
    for msg in [m for m, _ in attempts] + [m for _, m in final]:
        if not msg.startswith(want):
            fail(f"a stall's message does not say what happened:\n  {msg}\nwant it to start "
                 f"with:\n  {want}")
    print(f"ok: exit 1 after 3 attempts at block 0, {stalls} stalled requests; the error: "
          f"block 0 failed after 3 attempts: {final[0][1]}")


if __name__ == "__main__":
    main()
