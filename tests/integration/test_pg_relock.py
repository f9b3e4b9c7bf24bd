"""A chain's PostgreSQL writer lock lost with its connection (issue 13 part 6; docs/ARCHITECTURE.md
"Chains over several hosts"): the backend holding the advisory lock is ended with
pg_terminate_backend, as a server restart, a network cut or an administrator would.

A simnode chain (a block every 0.2 s) is followed by process A into a private PostgreSQL.
1. A's backend is terminated while nobody else wants the chain: A must notice (its next write
   fails, "connection lost; reconnecting"), take the lock again on its new session (pg_locks:
   another backend, its application_name naming A's pid) and go on writing.
2. W, a second process on the same chain, waits for the lock (naming A). A is stopped
   (SIGSTOP) and its backend terminated: W takes the chain over from A's checkpoint and
   writes. A is let go on (SIGCONT): its next write must find the lock taken, write nothing
   (the batch fails before any row), say so naming W, and go back to waiting for the lock,
   naming W (not exit). W is stopped (SIGTERM): A takes the chain over again from W's
   checkpoint ("this process writes the chain now") and writes.
In the end (A stopped, exit 0) the stored blocks are exactly 0..checkpoint, each with the
node's hash and parent, once, and the transactions are the node's, none twice, none missing.
"""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import (  # noqa: E402
    Fail, blockpipe_bin, chain_number, hx, lock_holder, tail, wait_for)
from pgcheck import RunProc as Proc  # noqa: E402
from simnode import Simnode  # noqa: E402

CHAIN = "5001"
HANG = 90


def check_chain(pg, node, top):
    blocks = pg.sql(f"SELECT number, {hx('hash')}, {hx('parent_hash')} FROM blocks"
                    f" WHERE chain = '{CHAIN}' ORDER BY number")
    if [int(r[0]) for r in blocks] != list(range(top + 1)):
        raise Fail(f"blocks {[int(r[0]) for r in blocks][:5]}... ({len(blocks)} rows), want "
                   f"0..{top} once each")
    want = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(top + 1)])
    for (n, h, ph), b in zip(blocks, want):
        if (h, ph) != (b["hash"], b["parentHash"]):
            raise Fail(f"block {n} is {h} (parent {ph}), the node's {b['hash']}")
    txs = [r[0] for r in pg.sql(f"SELECT {hx('hash')} FROM transactions WHERE chain = "
                                f"'{CHAIN}' ORDER BY block_number, transaction_index")]
    node_txs = [t.lower() for b in want for t in b["transactions"]]
    if txs != node_txs:
        raise Fail(f"{len(txs)} transactions stored, the node has {len(node_txs)} up to {top}")
    return len(txs)


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-relock-")
    procs = []
    node = Simnode(bp, ["--chain-id", CHAIN, "--seed", "9", "--block-time", "0.2",
                        "--start-head", "10", "--txs-per-block", "1-3"])
    try:
        with Postgres() as pg:
            run = ["--rpc", node.urls[0], "--output", pg.url(), "--start-block", "0",
                   "--poll-interval", "0.2", "--stats-interval", "5"]
            a = Proc(bp, tmp.name, "A", run)
            procs.append(a)
            wait_for(lambda: a.alive() and chain_number(pg, CHAIN) >= 15, HANG, "A writing")
            first = lock_holder(pg)
            if not first or f"pid {a.pid}" not in first[1]:
                raise Fail(f"the lock holder is {first}, want A (pid {a.pid})")

            # 1. nobody else wants the chain: A takes its lock again and goes on
            pg.sql(f"SELECT pg_terminate_backend({first[0]})")
            at = chain_number(pg, CHAIN)
            wait_for(lambda: a.alive() and "connection lost; reconnecting" in a.text()
                     and chain_number(pg, CHAIN) >= at + 5, HANG, "A reconnecting and writing on")
            again = lock_holder(pg)
            if not again or again[0] == first[0] or f"pid {a.pid}" not in again[1]:
                raise Fail(f"after the terminate the lock holder is {again}, want A (pid "
                           f"{a.pid}) on a new backend (not {first[0]})")
            print(f"1: backend {first[0]} terminated; A took the lock again on backend "
                  f"{again[0]} and writes on (checkpoint {at} -> {chain_number(pg, CHAIN)})")

            # 2. W waits; A is cut off and W takes over; A waits, then takes it back
            w = Proc(bp, tmp.name, "W", run)
            procs.append(w)
            wait_for(lambda: w.alive() and "waiting for it to let go" in w.text(), HANG,
                     "W waiting for the lock")
            a.p.send_signal(signal.SIGSTOP)
            pg.sql(f"SELECT pg_terminate_backend({again[0]})")
            wait_for(lambda: w.alive() and "this process writes the chain now" in w.text(),
                     HANG, "W taking the chain over")
            at = chain_number(pg, CHAIN)
            wait_for(lambda: w.alive() and chain_number(pg, CHAIN) >= at + 5, HANG, "W writing")
            a.p.send_signal(signal.SIGCONT)
            # the wait naming W follows the loss's message by a moment: both are waited for
            wait_for(lambda: a.alive() and "waiting to take the chain's lock again" in a.text()
                     and any(f"pid {w.pid}" in ln for ln in a.text().splitlines()
                             if "waiting for it to let go" in ln),
                     HANG, "A noticing it lost the lock and waiting for W")
            text = a.text()
            lost = [ln for ln in text.splitlines() if "took it meanwhile" in ln]
            waits = [ln for ln in text.splitlines() if "waiting for it to let go" in ln]
            if not lost or f"pid {w.pid}" not in lost[0] or not waits \
                    or f"pid {w.pid}" not in waits[-1]:
                raise Fail(f"A must say W (pid {w.pid}) took the lock and wait for it:\n"
                           f"{tail(a.path)}")
            h = lock_holder(pg)
            if not h or f"pid {w.pid}" not in h[1]:
                raise Fail(f"the lock holder is {h}, want W (pid {w.pid})")
            print("2: A cut off, W took over; A says:", lost[0][-200:])
            print("   and waits:", waits[-1][-200:])
            w.stop()
            at = chain_number(pg, CHAIN)
            wait_for(lambda: a.alive() and text.count("this process writes the chain now")
                     < a.text().count("this process writes the chain now")
                     and chain_number(pg, CHAIN) >= at + 5, HANG, "A taking the chain back")
            print(f"   W stopped at {at}; A took the chain back and writes "
                  f"({chain_number(pg, CHAIN)})")
            a.stop()
            top = chain_number(pg, CHAIN)
            n = check_chain(pg, node, top)
            print(f"blocks 0..{top} once each, as the node's; {n} transactions, each once")
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
