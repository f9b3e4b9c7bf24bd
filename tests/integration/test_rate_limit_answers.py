"""Every way a provider says "slower" slows a backfill and never fails it.

Three providers, each the only endpoint of a backfill that must exit 0 with every block
stored once and equal to the chain (read from simnode's second endpoint, which has no faults
and which blockpipe does not use), with no failed attempt in its log:

1. quota spent before the start (a restart while the quota is spent): simnode ep1 serves 20
   requests per 20 s window and the test spends them first, so blockpipe's eth_chainId at
   start is answered 429 with a Retry-After of about 20 s, longer than the start-up's five
   attempts (about 15 s) used to last: the start must wait for it and say so ("asks for a
   pause", "a rate limit is no failed attempt"), not exit 1. The backfill (--fetch blocks:
   one call per block) then needs more requests than one window serves, so it runs on at
   the rate it learns from the next 429, which must be at least a quarter of the quota's
   1 request/s (a loaded machine measures less than the quota; the defect gave 0.05) (the log's "held to X requests/s" and the stats lines' rps=), with at most
   3 pauses in all: a 429 at start used to teach 1 request per Retry-After (0.05/s), and
   9 blocks took 2 minutes.
2. QuickNode's words: over 6 requests a second ep1 answers HTTP 200 with JSON-RPC -32007
   "15/second request limit reached" and no Retry-After. It used to be an ordinary error:
   the block failed after --max-retries.
3. a 503 with a Retry-After (a provider shedding load) over a strict quota: a pause, as a 429.
All three refuse JSON-RPC batches (max_batch=1): every call is a request of its own, so the
backfill's requests (two per block in parts 2 and 3) outrun the limit whatever the machine's
speed.
"""

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]


def fail(msg):
    raise AssertionError(msg)


def spend_quota(url, n):
    """n requests to ep1, whatever it answers (a 429 once the quota is spent)."""
    for _ in range(n):
        req = urllib.request.Request(url, data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError:
            pass


def backfill(sim, tmp, name, last, spend=0, extra=()):
    db = os.path.join(tmp, f"{name}.db")
    if spend:
        spend_quota(sim.urls[0], spend)
    p = subprocess.run([BP, "backfill", "--rpc", sim.urls[0], "--from", "0", "--to", str(last),
                        "--output", f"sqlite:{db}", "--stats-interval", "1", *extra],
                       capture_output=True, text=True, timeout=600)
    log = p.stderr
    if p.returncode != 0:
        fail(f"{name}: backfill exited {p.returncode}:\n{log[-4000:]}")
    c = sqlite3.connect(db)
    rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
    c.close()
    truth = sim.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(last + 1)],
                          ep=1)
    if [n for n, _ in rows] != list(range(last + 1)):
        fail(f"{name}: {len(rows)} blocks stored, want 0..{last} once each")
    bad = [n for n, h in rows if h != truth[n]["hash"]]
    if bad:
        fail(f"{name}: blocks differ from the chain: {bad[:10]}")
    if "failed after" in log or "attempt " in log:
        fail(f"{name}: a rate limit was counted as a failed attempt:\n{log[-3000:]}")
    stats = sim.stats()["endpoints"][0]
    limited = stats["faults"]["rate_limit"]
    if limited < 1:
        fail(f"{name}: the provider never limited the backfill (nothing was tested)")
    print(f"ok {name}: {last + 1} blocks once each, {limited} limit answers")
    return log, stats


def part(name, faults, last, spend=0, want_in_log=(), extra=()):
    sim = Simnode(BP, ["--block-time", "0", "--length", "2000", "--txs-per-block", "2",
                       "--faults", f"ep1:{faults}"], endpoints=2)
    try:
        with tempfile.TemporaryDirectory(prefix="bp-ratelimit-") as tmp:
            log, stats = backfill(sim, tmp, name, last, spend, extra)
    finally:
        sim.stop()
        sim.kill()
    for want in want_in_log:
        if want not in log:
            fail(f"{name}: the log never says {want!r}:\n{log[-3000:]}")
    return log, stats


def rates_learnt(log):
    """Every request rate the log says rpc[0] was held to (429 lines and stats lines)."""
    held = [float(x) for x in re.findall(r"then held to (\d+\.\d+) requests/s", log)]
    stats = [float(x) for x in re.findall(r"stats rpc\[0\] .* rps=(\d+\.\d+)", log)]
    return held, stats


def main():
    print(__doc__.strip().splitlines()[0])
    name = "quota spent at start"
    log, stats = part(name, "quota=20,quota_window=20s,max_batch=1", 23, spend=21,
                      want_in_log=("asks for a pause", "a rate limit is no failed attempt"),
                      extra=("--fetch", "blocks"))
    held, shown = rates_learnt(log)
    if not held:
        fail(f"{name}: no rate was learnt (the backfill stayed within one window: nothing was "
             f"tested):\n{log[-3000:]}")
    if min(held + shown) < 0.25:
        fail(f"{name}: held to {min(held + shown)} requests/s, below a quarter of the quota's "
             f"1 request/s (429 lines: {held}):\n{log[-3000:]}")
    # the start's pause, the end of the first window after it; a rate learnt too high would
    # run into more
    if stats["waits"]["announced"] > 3:
        fail(f"{name}: {stats['waits']['announced']} pauses: {stats}")
    print(f"ok {name}: held to {held} requests/s after the start (quota: 1/s), "
          f"{stats['waits']['announced']} pauses")
    part("QuickNode -32007", "rate_limit=6,limit_answer=rpc32007,max_batch=1", 12)
    part("503 + Retry-After", "quota=8,quota_window=2s,limit_answer=http503,max_batch=1", 12)


if __name__ == "__main__":
    main()
