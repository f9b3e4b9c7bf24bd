"""The derived analytics tables of the SQLite output through crashes, SIGKILLs and reorgs
(tests/tools/metricsdrive.py tells the scenario): every row of chain_metrics_block,
chain_metrics_1m/_1h/_1d, contract_metrics_*, active_addresses, contract_senders,
token_transfers and ml_predictions (the follow runs with --ml on) must equal a recomputation in Python from the node's own blocks and receipts
after each step, and the issue's three example queries must return the recomputed rows."""
import datetime
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from metricscheck import read_sqlite  # noqa: E402
from metricsdrive import Scenario  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1010"))


class SqliteBackend:
    label = "sqlite"

    def __init__(self, path):
        self.path = path
        self.url = f"sqlite:{path}"

    def _db(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)

    def checkpoint(self):
        if not os.path.exists(self.path):
            return None
        db = self._db()
        try:
            rows = db.execute("SELECT number, hash FROM checkpoints").fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()
        return tuple(rows[0]) if rows else None

    def read(self, origin):
        return read_sqlite(self.path, origin)

    def query(self, sql):
        db = self._db()
        try:
            return [[None if v is None else str(v) for v in r] for r in db.execute(sql)]
        finally:
            db.close()

    def address(self, text):
        return text

    def view_columns(self, view):
        return [r[1] for r in self.query(f"PRAGMA table_info({view})")]


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-metrics-") as tmp:
        sc = Scenario(blockpipe, SqliteBackend(os.path.join(tmp, "bp.db")), tmp, SEED, ml=True)
        try:
            sc.run(lambda w: datetime.datetime.fromtimestamp(w, datetime.timezone.utc)
                   .strftime("%Y-%m-%d %H:%M:%S"))
        finally:
            sc.close()
    print("PASS")


if __name__ == "__main__":
    main()
