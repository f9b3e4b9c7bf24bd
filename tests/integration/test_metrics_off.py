"""A reorg written with `--metrics off` takes the reverted blocks out of the derived tables
written while metrics was on, in every SQL output: SQLite, PostgreSQL and ClickHouse (a real
Debian clickhouse-server, 18.16). `python3 test_metrics_off.py sqlite postgres clickhouse`
(the default: all three) names the outputs to run.

The rule (docs/ARCHITECTURE.md, "Chain analytics", `--metrics off`): with metrics off an output
writes no derived rows, but a REVERT still takes its block's derived rows out of every derived
table and recomputes the windows they were in, so the derived tables hold exactly the
canonical blocks among those applied with metrics on.

Per output:
1. anvil blocks spread over minutes, hours and days (tests/tools/metricsdrive.py's chain:
   random workload and token events); a backfill with metrics on; the derived tables equal the
   recomputation from the node (tests/tools/metricscheck.py).
2. anvil reorgs the last 4 blocks (new transactions in them) and mines 2 more; `run --metrics
   off --confirmations 0` follows to the head. Every derived table equals the recomputation
   from the canonical blocks below the fork (the ones applied with metrics on); for
   ClickHouse, every per-block table's sign sum equals its FINAL row count.
3. A deeper reorg (into the blocks applied with metrics on again): `run --metrics off` dies
   while writing it (ClickHouse: at clickhouse.before_rollups, the reverted blocks' derived
   rows taken back, their windows not recomputed yet, then the merges are forced; SQLite and
   PostgreSQL: before the COMMIT of the batch); the next `run --metrics off` recovers and
   follows to the head: the tables equal the recomputation from the blocks below the new fork.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metricscheck import Expected, Mismatch, compare  # noqa: E402
from metricsdrive import ORIGIN, each_output, tail  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4242"))
DB = "gtp"
FOLLOW = ("--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "4")
# where a run writing a reorg with metrics off dies (86: the crash point's exit code)
CRASH = {"sqlite": "sqlite.before_commit", "postgres": "postgres.before_commit",
         "clickhouse": "clickhouse.before_rollups"}


def check_prefix(sc, fork, label):
    """The derived tables hold exactly the canonical blocks below fork."""
    blocks, receipts = sc.node_chain()
    exp = Expected(blocks[:fork], receipts[:fork], ORIGIN)
    try:
        counts = compare(exp, sc.be.read(ORIGIN), label=f"{sc.be.label}, {label}: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None
    print(f"{sc.be.label}, {label}: the derived tables equal the recomputation from blocks "
          f"0..{fork - 1}: " + " ".join(f"{t}={n}" for t, n in counts.items() if n), flush=True)


def follow(sc, label):
    sc.follow_to_head(sc.cmd("run", "--metrics", "off", *FOLLOW), label)


def scenario(sc, server):
    label = sc.be.label
    for _ in range(24):
        sc.mine()
    head = sc.node.block_number()
    p = sc.spawn(sc.cmd("backfill", "--from", "0", "--to", str(head), "--batch-size", "5"))
    if p.wait(300) != 0:
        raise Mismatch(f"{label}: backfill exited {p.returncode}:\n{tail(sc.err_path)}")
    sc.check(f"{label}, metrics on, backfilled")

    fork = sc.reorg_tokens(4, 2)
    follow(sc, f"{label}, metrics off, a reorg")
    check_prefix(sc, fork, f"reorg of blocks {fork}..{fork + 3} with metrics off")

    depth = sc.node.block_number() - fork + 3  # two blocks of metrics-on rows more
    fork = sc.reorg_tokens(depth, 1)
    rc = sc.exit_code(sc.cmd("run", "--metrics", "off", *FOLLOW), 120,
                      {"BP_CRASHPOINT": CRASH[label]})
    if rc != 86:
        raise Mismatch(f"{label}: run --metrics off armed with {CRASH[label]} exited {rc}, "
                       f"want 86:\n{tail(sc.err_path)}")
    if label == "clickhouse":
        server.merge(DB, PER_BLOCK + ROLLUPS)
    follow(sc, f"{label}, metrics off, after a crash")
    check_prefix(sc, fork, f"reorg of depth {depth} with metrics off, a crash at "
                 f"{CRASH[label]}, recovered")


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    each_output(blockpipe, "metrics-off", SEED, scenario, db=DB)
    print("PASS")


if __name__ == "__main__":
    main()
