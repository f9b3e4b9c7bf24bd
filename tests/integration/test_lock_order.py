"""A lost writer lock stops the batch before ANY output writes it, whatever the outputs' order
(issue 13 part 6; docs/ARCHITECTURE.md "Chains over several hosts"): here the PostgreSQL output,
whose advisory lock is the one that can be lost, is listed AFTER a jsonl output.

A simnode chain (a block every 0.2 s); A and W each write a jsonl directory of their own and
then the shared PostgreSQL (--output jsonl:DIR --output postgres://...).
1. A writes; W waits for the chain's lock, naming A. X, with A's jsonl directory as its only
   output and --lock-wait 0, is refused, naming A and the directory's lock file.
2. A is paused (SIGSTOP) and its backend terminated (the lock goes with it): W takes the chain
   over. A's jsonl checkpoint is read while A is paused.
3. A is let go (SIGCONT): its next batch must find the lock gone before writing anything
   (its PostgreSQL write alone would find out only after the jsonl output had taken the
   batch), and A must wait for the lock again, naming W. Only a batch whose locks were checked
   before the pause may still reach A's jsonl directory: its blocks are ones A had fetched
   before it was paused, all at or below the node's head read while A is paused (the node is
   let run 10 blocks past that before A goes on, so a batch begun afterwards would hold later
   blocks). The pause may land anywhere between that check and the write, before or after
   the write's "writing" debug line: a check that allowed only the block of such a line
   failed when the pause fell before it (seen under load).
4. W and A stopped: PostgreSQL holds blocks 0..checkpoint once each, as the node's.
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
    Fail, blockpipe_bin, chain_number, hx, run, WRITER_LOCK, tail, wait_for)
from pgcheck import RunProc as Proc  # noqa: E402
from simnode import Simnode  # noqa: E402

CHAIN = "5001"
HANG = 90


def jsonl_cp(d):
    try:
        with open(os.path.join(d, "checkpoint.json")) as f:
            return json.load(f)["chains"][CHAIN]["number"]
    except (OSError, KeyError, ValueError):
        return -1


def head(node):
    return int(node.rpc_batch([("eth_blockNumber", [])])[0], 16)


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-lock-order-")
    procs = []
    node = Simnode(bp, ["--chain-id", CHAIN, "--seed", "5", "--block-time", "0.2",
                        "--start-head", "10", "--txs-per-block", "1-3"])
    try:
        with Postgres() as pg:
            def args(name):
                return ["--rpc", node.urls[0], "--output", f"jsonl:{tmp.name}/{name}",
                        "--output", pg.url(), "--start-block", "0", "--poll-interval", "0.2",
                        "--stats-interval", "5", "--log-level", "debug"]
            a = Proc(bp, tmp.name, "A", args("a"))
            procs.append(a)
            wait_for(lambda: a.alive() and chain_number(pg, CHAIN) >= 15, HANG, "A writing")
            w = Proc(bp, tmp.name, "W", args("w"))
            procs.append(w)
            wait_for(lambda: w.alive() and "waiting for it to let go" in w.text(), HANG,
                     "W waiting for the lock")
            # a jsonl directory has one writer: X on A's directory alone is refused, naming A
            rc, out = run([bp, "run", "--rpc", node.urls[0], "--output", f"jsonl:{tmp.name}/a",
                           "--start-block", "0", "--lock-wait", "0"], timeout=HANG)
            refused = [ln for ln in out.splitlines() if "not writing it too" in ln]
            if rc == 0 or not refused or f"pid {a.pid}" not in refused[0] \
                    or "blockpipe.lock" not in refused[0]:
                raise Fail(f"X on A's jsonl directory must be refused naming A (pid {a.pid}) "
                           f"and the lock file; exit {rc}:\n{out[-2000:]}")
            print("1: A writes, W waits; X on A's jsonl directory is refused:",
                  refused[0][-160:])

            a.p.send_signal(signal.SIGSTOP)
            time.sleep(0.5)  # stopped for sure: what A has fetched is at or below this head
            top_paused = head(node)
            pg.sql(f"SELECT pg_terminate_backend({pg.sql(WRITER_LOCK)[0][0]})")
            wait_for(lambda: w.alive() and "this process writes the chain now" in w.text(),
                     HANG, "W taking the chain over")
            at = chain_number(pg, CHAIN)
            wait_for(lambda: w.alive() and chain_number(pg, CHAIN) >= at + 5, HANG, "W writing")
            held = jsonl_cp(f"{tmp.name}/a")
            wait_for(lambda: head(node) >= top_paused + 10, HANG, "the node going on")
            print(f"2: A paused with its jsonl at block {held} (the node's head {top_paused}); "
                  f"W took the chain over at {at}")

            a.p.send_signal(signal.SIGCONT)
            wait_for(lambda: a.alive() and "waiting to take the chain's lock again" in a.text(),
                     HANG, "A noticing it lost the lock")
            now = jsonl_cp(f"{tmp.name}/a")
            lost = [ln for ln in a.text().splitlines() if "waiting to take the chain's lock" in ln]
            # the batch A had checked its locks for before the pause may end; nothing after it
            if not held <= now <= top_paused:
                raise Fail(f"A's jsonl output went from block {held} to {now} (the node's head "
                           f"was {top_paused} while A was paused) after A's lock was taken by "
                           f"W: a batch begun after A was let go was written to it without the "
                           f"lock:\n{tail(a.path)}")
            if f"pid {w.pid}" not in lost[0]:
                raise Fail(f"A must say W (pid {w.pid}) holds the lock:\n{tail(a.path)}")
            wait_for(lambda: a.text().count("waiting for it to let go") >= 1, HANG,
                     "A waiting for the lock again")
            print(f"3: A let go: its jsonl at {now} (the batch it had checked, if any); A says: "
                  f"{lost[0][-200:]}")

            w.stop()
            a.stop()
            top = chain_number(pg, CHAIN)
            blocks = pg.sql(f"SELECT number, {hx('hash')} FROM blocks WHERE chain = '{CHAIN}' "
                            f"ORDER BY number")
            if [int(b[0]) for b in blocks] != list(range(top + 1)):
                raise Fail(f"PostgreSQL holds {len(blocks)} blocks, want 0..{top} once each")
            want = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False])
                                   for n in range(top + 1)])
            for (n, h), b in zip(blocks, want):
                if h != b["hash"]:
                    raise Fail(f"block {n} is {h}, the node's {b['hash']}")
            print(f"4: PostgreSQL holds blocks 0..{top} once each, as the node's")
    finally:
        for p in procs:
            p.kill()
        node.kill()
        tmp.cleanup()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
