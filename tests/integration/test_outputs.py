"""Several outputs at once, each resuming from its own checkpoint.

1. backfill 0..A into SQLite only;
2. backfill 0..B (B > A) into the same SQLite file AND a new etl-csv directory AND a jsonl
   directory. The pipeline must resume from the lowest checkpoint (the empty directories:
   block 0), the SQLite output must skip what it already has (no error, no duplicate), and
   in the end every output holds exactly blocks 0..B once, with the node's hashes: every
   block, transaction and log once, each field equal to the node's, and each output's
   checkpoint at B.
3. the node reorgs its last 2 blocks; a backfill into that SQLite file (ahead, on the old
   branch) and a new one brings the first back onto the chain (it reverts its own orphaned
   blocks, which it still knows) and catches the new one up: both end with exactly the node's
   chain 0..B, every row once.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
import rowcheck  # noqa: E402

CHAIN = "31337"


def file_checkpoint(d):
    with open(os.path.join(d, "checkpoint.json")) as f:
        c = json.load(f)["chains"][CHAIN]
    return c["number"], c["hash"]


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\n{p.stderr[-3000:]}")
    return p.stderr


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-outputs-") as tmp:
        wl = Workload(node, seed=5)
        wl.setup()
        for _ in range(30):
            wl.mine_batch(4)
        b = node.block_number()
        a = b // 2
        hashes = {n: node.block(n, False)["hash"] for n in range(b + 1)}
        db, csvdir, jsondir = (os.path.join(tmp, x) for x in ("bp.db", "csv", "jsonl"))
        run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(a),
             "--output", f"sqlite:{db}"])
        # the second run must keep these rows: the SQLite output INSERTs without OR REPLACE,
        # so writing any of them again would fail the run
        rowcheck.sqlite_exact(db, rowcheck.fetch(node.url, range(a + 1)), CHAIN, "sqlite 0..A")
        err = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(b),
                   "--output", f"sqlite:{db}", "--output", f"etl-csv:{csvdir}",
                   "--output", f"jsonl:{jsondir}", "--batch-size", "7"])
        if "starting at block 0" not in err:
            raise AssertionError(f"expected a resume from block 0 (the empty outputs):\n{err}")

        # every output: every block, transaction and log of 0..B once, field by field
        data = rowcheck.fetch(node.url, range(b + 1))
        counts = rowcheck.sqlite_exact(db, data, CHAIN, "sqlite")
        cp = rowcheck.sqlite_checkpoints(db, CHAIN)
        if cp != {"sqlite": (b, hashes[b])}:
            raise AssertionError(f"sqlite checkpoint {cp}, want {b} {hashes[b]}")
        for name, check in (("etl-csv", lambda: rowcheck.csv_exact(csvdir, data, orphans=[])),
                            ("jsonl", lambda: rowcheck.jsonl_exact(jsondir, data, CHAIN,
                                                                   orphans=[]))):
            got = check()
            if got != counts:
                raise AssertionError(f"{name}: {got} rows, sqlite has {counts}")
            if file_checkpoint(csvdir if name == "etl-csv" else jsondir) != (b, hashes[b]):
                raise AssertionError(f"{name}: checkpoint.json is not at {b} {hashes[b]}")
        if not (counts["transactions"] and counts["logs"]):
            raise AssertionError(f"the chain has no transactions or logs: {counts}")
        print(f"OK: sqlite resumed after {a} and skipped 0..{a}; csv and jsonl got 0..{b}; "
              f"{counts['transactions']} txs and {counts['logs']} logs once each, every field "
              f"equal to the node in all three")

        # An output that is ahead keeps blocks the chain then reorgs away (blockpipe stopped):
        # catching up a new output beside it brings the first back onto the chain (REVERTs of
        # its own orphaned blocks) instead of forking it or refusing.
        node.rpc("anvil_reorg", [2, []])
        fresh = os.path.join(tmp, "fresh.db")
        run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(b),
             "--output", f"sqlite:{db}", "--output", f"sqlite:{fresh}"])
        now = rowcheck.fetch(node.url, range(b + 1))
        if [blk["hash"] for blk, _ in now] == [blk["hash"] for blk, _ in data]:
            raise AssertionError("anvil_reorg did not change the chain: the check proves nothing")
        rowcheck.sqlite_exact(db, now, CHAIN, "the output that was ahead, after the reorg")
        rowcheck.sqlite_exact(fresh, now, CHAIN, "the new output")
        print("OK: an output holding a reorged-away branch ahead of the others is brought back "
              "onto the chain; the new one caught up; both exact")


if __name__ == "__main__":
    main()
