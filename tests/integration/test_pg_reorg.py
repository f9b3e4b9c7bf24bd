"""Reorgs of depth 1..5 while `blockpipe run --confirmations 0` follows anvil into PostgreSQL.

As tests/integration/test_reorg.py, with a real PostgreSQL 15 as the output: after every
anvil_reorg(depth) (sometimes followed by 1-2 new blocks) blockpipe's checkpoint must reach
the node's head and the tables must be exactly the canonical chain (hash and parent of every
block, tx hashes in order, log counts, no row of an orphaned block). SIGINT exits 0.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, log_calldata  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, check_chain, checkpoint, node_chain, tail, wait_for  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4243"))
EXTRA_BLOCKS = [0, 1, 2, 0, 1]


def reorg_txs(rng, wl, depth):
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    if wl.contracts:
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(5))}, rng.randrange(depth)])
    return pairs


def caught_up(pg, node, proc, err_path, label):
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        return checkpoint(pg) == want
    try:
        wait_for(ok, 60, f"{label}: checkpoint == {want}", 0.2)
    except Fail as e:
        raise Fail(f"{e}; checkpoint {checkpoint(pg)}\n{tail(err_path)}") from None


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-reorg-")
    err_path = os.path.join(tmp.name, "stderr.txt")
    proc = None
    with Postgres() as pg, Anvil() as node, open(err_path, "w") as err:
        try:
            wl = Workload(node, seed=SEED)
            wl.setup()
            for _ in range(6):
                wl.mine_batch(rng.randrange(0, 7))
            cmd = [bp, "run", "--rpc", node.url, "--output", pg.url(), "--start-block", "0",
                   "--confirmations", "0", "--poll-interval", "0.2"]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            for _ in range(6):
                wl.mine_batch(rng.randrange(0, 7))
            caught_up(pg, node, proc, err_path, "initial sync")
            ntx, nlog = check_chain(pg, node_chain(node), "initial sync")
            print(f"initial sync ok: txs={ntx} logs={nlog}")
            for depth in range(1, 6):
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                for _ in range(EXTRA_BLOCKS[depth - 1]):
                    wl.mine_batch(rng.randrange(1, 6))
                label = f"reorg depth {depth} (+{EXTRA_BLOCKS[depth - 1]} blocks)"
                caught_up(pg, node, proc, err_path, label)
                ntx, nlog = check_chain(pg, node_chain(node), label)
                print(f"{label} ok: txs={ntx} logs={nlog}")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(15)
            if rc != 0:
                raise Fail(f"exit {rc} after SIGINT, want 0:\n{tail(err_path)}")
            check_chain(pg, node_chain(node), "after SIGINT")
            print("OK: reorgs of depth 1..5 exact in PostgreSQL; clean stop")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
