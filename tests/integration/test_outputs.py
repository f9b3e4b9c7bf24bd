"""Several outputs at once, each resuming from its own checkpoint.

1. backfill 0..A into SQLite only;
2. backfill 0..B (B > A) into the same SQLite file AND a new etl-csv directory AND a jsonl
   directory. The pipeline must resume from the lowest checkpoint (the empty directories:
   block 0), the SQLite output must skip what it already has (no error, no duplicate), and
   in the end every output holds exactly blocks 0..B once, with the node's hashes.
"""

import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402


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
        err = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(b),
                   "--output", f"sqlite:{db}", "--output", f"etl-csv:{csvdir}",
                   "--output", f"jsonl:{jsondir}", "--batch-size", "7"])
        if "starting at block 0" not in err:
            raise AssertionError(f"expected a resume from block 0 (the empty outputs):\n{err}")

        c = sqlite3.connect(db)
        rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
        ntx = c.execute("SELECT COUNT(*), COUNT(DISTINCT hash) FROM transactions").fetchone()
        cp = c.execute("SELECT number, hash FROM checkpoints").fetchone()
        c.close()
        if dict(rows) != hashes or len(rows) != b + 1:
            raise AssertionError("sqlite: blocks differ from the node's 0..B")
        if ntx[0] != ntx[1]:
            raise AssertionError(f"sqlite: duplicate transactions {ntx}")
        if cp != (b, hashes[b]):
            raise AssertionError(f"sqlite checkpoint {cp}")

        with open(os.path.join(csvdir, "blocks.csv")) as f:
            got = [(int(r["number"]), r["hash"]) for r in csv.DictReader(f)]
        if sorted(got) != sorted(hashes.items()) or len(got) != b + 1:
            raise AssertionError(f"etl-csv: {len(got)} block rows, want exactly 0..{b} once")

        with open(os.path.join(jsondir, "blocks.jsonl")) as f:
            got = [json.loads(line) for line in f]
        got = [(o["number"], o["hash"]) for o in got if o.get("type") == "block"]
        if sorted(got) != sorted(hashes.items()) or len(got) != b + 1:
            raise AssertionError(f"jsonl: {len(got)} block lines, want exactly 0..{b} once")

        txs = sum(len(node.block(n, False)["transactions"]) for n in range(b + 1))
        print(f"OK: sqlite resumed after {a} and skipped 0..{a}; csv and jsonl got 0..{b}; "
              f"{txs} txs once each")

        # An output that is ahead keeps blocks the chain then reorgs away (blockpipe stopped):
        # catching up a new output beside it must refuse to go on, naming it, not fork it.
        node.rpc("anvil_reorg", [2, []])
        p = subprocess.run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(b),
                            "--output", f"sqlite:{db}", "--output",
                            f"sqlite:{os.path.join(tmp, 'fresh.db')}"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 1 or "reorged away while it was ahead" not in p.stderr \
                or f"sqlite:{db}" not in p.stderr:
            raise AssertionError(f"a forked output ahead of the others: exit {p.returncode}\n"
                                 f"{p.stderr[-2000:]}")
        print("OK: an output holding a reorged-away branch ahead of the others is refused")


if __name__ == "__main__":
    main()
