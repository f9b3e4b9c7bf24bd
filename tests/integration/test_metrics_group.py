"""A kill -9 inside a group of batches (docs/ARCHITECTURE.md "Chain analytics": behind the head
the SQL outputs keep one transaction open across several batches and write the rows those
batches would each rewrite - the hot contracts' open hour and day, a minute two batches share,
the 1h and 1d rollups - once, at the group's end) loses nothing and counts nothing twice.

The chain's blocks come seconds apart (many per minute, minutes per batch, batches per hour),
so every group holds minutes, hours and days open. Several backfills each go a little further
and are killed (crash point `sqlite.mid_group` / `postgres.mid_group`: at the start of a batch's write into a group
that already holds a batch, so exit 86 says the kill landed inside a group; the first run at
its first pass, so in its first group, the later ones at the 8th, after a group was committed:
a group holds at most 8 batches) or end by themselves; after each, every derived row must equal tests/tools/metricscheck.py's
recomputation from the node's blocks up to the output's checkpoint (what a reader sees at a
commit), and after the last, of the whole chain. SQLite, then PostgreSQL."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import metricsdrive  # noqa: E402
from metricscheck import Expected, Mismatch, compare  # noqa: E402
from metricsdrive import ORIGIN, Scenario, tail  # noqa: E402
from pg import Postgres  # noqa: E402
from test_metrics_pg import PgBackend  # noqa: E402
from test_metrics_sqlite import SqliteBackend  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3030"))
BLOCKS = 90
# seconds between blocks: mostly within a minute, sometimes the next minutes, hours, a day
metricsdrive.STEPS = (1, 2, 3, 5, 7, 11, 13, 13, 17, 29, 59, 61, 3599, 86401)


def check_at_checkpoint(sc, label):
    """The tables against the recomputation of the node's blocks up to the checkpoint."""
    cp = sc.be.checkpoint()
    if cp is None:
        print(f"{label}: no checkpoint yet (nothing committed)")
        return None
    blocks, receipts = sc.node_chain()
    if blocks[cp[0]]["hash"] != cp[1]:
        raise Mismatch(f"{label}: checkpoint {cp} is not the node's block")
    exp = Expected(blocks[:cp[0] + 1], receipts[:cp[0] + 1], ORIGIN)
    try:
        counts = compare(exp, sc.be.read(ORIGIN), label=f"{label}: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None
    print(f"{label}: at checkpoint {cp[0]} every derived row equals the recomputation: "
          + " ".join(f"{t}={n}" for t, n in counts.items() if n))
    return cp[0]


def backfill(sc, to, crash=0):
    args = ("--from", "0", "--to", str(to), "--batch-size", "2", "--workers", "2")
    env = {"BP_CRASHPOINT": f"{sc.be.label}.mid_group:{crash}"} if crash else None
    p = sc.spawn(sc.cmd("backfill", *args), env)
    rc = p.wait(300)
    want = 86 if crash else 0
    if rc != want:
        raise Mismatch(f"backfill to {to}{' armed in a group' if crash else ''} exited {rc}, "
                       f"want {want}:\n{tail(sc.err_path)}")


def scenario(blockpipe, backend, tmp):
    sc = Scenario(blockpipe, backend, tmp, SEED)
    try:
        for _ in range(BLOCKS):
            sc.mine(sc.rng.randrange(1, 6))
        head = sc.node.block_number()
        # killed in the first group: nothing committed, then killed in later groups
        backfill(sc, head, crash=1)
        if check_at_checkpoint(sc, "killed in the first group") is not None:
            raise Mismatch("a kill in the first group left a checkpoint")
        kills, at = 1, -1
        for _ in range(3):
            to = at + 9
            backfill(sc, to)  # groups committed at their ends
            at = check_at_checkpoint(sc, f"backfill to {to}")
            if at != to:
                raise Mismatch(f"backfill to {to} left the checkpoint at {at}")
            backfill(sc, head, crash=8)
            kills += 1
            at = check_at_checkpoint(sc, f"killed in a group after block {to}")
            if at is None or at <= to or at >= head:
                raise Mismatch(f"a kill inside a group after block {to} left the checkpoint "
                               f"at {at}")
        backfill(sc, head)
        if check_at_checkpoint(sc, "finished") != head:
            raise Mismatch("the last backfill did not reach the head")
        print(f"{backend.label}: {kills} kills inside groups; the tables equal the "
              "recomputation at every checkpoint")
    finally:
        sc.close()


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-metrics-group-") as tmp:
        scenario(blockpipe, SqliteBackend(os.path.join(tmp, "bp.db")), tmp)
    with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-metrics-group-pg-") as tmp:
        scenario(blockpipe, PgBackend(pg), tmp)
    print("PASS")


if __name__ == "__main__":
    main()
