"""The derived analytics tables of the PostgreSQL output through crashes, SIGKILLs and reorgs
(tests/tools/metricsdrive.py tells the scenario): every row of chain_metrics_block,
chain_metrics_1m/_1h/_1d, contract_metrics_*, active_addresses, contract_senders,
token_transfers and ml_predictions (the follow runs with --ml on) must equal a recomputation in Python from the node's own blocks and receipts
after each step, and the issue's three example queries (without the database prefix) must
return the recomputed rows. The first crash lands between a batch's raw rows and its derived
rows (computed beside the raw rows' COPY). Also: a schema of version 1 with data is migrated in
place."""
import datetime
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from metricscheck import Expected, Mismatch, compare, read_pg  # noqa: E402
from metricsdrive import Scenario  # noqa: E402
from pg import Postgres  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "2020"))


class PgBackend:
    label = "postgres"
    # a batch without REVERTs COPYs its raw rows while the metrics module computes its derived
    # rows on another thread (bp_sink.derived_late): killed between the two, in the
    # transaction, it must leave neither (the run exits 86 only if that path was taken)
    crashpoint = "postgres.before_late_derived"

    def __init__(self, pg):
        self.pg = pg
        self.url = pg.url()

    def checkpoint(self):
        try:
            rows = self.pg.sql("SELECT number, '0x' || encode(hash, 'hex') FROM checkpoints")
        except RuntimeError:
            return None  # not created yet
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def read(self, origin):
        return read_pg(self.pg, origin)

    def query(self, sql):
        return self.pg.sql(sql)

    def address(self, text):
        return "0x" + text[2:] if text.startswith("\\x") else text

    def view_columns(self, view):
        return [r[0] for r in self.pg.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"current_schema() AND table_name = '{view}' ORDER BY ordinal_position")]


def upgrade_in_place(pg, sc, blockpipe):
    """A schema holding blocks 0..10 at version 1 (no derived tables) is migrated to the current
    version (7) by the next run, which writes the derived rows of the blocks after it: they equal the
    recomputation of those blocks alone."""
    base = pg.url(query="schema=old")
    run = [blockpipe, "backfill", "--rpc", sc.node.url, "--chain", "megaeth",
           "--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
           "--retention-1h", "0"]
    subprocess.run(run + ["--output", base + "&metrics=off", "--from", "0", "--to", "10"],
                   check=True, capture_output=True, timeout=300)
    drops = []
    for t in pg.sql("SELECT table_name FROM information_schema.views WHERE table_schema = 'old'"):
        drops.append(f"DROP VIEW old.{t[0]}")
    for t in DERIVED:
        drops.append(f"DROP TABLE old.{t}")
    pg.sql("; ".join(drops) + "; DELETE FROM old.schema_migrations WHERE version >= 2")
    head = sc.node.block_number()
    p = subprocess.run(run + ["--output", base, "--from", "0", "--to", str(head)],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 or "migrated from version 1 to 7" not in p.stderr:
        raise Mismatch(f"the run on a version 1 schema: exit {p.returncode}, want 0 and a "
                       f"'migrated from version 1 to 7' line:\n{p.stderr[-3000:]}")
    blocks, receipts = sc.node_chain()
    counts = compare(Expected(blocks[11:], receipts[11:], "megaeth"), read_pg(pg, "megaeth", "old"),
                     label="upgraded schema: ")
    print(f"a version 1 schema was migrated in place; blocks 11..{head} derived: "
          f"chain_metrics_block={counts['chain_metrics_block']}")


DERIVED = ("chain_metrics_block", "chain_metrics_1m", "chain_metrics_1h", "chain_metrics_1d",
           "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d",
           "active_addresses", "contract_senders", "token_transfers", "prices", "ml_predictions")


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-metrics-pg-") as tmp:
        v = pg.sql("SELECT 1")  # the server answers
        if v != [["1"]]:
            raise Mismatch(f"psql: {v}")
        sc = Scenario(blockpipe, PgBackend(pg), tmp, SEED, ml=True)
        try:
            sc.run(lambda w: datetime.datetime.fromtimestamp(w, datetime.timezone.utc)
                   .strftime("%Y-%m-%d %H:%M:%S"))
            upgrade_in_place(pg, sc, blockpipe)
        finally:
            sc.close()
        versions = pg.sql("SELECT version FROM schema_migrations ORDER BY 1")
        if versions != [["1"], ["2"], ["3"], ["4"], ["5"], ["6"], ["7"]]:
            raise Mismatch(f"schema_migrations: {versions}, want versions 1 to 7")
    print("PASS")


if __name__ == "__main__":
    main()
