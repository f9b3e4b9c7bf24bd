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
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import Expected, Mismatch, compare  # noqa: E402
from metricsdrive import ORIGIN, Scenario, tail  # noqa: E402
from pg import Postgres  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS, ChBackend  # noqa: E402
from test_metrics_pg import PgBackend  # noqa: E402
from test_metrics_sqlite import SqliteBackend  # noqa: E402

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


def scenario(sc, merge):
    label = sc.be.label
    for _ in range(24):
        sc.mine()
    head = sc.node.block_number()
    p = sc.spawn(sc.cmd("backfill", "--from", "0", "--to", str(head), "--batch-size", "5"))
    if p.wait(300) != 0:
        raise Mismatch(f"{label}: backfill exited {p.returncode}:\n{tail(sc.err_path)}")
    sc.check(f"{label}, metrics on, backfilled")

    fork = reorg(sc, 4, 2)
    follow(sc, f"{label}, metrics off, a reorg")
    check_prefix(sc, fork, f"reorg of blocks {fork}..{fork + 3} with metrics off")

    depth = sc.node.block_number() - fork + 3  # two blocks of metrics-on rows more
    fork = reorg(sc, depth, 1)
    p = sc.spawn(sc.cmd("run", "--metrics", "off", *FOLLOW), {"BP_CRASHPOINT": CRASH[label]})
    try:
        rc = p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = "nothing in 120 s"
    if rc != 86:
        raise Mismatch(f"{label}: run --metrics off armed with {CRASH[label]} exited {rc}, "
                       f"want 86:\n{tail(sc.err_path)}")
    merge()
    follow(sc, f"{label}, metrics off, after a crash")
    check_prefix(sc, fork, f"reorg of depth {depth} with metrics off, a crash at "
                 f"{CRASH[label]}, recovered")


def run_sqlite(bp, tmp):
    sc = Scenario(bp, SqliteBackend(os.path.join(tmp, "bp.db")), tmp, SEED)
    try:
        scenario(sc, lambda: None)
    finally:
        sc.close()


def run_postgres(bp, tmp):
    with Postgres() as pg:
        sc = Scenario(bp, PgBackend(pg), tmp, SEED)
        try:
            scenario(sc, lambda: None)
        finally:
            sc.close()


def run_clickhouse(bp, tmp):
    with ClickHouse() as ch:
        sc = Scenario(bp, ChBackend(ch, DB), tmp, SEED)
        try:
            scenario(sc, lambda: ch.merge(DB, PER_BLOCK + ROLLUPS))
        finally:
            sc.close()


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    runs = {"sqlite": run_sqlite, "postgres": run_postgres, "clickhouse": run_clickhouse}
    for name in sys.argv[1:] or list(runs):
        with tempfile.TemporaryDirectory(prefix=f"bp-metrics-off-{name}-") as tmp:
            runs[name](blockpipe, tmp)
    print("PASS")


if __name__ == "__main__":
    main()
