"""Writer locks never deadlock across processes (issue 13 part 6; docs/ARCHITECTURE.md "Chains
over several hosts", "Waiting holds no lock"): two processes write one chain to the same
PostgreSQL and the same jsonl directory D, so each needs two locks (PostgreSQL's advisory lock
and D's flock). A chain waiting for a busy lock gives back those it holds, and the directory's
lock goes with the chain's claim, not with the output's close.

Per order of the outputs ([postgres, jsonl:D], then [jsonl:D, postgres] in a schema of its own):
1. A writes; B, a standby, waits for the chain naming A.
2. A is paused (SIGSTOP) and its PostgreSQL backend terminated: its advisory lock is free
   while A still holds D. With postgres listed first B takes that lock and finds D busy:
   before the fix it kept the PostgreSQL lock while it waited for D, and A, let go on, found
   its lock taken and waited for it holding D - neither ever wrote again. Now B gives the
   lock back (it says so at debug level) and waits for D holding nothing.
3. A is let go (SIGCONT): the chain must move on (A takes its lock again and writes, or, had
   B held the lock at that moment, A gives D back and B writes).
4. Whichever writes is stopped (SIGTERM): the other must take the chain over and write.
5. Both stopped: PostgreSQL holds blocks 0..checkpoint once each, the node's, and D's
   blocks.jsonl has every block up to its checkpoint once (reverts applied), the node's.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import (  # noqa: E402
    Fail, blockpipe_bin, chain_number, hx, lock_holder, tail, wait_for)
from pgcheck import RunProc as Proc  # noqa: E402
from simnode import Simnode  # noqa: E402

CHAIN = "5001"
HANG = 90


def jsonl_blocks(d):
    """{number: hash} of D's blocks.jsonl with its revert lines applied, and its checkpoint;
    a block applied twice without a revert between is a Fail."""
    with open(os.path.join(d, "checkpoint.json")) as f:
        top = json.load(f)["chains"][CHAIN]["number"]
    have = {}
    with open(os.path.join(d, "blocks.jsonl")) as f:
        for ln in f:
            o = json.loads(ln)
            if o["type"] == "revert":
                have.pop(o["number"], None)
            elif o["number"] in have:
                raise Fail(f"{d}: block {o['number']} written twice")
            else:
                have[o["number"]] = o["hash"]
    return have, top


def check(pg, node, schema, d):
    top = chain_number(pg, CHAIN, schema)
    blocks = pg.sql(f"SELECT number, {hx('hash')} FROM {schema}.blocks WHERE chain = "
                    f"'{CHAIN}' ORDER BY number")
    if [int(b[0]) for b in blocks] != list(range(top + 1)):
        raise Fail(f"PostgreSQL holds {len(blocks)} blocks, want 0..{top} once each")
    have, jtop = jsonl_blocks(d)
    if sorted(have) != list(range(jtop + 1)):
        raise Fail(f"{d} holds blocks {sorted(have)[:5]}... ({len(have)}), want 0..{jtop}")
    upto = max(top, jtop)
    want = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(upto + 1)])
    for n, h in blocks:
        if h != want[int(n)]["hash"]:
            raise Fail(f"PostgreSQL block {n} is {h}, the node's {want[int(n)]['hash']}")
    for n, h in have.items():
        if h != want[n]["hash"]:
            raise Fail(f"{d}: block {n} is {h}, the node's {want[n]['hash']}")
    return top, jtop


def scenario(bp, node, pg, tmp, order):
    schema = "pgfirst" if order == "pg-first" else "dirfirst"
    d = os.path.join(tmp, f"d-{order}")
    jsonl = ["--output", f"jsonl:{d}"]
    pgout = ["--output", pg.url(query=f"schema={schema}")]
    outs = pgout + jsonl if order == "pg-first" else jsonl + pgout
    args = ["--rpc", node.urls[0], *outs, "--start-block", "0", "--poll-interval", "0.2",
            "--stats-interval", "5", "--log-level", "debug"]
    procs = []
    try:
        a = Proc(bp, tmp, f"A-{order}", args)
        procs.append(a)
        wait_for(lambda: a.alive() and chain_number(pg, CHAIN, schema) >= 15, HANG,
                 f"{order}: A writing")
        b = Proc(bp, tmp, f"B-{order}", args)
        procs.append(b)
        wait_for(lambda: b.alive() and "waiting for it to let go" in b.text(), HANG,
                 f"{order}: B waiting for the lock")
        print(f"{order} 1: A writes, B waits")

        a.p.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        h = lock_holder(pg)
        if not h or f"pid {a.pid}" not in h[1]:
            raise Fail(f"{order}: the lock holder is {h}, want A (pid {a.pid})")
        pg.sql(f"SELECT pg_terminate_backend({h[0]})")
        paused_at = chain_number(pg, CHAIN, schema)
        if order == "pg-first":
            # B takes the free PostgreSQL lock and finds D held by A: it must give the lock
            # back (a debug line) - before the fix it kept it (pg_locks shows B holding it)
            def b_tried():
                hb = lock_holder(pg)
                return (hb and f"pid {b.pid}" in hb[1]) or "its lock given back" in b.text()
            wait_for(b_tried, HANG, f"{order}: B trying the free PostgreSQL lock")
            hb = lock_holder(pg)
            print(f"{order} 2: A paused, its backend terminated; B tried the lock, holder now "
                  f"{hb}")
        else:
            time.sleep(2)  # B polls D, held by the paused A: nothing else to take
            print(f"{order} 2: A paused, its backend terminated; B waits for D")

        a.p.send_signal(signal.SIGCONT)
        try:
            wait_for(lambda: a.alive() and b.alive()
                     and chain_number(pg, CHAIN, schema) >= paused_at + 5, HANG,
                     f"{order}: the chain moving on after A was let go")
        except Fail as e:
            raise Fail(f"{e} (a deadlock: neither writes)\nA:\n{tail(a.path)}\n"
                       f"B:\n{tail(b.path)}") from None
        h = lock_holder(pg)
        writer, other = (a, b) if h and f"pid {a.pid}" in h[1] else (b, a)
        if not h or f"pid {writer.pid}" not in h[1]:
            raise Fail(f"{order}: the lock holder is {h}, neither A nor B")
        print(f"{order} 3: A let go; {writer.name} writes ({paused_at} -> "
              f"{chain_number(pg, CHAIN, schema)})")

        writer.stop()
        at = chain_number(pg, CHAIN, schema)
        wait_for(lambda: other.alive() and "this process writes the chain now" in other.text()
                 and chain_number(pg, CHAIN, schema) >= at + 5, HANG,
                 f"{order}: {other.name} taking the chain over from {writer.name}")
        print(f"{order} 4: {writer.name} stopped at {at}; {other.name} took the chain over and "
              f"writes ({chain_number(pg, CHAIN, schema)})")
        other.stop()
        top, jtop = check(pg, node, schema, d)
        print(f"{order} 5: PostgreSQL blocks 0..{top} and {d} blocks 0..{jtop}, each once, the "
              f"node's")
    finally:
        for p in procs:
            p.kill()


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-lock-giveback-")
    node = Simnode(bp, ["--chain-id", CHAIN, "--seed", "7", "--block-time", "0.2",
                        "--start-head", "10", "--txs-per-block", "1-3"])
    try:
        with Postgres() as pg:
            scenario(bp, node, pg, tmp.name, "pg-first")
            scenario(bp, node, pg, tmp.name, "dir-first")
    finally:
        node.kill()
        tmp.cleanup()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
