"""Chaos: three simnode endpoints with different faults; backfill 10,000 blocks, then follow
a head that reorgs. The output must equal simnode's canonical chain exactly.

simnode: 10,000 blocks at start (small blocks: this is about the pipeline, not bytes), a new
block every 0.3 s afterwards, a depth-3 reorg every 2 s. Endpoints:
  ep1 healthy but slow (latency 5 ms) and rate-limited (429 above 20 requests/s)
  ep2 drops connections and answers garbage or truncated JSON
  ep3 lags 30 blocks behind the head
`blockpipe run --start-block 0` with the three as a pool follows it until caught up and
through several reorgs, then stops on SIGINT (exit 0). Checked: every block 0..checkpoint
once with unbroken parent links, every field of every block, transaction and log equal to
simnode's block of that hash (the newest included: simnode serves a block orphaned after the
stop by its hash), the blocks more than the reorg depth below the checkpoint on simnode's
canonical chain, every
fault kind counted by simnode (> 0) and reflected in blockpipe's per-endpoint stats (429s on
rpc[0], errors/ejections on rpc[1], a head behind on rpc[2]), and reorgs reported.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402
import rowcheck  # noqa: E402

BP = os.environ["BLOCKPIPE"]
START = 10000
CLEAN = 3  # ep4: no faults, not given to blockpipe - the test's own view of the chain
CHAIN = "1337"  # simnode's default chain id


def fail(msg):
    raise AssertionError(msg)


def db_rows(db):
    if not os.path.exists(db):
        return None, []
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        cp = c.execute("SELECT number FROM checkpoints").fetchone()
        rows = c.execute("SELECT number, hash, parent_hash FROM blocks ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return None, []
    finally:
        c.close()
    return (cp[0] if cp else None), rows


def main():
    print(__doc__.strip().splitlines()[0])
    faults = ("ep1:latency=5ms,rate_limit=20;"
              "ep2:reset_rate=0.03,garbage_rate=0.03,truncate_rate=0.03;"
              "ep3:lag=30")
    sim = Simnode(BP, ["--txs-per-block", "0-4", "--start-head", str(START), "--block-time",
                       "0.3", "--reorg-every", "2", "--reorg-depth", "3", "--faults", faults],
                  endpoints=4)
    bp = None
    try:
        urls = sim.urls[:CLEAN]
        with tempfile.TemporaryDirectory(prefix="bp-chaos-") as tmp:
            db = os.path.join(tmp, "bp.db")
            err_path = os.path.join(tmp, "stderr.log")
            err = open(err_path, "w")
            rpcs = []
            for i, u in enumerate(urls):
                rpcs += ["--rpc", json.dumps({"url": u, "max_workers": 4, "priority": i})]
            bp = subprocess.Popen([BP, "run", *rpcs, "--output", f"sqlite:{db}",
                                   "--start-block", "0", "--poll-interval", "0.2",
                                   "--stats-interval", "1", "--max-retries", "1000",
                                   "--rpc-timeout", "5"], stderr=err)
            t0 = time.monotonic()
            while True:
                if bp.poll() is not None:
                    fail(f"blockpipe exited {bp.returncode}:\n{open(err_path).read()[-3000:]}")
                cp, _ = db_rows(db)
                head = sim.stats(CLEAN)["head"]
                if cp is not None and cp >= head - 2:
                    break
                if time.monotonic() - t0 > 300:
                    fail(f"not caught up after 300 s: checkpoint {cp}, head {head}\n"
                         f"{open(err_path).read()[-3000:]}")
                time.sleep(0.5)
            caught = time.monotonic() - t0
            reorgs_then = sim.stats(CLEAN)["reorgs"]
            while sim.stats(CLEAN)["reorgs"] < reorgs_then + 3:  # follow through 3 more reorgs
                if time.monotonic() - t0 > 360:
                    fail("simnode made no reorgs")
                time.sleep(0.3)
            time.sleep(1.0)
            bp.send_signal(signal.SIGINT)
            try:
                rc = bp.wait(timeout=30)
            except subprocess.TimeoutExpired:
                fail("blockpipe did not stop within 30 s of SIGINT")
            err.close()
            log = open(err_path).read()
            if rc != 0:
                fail(f"exit {rc} after SIGINT\n{log[-3000:]}")
            # simnode keeps reorging after the stop: the newest few may be orphaned since
            # (compared by hash), the rest must be canonical
            cp, _, counts = rowcheck.sqlite_branch_exact(sim.urls[CLEAN], db, CHAIN, 4)
            if not counts["transactions"] or not counts["logs"]:
                fail(f"the chain has no transactions or logs to compare: {counts}")
            check_faults(sim, log)
            print(f"OK: caught up with {START}+ blocks in {caught:.0f}s, followed through "
                  f"reorgs; {counts['blocks']} blocks, {counts['transactions']} txs and "
                  f"{counts['logs']} logs exact, every field, up to checkpoint {cp}")
    finally:
        if bp and bp.poll() is None:
            bp.kill()
            bp.wait()
        sim.kill()


def check_faults(sim, log):
    st = sim.stats(CLEAN)
    eps = {e["name"]: e for e in st["endpoints"]}
    f1, f2 = eps["ep1"]["faults"], eps["ep2"]["faults"]
    if f1["rate_limit"] == 0 or f1["latency"] == 0:
        fail(f"ep1 faults not exercised: {f1}")
    for k in ("reset", "garbage", "truncate"):
        if f2[k] == 0:
            fail(f"ep2 fault {k} not exercised: {f2}")
    if eps["ep3"]["head"] > st["head"] - 30:
        fail(f"ep3 does not lag: {eps['ep3']['head']} vs {st['head']}")
    last = {}
    for m in re.finditer(r"stats rpc\[(\d)\] \S+ state=\S+ head=(\S+) .*? errors=(\d+) "
                         r"429s=(\d+) ejections=(\d+)", log):
        last[int(m.group(1))] = m.groups()[1:]
    if set(last) != {0, 1, 2}:
        fail("no stats lines for all three endpoints")
    if int(last[0][2]) == 0:
        fail(f"rpc[0] saw no 429: {last[0]}")
    if int(last[1][1]) == 0:
        fail(f"rpc[1] counted no errors: {last[1]}")
    if last[0][0] == "?" or last[2][0] == "?" or int(last[2][0]) >= int(last[0][0]):
        fail(f"rpc[2]'s head {last[2][0]} is not behind rpc[0]'s {last[0][0]}")
    if "reorg:" not in log:
        fail("no reorg reported on stderr")
    print(f"faults: ep1 {f1}\n        ep2 {f2}\n        rpc stats {last}")


if __name__ == "__main__":
    main()
