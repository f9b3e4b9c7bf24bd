"""Reorgs of depth 1..6 while `blockpipe run --confirmations 0` follows anvil into ClickHouse.

A real ClickHouse (18.16, tests/tools/clickhouse.py) and anvil with random traffic: blockpipe
backfills from block 0 and follows the head; after every anvil_reorg(depth) (sometimes followed
by new blocks) its checkpoint must reach the node's head and the tables must hold exactly the
node's canonical chain, every field of every block, transaction and log (rowcheck.ch_exact:
read with FINAL, no row of an orphaned block, sum(_sign) equal to FINAL's count). Every other
check first forces the merges (OPTIMIZE ... FINAL), so both the collapsed and the uncollapsed
+1/-1 rows are read. SIGINT exits 0.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, log_calldata  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
import rowcheck  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4244"))
EXTRA_BLOCKS = [0, 1, 2, 0, 1, 3]
CHAIN = "31337"
DB = "follow"


def reorg_txs(rng, wl, depth):
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    if wl.contracts:
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(5))}, rng.randrange(depth)])
    return pairs


def checkpoint(ch):
    try:
        cps = rowcheck.ch_checkpoints(ch, DB, CHAIN)
    except RuntimeError:
        return None  # the tables do not exist yet
    return cps.get("clickhouse")


def caught_up(ch, node, proc, err_path, label):
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        return checkpoint(ch) == want
    try:
        wait_for(ok, 120, f"{label}: checkpoint == {want}", 0.2)
    except Fail as e:
        raise Fail(f"{e}; checkpoint {checkpoint(ch)}\n{tail(err_path)}") from None
    return head


def check(ch, node, head, label, merge):
    """Exact; after forced merges every +1/-1 pair has collapsed (the signs of each row key
    alternate), so each table holds its live rows only."""
    if merge:
        ch.merge(DB)
    data = rowcheck.fetch(node.url, range(head + 1))
    counts = rowcheck.ch_exact(ch, DB, data, CHAIN, label)
    rows = {t: int(ch.sql(f"SELECT count() FROM {DB}.{t}")[0][0]) for t in counts}
    if merge and rows != counts:
        raise Fail(f"{label}: after OPTIMIZE FINAL the tables hold {rows} rows, live {counts}: "
                   f"rows that did not collapse")
    print(f"{label} ok: blocks={counts['blocks']} txs={counts['transactions']} "
          f"logs={counts['logs']}; {rows['blocks']} rows in blocks "
          f"{'after' if merge else 'before'} the merges")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-ch-reorg-")
    err_path = os.path.join(tmp.name, "stderr.txt")
    proc = None
    with ClickHouse() as ch, Anvil() as node, open(err_path, "w") as err:
        try:
            wl = Workload(node, seed=SEED)
            wl.setup()
            for _ in range(6):
                wl.mine_batch(rng.randrange(0, 7))
            cmd = [bp, "run", "--rpc", node.url, "--output", ch.url(DB), "--start-block", "0",
                   "--confirmations", "0", "--poll-interval", "0.2"]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            for _ in range(6):
                wl.mine_batch(rng.randrange(0, 7))
            head = caught_up(ch, node, proc, err_path, "initial sync")
            check(ch, node, head, "initial sync", False)
            for depth in range(1, 7):
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                for _ in range(EXTRA_BLOCKS[depth - 1]):
                    wl.mine_batch(rng.randrange(1, 6))
                label = f"reorg depth {depth} (+{EXTRA_BLOCKS[depth - 1]} blocks)"
                head = caught_up(ch, node, proc, err_path, label)
                check(ch, node, head, label, depth % 2 == 0)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(30)
            if rc != 0:
                raise Fail(f"exit {rc} after SIGINT, want 0:\n{tail(err_path)}")
            reorgs = tail(err_path, 100000).count("reorg")
            if reorgs == 0:
                raise Fail(f"blockpipe never logged a reorg:\n{tail(err_path)}")
            check(ch, node, node.block_number(), "after SIGINT", True)
            print("OK: reorgs of depth 1..6 exact in ClickHouse; clean stop")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, rowcheck.Mismatch, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
