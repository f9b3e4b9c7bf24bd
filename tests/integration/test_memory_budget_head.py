"""One chain at the head stays within its memory budget: 20 MB (19.07 MiB) resident.

simnode makes a 200-tx block every 2 s from block 0 (the shape of bench/memory_bench.py's
head scenario); `blockpipe run` follows it into SQLite with the derived tables (the default)
and the API on, as `make run` does. Its resident set (VmRSS) is read every half second from
the time it has stored its first blocks to the end, and its peak (VmHWM, from the start: there
is nothing to backfill) is read at the end: both must stay within the budget, and the chain
must have been followed (blocks stored). The API's push ring is resident at its full size
from the start (src/api/push.c), so what it takes after hours at the head is in what is
measured here: a second run with a ring of 30,000 events (4.5 MiB more than the default
4,096) must be about that much bigger. A budget, not a timing: nothing here is timed.

As test_memory_budget.py, measured on a release build of these sources (made incrementally
in BP_BUILD_DIR/rss-release): AddressSanitizer's shadow memory would be what is measured
otherwise.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simnode import Simnode  # noqa: E402
from test_memory_budget import release_binary  # noqa: E402

BUDGET_MIB = 20e6 / (1 << 20)  # 20 MB
BIG_RING = 30000


def fail(msg):
    raise AssertionError(msg)


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0])
    return out


def stored(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return c.execute("SELECT count(*) FROM blocks").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0  # not made yet


def head_run(bp, node, tmp, seconds, ring=None):
    """(max VmRSS MiB at the head, VmHWM MiB, blocks stored, least VmRSS MiB at the head) of
    `run` following node."""
    db = os.path.join(tmp, f"head{ring or ''}.db")
    cfg = {"output": f"sqlite:{db}", "log_level": "warn", "api": "127.0.0.1:0",
           "chains": [{"name": "h", "chain_id": 4000, "rpc": node.urls[0]}]}
    if ring:
        cfg["api_push_ring"] = ring
    path = os.path.join(tmp, "head.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(tmp, "head.log"), "w+")
    p = subprocess.Popen([bp, "run", "--config", path], stdout=log, stderr=subprocess.STDOUT)
    top = hwm = 0
    least = float("inf")
    try:
        end = time.monotonic() + seconds
        while stored(db) < 3:  # at the head: its first blocks are written
            if p.poll() is not None or time.monotonic() > end + 60:
                break
            time.sleep(0.5)
        while time.monotonic() < end and p.poll() is None:
            s = status_kib(p.pid)
            top, hwm = max(top, s["VmRSS"]), s["VmHWM"]
            least = min(least, s["VmRSS"])
            time.sleep(0.5)
        if p.poll() is not None:
            log.seek(0)
            fail(f"run exited {p.returncode}: {log.read()[-3000:]}")
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(60)
        log.close()
    return top / 1024, hwm / 1024, stored(db), least / 1024


def main():
    print(__doc__.strip())
    bp = release_binary()
    node = Simnode(bp, ["--block-time", "2", "--txs-per-block", "200", "--chain-id", "4000",
                        "--seed", "20"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-headmem-") as tmp:
            top, hwm, blocks, least = head_run(bp, node, tmp, 40)
            print(f"at the head: {blocks} blocks stored, VmRSS up to {top:.2f} MiB, "
                  f"peak (VmHWM) {hwm:.2f} MiB, budget {BUDGET_MIB:.2f} MiB")
            if blocks < 10:
                fail(f"only {blocks} blocks stored in 40 s of 2 s blocks: the head was not "
                     f"followed")
            if top > BUDGET_MIB:
                fail(f"VmRSS reached {top:.2f} MiB at the head, over the budget of "
                     f"{BUDGET_MIB:.2f} MiB (20 MB)")
            if hwm > BUDGET_MIB:
                fail(f"the peak resident set (VmHWM) was {hwm:.2f} MiB, over the budget of "
                     f"{BUDGET_MIB:.2f} MiB (20 MB)")
            # the least readings: between blocks, what the process holds when idle
            _, _, _, big = head_run(bp, node, tmp, 20, ring=BIG_RING)
            print(f"VmRSS at least {least:.2f} MiB; with a push ring of {BIG_RING} events: "
                  f"{big:.2f} MiB")
            more = (BIG_RING - 4096) * 184 / (1 << 20)
            if big < least + 0.75 * more:
                fail(f"a ring of {BIG_RING} events ({more:.1f} MiB more than 4,096) "
                     f"made the process {big - least:.2f} MiB bigger: the ring is not resident "
                     f"at its full size from the start, so a head run measures less than it "
                     f"takes after hours")
            print("ok: one chain at the head within 20 MB, push ring included")
    finally:
        node.kill()


if __name__ == "__main__":
    main()
