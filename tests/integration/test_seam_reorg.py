"""`blockpipe run --start-block 0` backfills history and follows the head in one process; a
reorg at the seam must leave no gap and no overlap (issue 13 part 2).

anvil holds 440 blocks (the last 40 with transfers and log-emitting calls). `blockpipe run --start-block 0
--confirmations 0 --workers 1 --batch-size 5` into PostgreSQL backfills 0..H (H: the head it saw at start) in parallel
while following the head. As soon as its checkpoint is within 20 blocks of H (the blocks
around H already fetched or in flight, the backfill not done), anvil_reorg replaces the last
5 blocks (new hashes, other transactions) and 2 more are mined; later a second reorg of 3.
Then the checkpoint must reach the node's head and the tables be exactly the canonical chain:
every block 0..head once with the node's hash and parent, the transactions of every block in
order, the log counts, no row of an orphaned block (tests/tools/pgcheck.py check_chain).
Whether blockpipe met the old branch (a "reorg:" line) is printed, not required: the
interleaving is the scheduler's; the tables must be exact in every one.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, check_chain, checkpoint, node_chain, tail, wait_for  # noqa: E402
from test_pg_reorg import caught_up, reorg_txs  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4244"))


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-seam-")
    err_path = os.path.join(tmp.name, "stderr.txt")
    proc = None
    with Postgres() as pg, Anvil() as node, open(err_path, "w") as err:
        try:
            wl = Workload(node, seed=SEED)
            wl.setup()
            node.mine(400)  # history to backfill; the blocks around the seam carry txs
            while node.block_number() < 440:
                wl.mine_batch(rng.randrange(0, 5))
            h = node.block_number()
            cmd = [bp, "run", "--rpc", node.url, "--output", pg.url(), "--start-block", "0",
                   "--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "5",
                   "--workers", "1"]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)

            def near():
                if proc.poll() is not None:
                    raise Fail(f"blockpipe exited {proc.returncode}:\n{tail(err_path)}")
                cp = checkpoint(pg)
                return cp is not None and cp[0] >= h - 20
            wait_for(near, 120, f"the backfill within 20 blocks of the seam ({h})", 0.02)
            at = checkpoint(pg)
            node.rpc("anvil_reorg", [5, reorg_txs(rng, wl, 5)])
            wl.after_reorg()
            for _ in range(2):
                wl.mine_batch(rng.randrange(1, 4))
            print(f"reorg of 5 at the seam {h} with the checkpoint at {at[0]}")
            node.rpc("anvil_reorg", [3, reorg_txs(rng, wl, 3)])
            wl.after_reorg()
            wl.mine_batch(2)
            caught_up(pg, node, proc, err_path, "after the seam reorgs")
            ntx, nlog = check_chain(pg, node_chain(node), "after the seam reorgs")
            with open(err_path, errors="replace") as f:
                met = [ln.strip() for ln in f if "reorg:" in ln]
            print(f"exact: blocks 0..{node.block_number()}, {ntx} txs, {nlog} logs; blockpipe "
                  f"met the old branch {len(met)} time(s): {met[:2]}")
            proc.send_signal(signal.SIGINT)
            if proc.wait(30) != 0:
                raise Fail(f"exit {proc.returncode} after SIGINT:\n{tail(err_path)}")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            tmp.cleanup()
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
