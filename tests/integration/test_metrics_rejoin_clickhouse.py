"""test_metrics_rejoin.py with ClickHouse as the output that drops out and rejoins: a real
clickhouse-server (Debian 18.16) killed three times while SQLite goes on, restarted on the same
data dir and ports, caught up by the run; then every derived row of both outputs, as a query
sees it (FINAL, the rollups' newest versions), and their prices tables equal the recomputation
from the node's blocks and receipts and the prices given."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
import test_metrics_rejoin as rejoin  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
import test_metrics_clickhouse  # noqa: E402


class ChBackend(rejoin.ServerDown, test_metrics_clickhouse.ChBackend):
    def prices(self):
        return self.ch.sql(f"SELECT timestamp, usd FROM {self.db}.prices FINAL"
                           " WHERE symbol = 'ETH'")


def main():
    print(__doc__.strip().splitlines()[0])
    with ClickHouse() as ch, tempfile.TemporaryDirectory(prefix="bp-rejoin-ch-") as tmp:
        rejoin.drive(os.environ["BLOCKPIPE"], tmp, ch, ChBackend(ch, "rejoin"))
    print("PASS")


if __name__ == "__main__":
    main()
