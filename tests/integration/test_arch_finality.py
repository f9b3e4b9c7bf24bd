"""--confirmations N with an Arch node that never names its finalized block (docs/ARCH.md
"Finality"): a node whose get_best_finalized_block_hash fails on every head poll is followed at
N below the head after 10 polls, with a warning; a node that answers "Method not found" has no
finality, and is followed at N below the head at once, without a warning.

simnode --chain-type arch grows a block every second (1-4 transactions each); ep1 fails every
get_best_finalized_block_hash call (error_rate=1,error_method=...), ep2 answers it -32601
"Method not found" (missing_method=...), ep3 has no faults (its finalized block, 6 below the
head, is read by the test). Each run goes through tests/tools/rpcgate.py, which counts the
finalized calls answered (one per head poll), into SQLite with --confirmations 3:
A. ep1 (--poll-interval 0.5): no block is committed before 10 finalized calls were answered
   (a checkpoint read before a count under 10 fails), the log warns once that the node did not
   name its finalized block in 10 head polls, and then the checkpoint never passes the head - 3
   read after it and passes the node's finalized block (it counts blocks, it does not wait);
B. ep2 (--poll-interval 1): the first block is committed before 10 finalized calls (read after
   the checkpoint), the checkpoint never passes head - 3 and passes the finalized block, and
   after 15 head polls the log has no such warning.
Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from rpcgate import RpcGate  # noqa: E402
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1418"))
HANG = 90  # guards against a hang only
N = 3  # --confirmations
POLLS = 10  # head polls without a finalized answer before blocks are counted
FIN = "get_best_finalized_block_hash"
WARNING = "the node did not name its finalized block in 10 head polls"
FAULTS = (f"ep1:error_rate=1,error_method={FIN};ep2:missing_method={FIN}")


def fail(msg):
    raise AssertionError(msg)


def checkpoint(db):
    if not os.path.exists(db):
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT number FROM checkpoints WHERE chain = 'arch'").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None  # the schema is not there yet
    finally:
        con.close()


def follow(bp, node, ep, poll, tmp, label, first_before):
    """A run through a gate to endpoint ep; samples its checkpoint until it passed the node's
    finalized block and the gate answered 15 finalized calls. first_before(n): whether the
    first commit, seen with n finalized calls answered after it, is as it must be. Returns
    the run's log."""
    clean = node.urls[2]
    gate = RpcGate(node.urls[ep])
    db = os.path.join(tmp, f"{label}.db")
    logpath = os.path.join(tmp, f"{label}.log")
    head = arch.node_head(clean)
    proc = None
    try:
        with open(logpath, "w") as log:
            proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", gate.url,
                                     "--output", f"sqlite:{db}", "--start-block", str(head - 5),
                                     "--confirmations", str(N), "--poll-interval", str(poll),
                                     "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
            first, past, samples = None, False, 0
            deadline = time.monotonic() + HANG
            while not (past and gate.calls[FIN] >= 15):
                cp = checkpoint(db)
                n = gate.calls[FIN]  # read after the checkpoint: calls at its commit <= n
                top = arch.node_head(clean)  # after it too: the head only grows
                fin = ws.finalized(clean)
                if cp is not None:
                    samples += 1
                    if first is None:
                        first = (cp, n)
                        first_before(cp, n)
                    if cp > top - N:
                        fail(f"{label}: checkpoint {cp} above the head {top} - {N}")
                    past = past or cp > fin
                if proc.poll() is not None:
                    fail(f"{label}: blockpipe exited {proc.returncode}")
                if time.monotonic() > deadline:
                    fail(f"{label}: within {HANG} s the checkpoint {cp} did not pass the node's "
                         f"finalized block {fin} ({gate.calls[FIN]} finalized calls)")
                time.sleep(0.05)
            ws.stop(proc, label)
        print(f"{label}: first commit (block {first[0]}) with {first[1]} finalized calls "
              f"answered; {samples} samples at or below head - {N}, past the finalized block; "
              f"{gate.calls[FIN]} finalized calls", flush=True)
        return open(logpath).read()
    except AssertionError:
        if os.path.exists(logpath):
            print(f"--- {label} log (tail) ---\n" + open(logpath).read()[-3000:])
        raise
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        gate.close()


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "1", "--start-head", "40",
                        "--txs-per-block", "1-4", "--seed", str(SEED), "--faults", FAULTS],
                   endpoints=3)
    try:
        with tempfile.TemporaryDirectory(prefix="bp-arch-fin-") as tmp:
            def after_polls(cp, n):
                if n < POLLS:
                    fail(f"A: block {cp} committed with only {n} finalized calls answered (a "
                         f"node that has finality but did not say it: wait {POLLS} polls)")
            text = follow(bp, node, 0, 0.5, tmp, "A", after_polls)
            warned = [ln for ln in text.splitlines() if WARNING in ln]
            if len(warned) != 1 or f"--confirmations {N} counts blocks below the head" \
                    not in warned[0]:
                fail(f"A: want one warning {WARNING!r} naming --confirmations {N}: {warned}")
            errs = node.stats()["endpoints"][0]["faults"]["error"]
            if errs < POLLS:
                fail(f"A: only {errs} finalized calls failed")

            def at_once(cp, n):
                if n >= POLLS:
                    fail(f"B: first block {cp} committed after {n} finalized calls: a node "
                         "without the method has no finality, nothing to wait for")
            text = follow(bp, node, 1, 1.0, tmp, "B", at_once)
            if WARNING in text:
                fail("B: a node without the method was warned about as one that fails it")
            print(f"OK: a node failing {FIN} every time followed at {N} below the head after "
                  f"{POLLS} polls with a warning; one without it at once, no warning")
    finally:
        node.kill()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
