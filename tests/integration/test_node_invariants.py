"""Node data checked on every block: each invariant meets a node of our own that breaks it.

simnode endpoint ep1 breaks one rule (--faults ep1:bad=KIND), ep2 none (the reference):
  receipt_hash        receipts of txs 0 and 1 name each other's hash
  receipt_index       a receipt's transactionIndex is not its transaction's
  receipt_block_hash  receipts name another block's hash
  receipt_number      receipts name another block number
  tx_index            transaction indexes do not run 0..n-1
  log_index_swap      log indexes do not increase across the block (no certain repair)
For each: a backfill from ep1 alone fails (--max-retries 0) with an error naming the
endpoint, the block, the transaction and the field; a backfill from ep1 and ep2 retries the
blocks on ep2 and ends with every row exactly as the node has it.
log_index_per_tx (ganache's quirk, the one certain repair): ep1 alone succeeds, log indexes
renumbered across the block (rows exact), warned once naming the endpoint; --strict-node
refuses it by name.
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from rowcheck import Mismatch  # noqa: E402
from simnode import Simnode  # noqa: E402

BLOCKS = 30
CHAIN = "1337"
BROKEN = {
    "receipt_hash": "field 'transactionHash'",
    "receipt_index": "field 'transactionIndex'",
    "receipt_block_hash": "field 'blockHash'",
    "receipt_number": "field 'blockNumber'",
    "tx_index": "field 'transactionIndex'",
    "log_index_swap": "field 'logIndex'",
}


def backfill(blockpipe, tmp, name, rpcs, extra=()):
    db = os.path.join(tmp, name + ".db")
    cmd = [blockpipe, "backfill", "--from", "0", "--to", str(BLOCKS - 1),
           "--output", f"sqlite:{db}", *extra]
    for u in rpcs:
        cmd += ["--rpc", u]
    print("running:", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stderr, db


def expect_refused(kind, rc, log, url, field):
    if rc == 0:
        raise Mismatch(f"[{kind}] backfill from the bad endpoint exited 0")
    err = [ln for ln in log.splitlines() if f"rpc {url}" in ln and field in ln]
    if not err:
        raise Mismatch(f"[{kind}] no error naming rpc {url} and {field}:\n{log[-3000:]}")
    if not re.search(r"block \d+: ", err[0]) or not re.search(r"tx 0x[0-9a-f]{64}", err[0]):
        raise Mismatch(f"[{kind}] the error names no block or no transaction: {err[0]}")
    print(f"[{kind}] refused: {err[0][err[0].index('rpc '):][:220]}", flush=True)


def node(blockpipe, kind):
    return Simnode(blockpipe, ["--length", str(BLOCKS), "--block-time", "0", "--txs-per-block",
                               "2-12", "--faults", f"ep1:bad={kind}"], endpoints=2)


def broken(blockpipe, tmp, kind, field):
    sim = node(blockpipe, kind)
    try:
        data = rowcheck.fetch(sim.urls[1], range(BLOCKS))
        rc, log, _ = backfill(blockpipe, tmp, kind + "-alone", sim.urls[:1],
                              ["--max-retries", "0"])
        expect_refused(kind, rc, log, sim.urls[0], field)
        rc, log, db = backfill(blockpipe, tmp, kind + "-pool", sim.urls)
        if rc != 0:
            raise Mismatch(f"[{kind}] backfill from both endpoints exited {rc}:\n{log[-3000:]}")
        counts = rowcheck.sqlite_exact(db, data, CHAIN, label=kind)
        print(f"[{kind}] with a good endpoint too: retried there, rows exact {counts}",
              flush=True)
        sim.stop()
    finally:
        sim.kill()


def repaired(blockpipe, tmp):
    kind = "log_index_per_tx"
    sim = node(blockpipe, kind)
    try:
        data = rowcheck.fetch(sim.urls[1], range(BLOCKS))
        rc, log, db = backfill(blockpipe, tmp, kind, sim.urls[:1], ["--max-retries", "0"])
        if rc != 0:
            raise Mismatch(f"[{kind}] backfill exited {rc}:\n{log[-3000:]}")
        counts = rowcheck.sqlite_exact(db, data, CHAIN, label=kind)
        warns = [ln for ln in log.splitlines() if "numbers logIndex from 0" in ln]
        if len(warns) != 1 or f"rpc {sim.urls[0]}" not in warns[0] or " warn " not in warns[0]:
            raise Mismatch(f"[{kind}] want one warning naming the endpoint, got {warns}")
        print(f"[{kind}] renumbered across the block, one warning; rows exact {counts}",
              flush=True)
        rc, log, _ = backfill(blockpipe, tmp, kind + "-strict", sim.urls[:1],
                              ["--max-retries", "0", "--strict-node"])
        expect_refused(kind + " --strict-node", rc, log, sim.urls[0], "field 'logIndex'")
        sim.stop()
    finally:
        sim.kill()


def main():
    print(__doc__.strip(), flush=True)
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    with tempfile.TemporaryDirectory(prefix="bp-invariants-") as tmp:
        try:
            repaired(blockpipe, tmp)
            for kind, field in BROKEN.items():
                broken(blockpipe, tmp, kind, field)
        except (Mismatch, AssertionError) as e:
            sys.exit(f"FAIL: {e}")
    print("OK")


if __name__ == "__main__":
    main()
