"""Reorgs at awkward moments: to a lower head while following it, and during a backfill.

1. `run` (confirmations 0) follows anvil into SQLite, etl-csv and JSON lines; the node then
   switches to a shorter branch (anvil_rollback 3 and one new block with txs: the head goes
   from H to H-2). blockpipe must revert H, H-1 and the old H-2, apply the new H-2, show the
   lower head on its stats line, and never ask for the blocks above the new head (no
   "attempt N of M" retry line: they do not exist). Two more blocks mined: the outputs must
   reach them, and hold exactly the node's chain, each block once.
2. `backfill --from 0 --to H` through a gate (a proxy that holds every request for a block
   >= H-1 until it is opened): when the backfill has written what it can and waits at the
   gate, the node replaces its last blocks from two below the backfill's checkpoint up to H
   (anvil_reorg), then the gate opens. The backfill, still running, must revert the two
   written orphans (exactly those: revert lines in both files), exit 0, and leave every
   output equal to the node's chain 0..H.
"""

import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outcheck import (Fail, Outputs, Proc, blockpipe_bin, node_chain, node_head,  # noqa: E402
                      reorg_txs)
from rpcgate import RpcGate  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "6464"))
DEADLINE = 60
KINDS = ("sqlite", "etl-csv", "jsonl")


def lower_head(bp, tmp, rng):
    node, proc = Anvil(), None
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(10):
            wl.mine_batch(rng.randrange(0, 5))
        outs = Outputs(os.path.join(tmp, "lower"), kinds=KINDS)
        cmd = [bp, "run", "--rpc", node.url, "--start-block", "0", "--poll-interval", "0.1",
               "--stats-interval", "0.5"] + outs.args()
        proc = Proc(cmd, os.path.join(tmp, "lower.log"))
        outs.wait(node_head(node), proc, "initial sync", DEADLINE)
        old = node.block_number()
        orphans = [(n, node.block(n, False)["hash"]) for n in (old, old - 1, old - 2)]
        mark = os.path.getsize(proc.err_path)
        node.rpc("anvil_rollback", [3])
        wl.after_reorg()
        wl.mine_batch(2)
        new = node.block_number()
        if new != old - 2 or node.block(new, False)["hash"] == orphans[2][1]:
            raise Fail(f"anvil_rollback: head {old} -> {new}")
        outs.wait(node_head(node), proc, "reorg to a lower head", DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while True:
            with open(proc.err_path, errors="replace") as f:
                f.seek(mark)
                after = f.read()
            if re.search(rf"stats head={new} ", after):
                break
            proc.alive("waiting for the lower head")
            if time.monotonic() > deadline:
                raise Fail(f"the stats line never showed the new head {new}:\n{proc.tail()}")
            time.sleep(0.05)
        retries = [ln for ln in after.splitlines() if re.search(r"attempt \d+ of \d+", ln)]
        if retries:
            raise Fail(f"after the switch to a shorter branch blockpipe asked for blocks above "
                       f"the new head {new}:\n" + "\n".join(retries[:5]))
        for kind, revs in outs.reverted().items():
            if revs != orphans:
                raise Fail(f"{kind} reverted {revs}, want exactly {orphans}")
        wl.mine_batch(1)
        wl.mine_batch(2)
        outs.wait(node_head(node), proc, "two more blocks", DEADLINE)
        proc.stop()
        ntx, nlogs = outs.check(node_chain(node), "lower head")
        print(f"1. reorg to a lower head ({old} -> {new}): reverted {[n for n, _ in orphans]}, "
              f"no request above the new head; outputs = the chain 0..{node.block_number()} "
              f"({ntx} txs, {nlogs} logs)", flush=True)
    finally:
        if proc is not None:
            proc.close()
        node.stop()


def reorg_in_backfill(bp, tmp, rng):
    node, proc, gate = Anvil(), None, None
    try:
        wl = Workload(node, seed=SEED + 1)
        wl.setup()
        for _ in range(40):
            wl.mine_batch(rng.randrange(0, 5))
        head = node.block_number()
        gate = RpcGate(node.url)
        gate.hold_from = head - 1
        outs = Outputs(os.path.join(tmp, "backfill"), kinds=KINDS)
        cmd = [bp, "backfill", "--rpc", gate.url, "--from", "0", "--to", str(head),
               "--workers", "2", "--batch-size", "3"] + outs.args()
        print("running:", " ".join(cmd), flush=True)
        proc = Proc(cmd, os.path.join(tmp, "backfill.log"))
        # wait until the backfill has written what it can and waits at the gate: every block
        # below the lowest one a held request names is written, in every output (it cannot
        # write that block, so the held requests' lowest block can no longer go down either)
        deadline = time.monotonic() + DEADLINE
        while True:
            proc.alive("waiting at the gate")
            cps = outs.checkpoints()
            low = gate.held_min
            if low is not None and len({cp for cp in cps.values()}) == 1 and cps["sqlite"] and \
                    cps["sqlite"][0] == low - 1:
                break
            if time.monotonic() > deadline:
                raise Fail(f"the backfill never settled at the gate (held {gate.held}, the "
                           f"lowest block held {low}, outputs {cps}):\n{proc.tail()}")
            time.sleep(0.05)
        c = cps["sqlite"][0]
        if c < 3 or c >= head - 1:
            raise Fail(f"the backfill stopped at block {c}, the gate holds >= {head - 1}")
        depth = head - c + 2
        orphans = [(n, node.block(n, False)["hash"]) for n in (c, c - 1)]
        node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
        wl.after_reorg()
        if any(node.block(n, False)["hash"] == h for n, h in orphans) or \
                node.block_number() != head:
            raise Fail(f"anvil_reorg({depth}) did not replace blocks {c - 1}..{head}")
        print(f"2. the backfill waits at the gate with blocks 0..{c} written; the node replaced "
              f"{c - 1}..{head}; opening the gate", flush=True)
        gate.release()
        try:
            rc = proc.proc.wait(DEADLINE)
        except Exception:
            raise Fail(f"the backfill did not finish after the gate opened:\n{proc.tail()}")
        proc.close()
        if rc != 0:
            raise Fail(f"the backfill exited {rc}:\n{proc.tail()}")
        if "reorg:" not in open(proc.err_path).read():
            raise Fail(f"the backfill did not report the reorg:\n{proc.tail()}")
        for kind, revs in outs.reverted().items():
            if revs != orphans:
                raise Fail(f"{kind} reverted {revs}, want exactly the written orphans {orphans}")
        ntx, nlogs = outs.check(node_chain(node, head), "reorg during the backfill")
        print(f"2. reorg of depth {depth} during the backfill: reverted {c}, {c - 1}; exit 0; "
              f"outputs = the chain 0..{head} ({ntx} txs, {nlogs} logs)", flush=True)
    finally:
        if proc is not None:
            proc.close()
        if gate is not None:
            gate.close()
        node.stop()


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bp-reorgs-") as tmp:
        try:
            lower_head(bp, tmp, rng)
            reorg_in_backfill(bp, tmp, rng)
        except Fail as e:
            sys.exit(f"FAIL: {e}")
    print(f"OK ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
