"""A provider whose quota is used up when blockpipe starts: the start waits it out.

simnode serves 5 requests per 20 s window and answers the rest of the window with HTTP 429 and
`Retry-After: <whole seconds left>` (quota=5,quota_window=20s). The test uses the window's 5
requests up (a sixth is answered 429), then starts `blockpipe backfill`: its eth_chainId is
answered 429 and the endpoint paused for the rest of the window, longer than the start's five
attempts take (1 + 2 + 4 + 8 s: the start failed after them, exit 1). The rate limit must be
waited out, not counted as failed attempts: the log says it waited, the chain starts (its
"starting at block 0" line) and a SIGINT then ends the run with exit 0. (What comes after the
start is other tests' business: the rate the endpoint is held to after the 429 is learnt from
its Retry-After, one request per 18 s here.)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
HANG = 120  # guards against a hang only


def fail(msg):
    raise AssertionError(msg)


def chain_id(url):
    """The HTTP status of one eth_chainId request."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main():
    print(__doc__.strip().splitlines()[0])
    sim = Simnode(BP, ["--block-time", "0", "--length", "100", "--txs-per-block", "2",
                       "--faults", "quota=5,quota_window=20s"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-ratelimit-start-") as tmp:
            got = [chain_id(sim.urls[0]) for _ in range(6)]
            if got != [200] * 5 + [429]:
                fail(f"the quota was not used up as expected: statuses {got}")
            logpath = os.path.join(tmp, "run.log")
            with open(logpath, "w") as log:
                p = subprocess.Popen([BP, "backfill", "--rpc", sim.urls[0], "--from", "0",
                                      "--to", "5", "--fetch", "blocks",
                                      "--output", f"sqlite:{os.path.join(tmp, 'out.db')}"],
                                     stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + HANG
                while "starting at block 0" not in open(logpath).read():
                    if p.poll() is not None:
                        fail(f"backfill exited {p.returncode} before its chain started:\n"
                             f"{open(logpath).read()[-3000:]}")
                    if time.monotonic() > deadline:
                        fail(f"the chain did not start within {HANG} s")
                    time.sleep(0.1)
                p.send_signal(signal.SIGINT)
                rc = p.wait(timeout=HANG)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            text = open(logpath).read()
            if rc != 0:
                fail(f"backfill exited {rc} on SIGINT:\n{text[-3000:]}")
            if "a rate limit is no failed attempt" not in text:
                fail(f"the log does not say the start waited for the rate limit:\n{text[-3000:]}")
            print("the used-up quota was waited out at start; the chain started")
    finally:
        sim.stop()
    print("PASS")


if __name__ == "__main__":
    main()
