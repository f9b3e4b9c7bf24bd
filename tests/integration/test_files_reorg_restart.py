"""A reorg while blockpipe is stopped, at the file outputs' checkpoint height.

backfill 0..H into jsonl and etl-csv; the node then replaces its last 3 blocks (anvil_reorg);
`run` started again must find the common ancestor from the blocks the outputs kept in
checkpoint.json ("recent"), write REVERT lines for the 3 orphaned blocks, highest first, with
their hashes and parents (revert lines in blocks.jsonl, rows in reverts.csv), apply the new
branch and end with the node's chain: replayed, each output holds every block, transaction
and log of it once with every field the node's, and the orphaned blocks' rows (before their
revert) are those blocks' as the node had them.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
import rowcheck  # noqa: E402

CHAIN = "31337"


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\n{p.stderr[-3000:]}")
    return p.stderr


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-filereorg-") as tmp:
        wl = Workload(node, seed=17)
        wl.setup()
        for _ in range(12):
            wl.mine_batch(2)
        head = node.block_number()
        old = {n: node.block(n, False)["hash"] for n in range(head + 1)}
        orphans = rowcheck.fetch(node.url, range(head - 2, head + 1))
        jdir, cdir = os.path.join(tmp, "jsonl"), os.path.join(tmp, "csv")
        args = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                "--output", f"jsonl:{jdir}", "--output", f"etl-csv:{cdir}"]
        run(args)
        node.rpc("anvil_reorg", [3, []])
        new = {n: node.block(n, False)["hash"] for n in range(head + 1)}
        if [n for n in new if new[n] != old[n]] != [head - 2, head - 1, head]:
            raise AssertionError("anvil_reorg did not replace exactly the last 3 blocks")
        proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", f"jsonl:{jdir}",
                                 "--output", f"etl-csv:{cdir}", "--poll-interval", "0.2"],
                                stderr=subprocess.PIPE, text=True)
        cp_path = os.path.join(jdir, "checkpoint.json")
        try:
            wait_until(lambda: json.load(open(cp_path))["chains"][CHAIN]["hash"] == new[head],
                       120, "the jsonl checkpoint to reach the new head")
        finally:
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=20)[1]
        if proc.returncode != 0:
            raise AssertionError(f"run exited {proc.returncode}\n{err[-2000:]}")
        if "reorg:" not in err:
            raise AssertionError(f"no reorg reported:\n{err[-2000:]}")
        # blocks.jsonl replayed (APPLY extends the tip, REVERT removes it) ends as the node's
        # chain; every row of it, and of the orphaned blocks before their REVERT, is once per
        # APPLY with every field the node's (the orphans' as the node had them before)
        data = rowcheck.fetch(node.url, range(head + 1))
        counts = rowcheck.jsonl_exact(jdir, data, CHAIN, orphans)
        gone = [(head - i, old[head - i], orphans[2 - i][0]["parentHash"]) for i in range(3)]
        with open(os.path.join(jdir, "blocks.jsonl")) as f:
            lines = [json.loads(x) for x in f]
        reverts = [(o["number"], o["hash"], o["parent_hash"]) for o in lines
                   if o["type"] == "revert"]
        if reverts != gone:
            raise AssertionError(f"jsonl REVERT lines {reverts}, want the 3 orphans highest "
                                 f"first {gone}")
        if rowcheck.csv_exact(cdir, data, orphans) != counts:
            raise AssertionError("etl-csv and jsonl hold different row counts")
        with open(os.path.join(cdir, "reverts.csv")) as f:
            reverted = [(int(r["block_number"]), r["block_hash"], r["parent_hash"])
                        for r in csv.DictReader(f)]
        if reverted != gone:
            raise AssertionError(f"reverts.csv lists {reverted}, want {gone}")
        orphan_txs = sum(len(b["transactions"]) for b, _ in orphans)
        if not orphan_txs:
            raise AssertionError("the orphaned blocks had no transactions to revert")
        print(f"OK: reorg of 3 at the checkpoint while stopped: reverted {[g[0] for g in gone]} "
              f"(their {orphan_txs} txs' rows as they were), outputs equal the node's chain "
              f"0..{head} with {counts['transactions']} txs and {counts['logs']} logs, every "
              f"field")

if __name__ == "__main__":
    main()
