"""A reorg while blockpipe is stopped, at the file outputs' checkpoint height.

backfill 0..H into jsonl and etl-csv; the node then replaces its last 3 blocks (anvil_reorg);
`run` started again must find the common ancestor from the blocks the outputs kept in
checkpoint.json ("recent"), write REVERT lines for the 3 orphaned blocks (revert lines in
blocks.jsonl, rows in reverts.csv), apply the new branch and end with the node's chain.
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
            wait_until(lambda: json.load(open(cp_path))["chains"]["31337"]["hash"] == new[head],
                       30, "the jsonl checkpoint to reach the new head")
        finally:
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=20)[1]
        if proc.returncode != 0:
            raise AssertionError(f"run exited {proc.returncode}\n{err[-2000:]}")
        if "reorg:" not in err:
            raise AssertionError(f"no reorg reported:\n{err[-2000:]}")
        # replay blocks.jsonl: APPLY extends the tip, REVERT removes it
        chain = []
        with open(os.path.join(jdir, "blocks.jsonl")) as f:
            for line in f:
                o = json.loads(line)
                if o.get("type") == "revert":
                    if not chain or chain[-1] != (o["number"], o["hash"]):
                        raise AssertionError(f"revert of a block that is not the tip: {o}")
                    chain.pop()
                elif o.get("type") == "block":
                    if chain and chain[-1][0] + 1 != o["number"]:
                        raise AssertionError(f"block {o['number']} does not extend the tip")
                    chain.append((o["number"], o["hash"]))
        if chain != sorted(new.items()):
            raise AssertionError("the replayed jsonl stream is not the node's chain")
        with open(os.path.join(cdir, "reverts.csv")) as f:
            reverted = sorted(int(r["block_number"]) for r in csv.DictReader(f))
        if reverted != [head - 2, head - 1, head]:
            raise AssertionError(f"reverts.csv lists {reverted}")
        print(f"OK: reorg of 3 at the checkpoint while stopped: reverted {reverted}, "
              f"outputs equal the node's chain 0..{head}")


if __name__ == "__main__":
    main()
