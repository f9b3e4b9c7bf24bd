"""A reorg written by the ClickHouse output with `--metrics off` takes the reverted blocks out
of the derived tables written while metrics was on (a real Debian clickhouse-server, 18.16).

The rule (docs/ARCHITECTURE.md, "Chain analytics", ClickHouse): with metrics off the output
writes no derived rows, but a REVERT still takes its block's derived rows out of every derived
table and recomputes the windows they were in, so the derived tables hold exactly the
canonical blocks among those applied with metrics on.

1. anvil blocks spread over minutes, hours and days (tests/tools/metricsdrive.py's chain:
   random workload and token events); a backfill with metrics on; the derived tables equal the
   recomputation from the node (tests/tools/metricscheck.py).
2. anvil reorgs the last 4 blocks (new transactions in them) and mines 2 more; `run --metrics
   off --confirmations 0` follows to the head. Every derived table equals the recomputation
   from the canonical blocks below the fork (the ones applied with metrics on); every
   per-block table's sign sum equals its FINAL row count.
3. A deeper reorg (into the blocks applied with metrics on again): `run --metrics off` dies at
   clickhouse.before_rollups while writing it (the reverted blocks' derived rows taken back,
   their windows not recomputed yet); the merges are forced; the next `run --metrics off`
   recovers and follows to the head: the tables equal the recomputation from the blocks below
   the new fork.
"""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import Expected, Mismatch, compare, read_clickhouse  # noqa: E402
from metricsdrive import ORIGIN, Scenario, tail  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS, ChBackend  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4242"))
DB = "gtp"
FOLLOW = ("--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "4")


def check_prefix(sc, ch, fork, label):
    """The derived tables hold exactly the canonical blocks below fork."""
    blocks, receipts = sc.node_chain()
    exp = Expected(blocks[:fork], receipts[:fork], ORIGIN)
    try:
        counts = compare(exp, read_clickhouse(ch, DB, ORIGIN), label=f"{label}: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None
    print(f"{label}: the derived tables equal the recomputation from blocks 0..{fork - 1}: "
          + " ".join(f"{t}={n}" for t, n in counts.items() if n), flush=True)


def reorg(sc, depth, more):
    before = sc.node.block_number()
    pairs = [[{"from": sc.rng.choice(sc.wl.accounts), "to": sc.em.contracts[0],
               "gas": hex(120000), "data": "0x" + sc.em.calldata("erc20")}, k]
             for k in range(depth)]
    sc.node.rpc("anvil_reorg", [depth, pairs])
    sc.wl.after_reorg()
    if sc.node.block_number() != before:
        raise Mismatch(f"anvil_reorg({depth}) moved the head")
    for _ in range(more):
        sc.mine()
    return before - depth + 1  # the lowest block replaced


def follow(sc, label, env=None):
    proc = sc.spawn(sc.cmd("run", "--metrics", "off", *FOLLOW), env)
    try:
        sc.wait_caught_up(proc, label)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise Mismatch(f"{label}: run exited {proc.returncode}:\n{tail(sc.err_path)}")


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with ClickHouse() as ch, tempfile.TemporaryDirectory(prefix="bp-ch-metrics-off-") as tmp:
        sc = Scenario(blockpipe, ChBackend(ch, DB), tmp, SEED)
        try:
            for _ in range(24):
                sc.mine()
            head = sc.node.block_number()
            p = sc.spawn(sc.cmd("backfill", "--from", "0", "--to", str(head), "--batch-size",
                                "5"))
            if p.wait(300) != 0:
                raise Mismatch(f"backfill exited {p.returncode}:\n{tail(sc.err_path)}")
            sc.check("metrics on, backfilled")

            fork = reorg(sc, 4, 2)
            follow(sc, "metrics off, a reorg")
            check_prefix(sc, ch, fork, f"reorg of blocks {fork}..{fork + 3} with metrics off")

            depth = sc.node.block_number() - fork + 3  # two blocks of metrics-on rows more
            fork = reorg(sc, depth, 1)
            p = sc.spawn(sc.cmd("run", "--metrics", "off", *FOLLOW),
                         {"BP_CRASHPOINT": "clickhouse.before_rollups"})
            try:
                rc = p.wait(120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = "nothing in 120 s"
            if rc != 86:
                raise Mismatch(f"run --metrics off armed with clickhouse.before_rollups exited "
                               f"{rc}, want 86 (a reorg's REVERTs reach the rollups with "
                               f"metrics off):\n{tail(sc.err_path)}")
            ch.merge(DB, PER_BLOCK + ROLLUPS)
            follow(sc, "metrics off, after a crash before the rollups")
            check_prefix(sc, ch, fork, f"reorg of depth {depth} with metrics off, a crash "
                         "before the rollups, merged, recovered")
        finally:
            sc.close()
    print("PASS")


if __name__ == "__main__":
    main()
