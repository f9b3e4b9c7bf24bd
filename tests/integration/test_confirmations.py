"""`run --confirmations 3` through reorgs shallower and deeper than 3, and to a lower head.

anvil mines only when the test says so; `blockpipe run --confirmations 3` writes SQLite,
etl-csv and JSON lines. Throughout, every output's checkpoint, when it is a block of the
node's chain, must have 3 confirmations (number <= node head - 3).
1. Shallower, three times: the last 2 blocks are replaced (anvil_reorg 2, new txs) and 1-2
   blocks mined; the outputs reach head - 3. Nothing orphaned was ever written: no revert
   line in blocks.jsonl or reverts.csv, every block the files ever got is the node's, no
   "reorg:" on stderr.
2. Deeper: the last 5 blocks are replaced; the two of them that were written (head-4,
   head-3) must be reverted, exactly those (revert lines in both files), and the outputs
   must reach the new head - 3.
3. To a lower head: anvil_rollback(5) and one new block with txs - the new branch is 4 blocks
   shorter. The two written blocks it orphaned must be reverted; the stats line must show
   the new, lower head; the new block (0 confirmations) must not be written until 3 more
   blocks are mined, then it must be.
At the end (SIGINT, exit 0) every output holds exactly the node's blocks 0..head-3, each once.
"""

import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outcheck import Fail, Outputs, Proc, blockpipe_bin, node_chain, reorg_txs  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3303"))
N = 3
DEADLINE = 60


class Run:
    def __init__(self, node, outs, proc):
        self.node, self.outs, self.proc = node, outs, proc
        self.floor = -1  # blocks up to here were written before the chain got shorter

    def confirmed(self, label, cps=None):
        """Every output's checkpoint that is on the node's chain has N confirmations (or was
        written before the chain got shorter: at most self.floor)."""
        cps = self.outs.checkpoints() if cps is None else cps
        head = self.node.block_number()
        for k, cp in cps.items():
            if cp is None:
                continue
            b = self.node.block(cp[0], False)
            if b is not None and b["hash"] == cp[1] and cp[0] > max(head - N, self.floor):
                raise Fail(f"{label}: {k} wrote block {cp[0]} {cp[1][:12]}.. while the node's "
                           f"head is {head}: fewer than {N} confirmations")
        return cps

    def wait_outputs(self, want, label):
        self.outs.wait(want, self.proc, label, DEADLINE, lambda cps: self.confirmed(label, cps))

    def target(self):
        h = self.node.block_number() - N
        return h, self.node.block(h, False)["hash"]


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-confirm-")
    node, proc = Anvil(), None
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(12):
            wl.mine_batch(rng.randrange(0, 5))
        outs = Outputs(tmp.name, kinds=("sqlite", "etl-csv", "jsonl"))
        cmd = [bp, "run", "--rpc", node.url, "--start-block", "0", "--confirmations", str(N),
               "--poll-interval", "0.1", "--stats-interval", "0.5"] + outs.args()
        print("running:", " ".join(cmd), flush=True)
        proc = Proc(cmd, os.path.join(tmp.name, "bp.log"))
        run = Run(node, outs, proc)
        run.wait_outputs(run.target(), "initial sync")

        # 1. shallower than N: nothing orphaned is ever written
        for i in range(3):
            node.rpc("anvil_reorg", [2, reorg_txs(rng, wl, 2)])
            wl.after_reorg()
            for _ in range(rng.randrange(1, 3)):
                wl.mine_batch(rng.randrange(0, 4))
            run.wait_outputs(run.target(), f"shallow reorg {i + 1}")
        reverted = outs.reverted()
        if any(reverted.values()):
            raise Fail(f"reorgs of depth 2 < {N} confirmations, yet blocks were reverted: "
                       f"{reverted}")
        for kind, blocks in outs.applied_blocks().items():
            for n, h in blocks:
                if node.block(n, False)["hash"] != h:
                    raise Fail(f"{kind} got block {n} {h}, which the node orphaned: a block "
                               f"with fewer than {N} confirmations was written")
        if "reorg:" in open(proc.err_path).read():
            raise Fail(f"blockpipe reverted something after reorgs of depth 2:\n{proc.tail()}")
        print(f"1. three reorgs of depth 2 < {N}: nothing orphaned written, no revert",
              flush=True)

        # 2. deeper than N: the written blocks it orphans are reverted
        head = node.block_number()
        orphans = [(n, node.block(n, False)["hash"]) for n in (head - N, head - N - 1)]
        node.rpc("anvil_reorg", [N + 2, reorg_txs(rng, wl, N + 2)])
        wl.after_reorg()
        run.wait_outputs(run.target(), "deep reorg")
        for kind, revs in outs.reverted().items():
            if revs != orphans:
                raise Fail(f"reorg of depth {N + 2}: {kind} reverted {revs}, want exactly the "
                           f"written orphans {orphans}")
        outs.check(node_chain(node, head - N), "deep reorg")
        print(f"2. reorg of depth {N + 2} > {N}: reverted {[n for n, _ in orphans]}, outputs = "
              f"chain 0..{head - N}", flush=True)

        # 3. a reorg to a lower head
        old_head = node.block_number()
        old_tip = run.target()
        node.rpc("anvil_rollback", [N + 2])
        wl.after_reorg()
        wl.mine_batch(2)
        new_head = node.block_number()
        ancestor = old_head - N - 2
        if new_head != old_head - N - 1 or node.block(old_tip[0] - 1, False) is None:
            raise Fail(f"anvil_rollback: head {old_head} -> {new_head}")
        mark = os.path.getsize(proc.err_path)
        run.floor = ancestor
        want = (ancestor, node.block(ancestor, False)["hash"])
        run.wait_outputs(want, "reorg to a lower head")

        def saw_head():
            with open(proc.err_path, errors="replace") as f:
                f.seek(mark)
                return re.search(rf"stats head={new_head} ", f.read())
        deadline = time.monotonic() + DEADLINE
        while not saw_head():
            run.confirmed("after the reorg to a lower head")
            proc.alive("waiting for the lower head")
            if time.monotonic() > deadline:
                raise Fail(f"the stats line never showed the node's new head {new_head} (was "
                           f"{old_head}):\n{proc.tail()}")
            time.sleep(0.05)
        cps = run.confirmed("lower head")
        if any(cp != want for cp in cps.values()):
            raise Fail(f"lower head {new_head}: outputs at {cps}, want {want} (block "
                       f"{ancestor + 1} has 0 confirmations)")
        for _ in range(N):
            wl.mine_batch(1)
        run.wait_outputs(run.target(), "lower head, then 3 blocks")
        print(f"3. reorg to a lower head ({old_head} -> {new_head}): reverted back to "
              f"{ancestor}, block {ancestor + 1} written only with {N} confirmations",
              flush=True)

        proc.stop()
        top = run.target()
        ntx, nlogs = outs.check(node_chain(node, top[0]), "after SIGINT")
        print(f"OK: outputs = the node's blocks 0..{top[0]} exactly once ({ntx} txs, {nlogs} "
              f"logs) ({time.monotonic() - t0:.0f}s)")
    except Fail as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if proc is not None:
            proc.close()
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
