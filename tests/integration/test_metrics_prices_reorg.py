"""USD through reorgs, crashes and SIGKILLs (audit B: no test ran prices with reorgs), SQLite,
PostgreSQL and ClickHouse.

tests/tools/metricsdrive.py's scenario (a backfill crashed before COMMIT and SIGKILLed at random
times, then `run --confirmations 0` through anvil reorgs of depth 1..5 and a SIGKILL + restart)
with prices from test_metrics_prices.py's CoinGecko-shaped server, whose clock follows the
chain one block behind: the range endpoint knows no point after the clock, /simple/price
answers the price at the clock, so a new block is priced by an older point when one lies within
--price-max-age (600 s; the scenario's steps between blocks go from 1 s to days), else it
stays NULL until the next block moves the clock to it and the point arrives (history more than
a day before the clock comes in hourly points: blocks between them stay NULL). After every step every derived row, fees_paid_usd of blocks and of every window
included, must equal tests/tools/metricscheck.py's recomputation from the node's blocks and the
output's own prices table: blocks re-applied by a reorg are priced anew, reverted ones take
their USD out of their windows, and the points learnt while blockpipe was down price the
blocks after the restart. ClickHouse's rows are read as a query sees them (FINAL).
The three backends run side by side, each in a process of its own (BP_BACKENDS=NAME: that one
alone): each has its own node, price server, database and blockpipe, and mostly waits on them.
"""
import datetime
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metricsdrive import Scenario  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from pg import Postgres  # noqa: E402
from server import _child_setup  # noqa: E402
from test_metrics_clickhouse import ChBackend  # noqa: E402
from test_metrics_prices import FakeGecko  # noqa: E402
from test_metrics_rejoin import PgBackend as PgPrices  # noqa: E402
from test_metrics_rejoin import SqliteBackend as SqlitePrices  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3030"))
MAX_AGE = 600
BACKENDS = os.environ.get("BP_BACKENDS", "sqlite,postgres,clickhouse").split(",")


class Prices:
    """The scenario's price source: the server's clock one block behind the chain."""

    def __init__(self):
        self.srv = FakeGecko(clock=0, rate_limit_first=False)
        self.args = ["--price-url", self.srv.url, "--price-interval", "0.2", "--price-max-age",
                     str(MAX_AGE)]
        self.max_age = MAX_AGE
        self.last = None

    def mined(self, ts):
        if self.last is not None:
            self.srv.clock = self.last
        self.last = ts

    def stop(self):
        self.srv.stop()


class ChPrices(ChBackend):
    def prices(self):
        return self.ch.sql(f"SELECT timestamp, usd FROM {self.db}.prices FINAL "
                           "WHERE symbol = 'ETH'")


def scenario(blockpipe, backend, tmp, seed):
    prices = Prices()
    sc = Scenario(blockpipe, backend, tmp, seed, prices=prices)
    try:
        sc.run(lambda w: datetime.datetime.fromtimestamp(w, datetime.timezone.utc)
               .strftime("%Y-%m-%d %H:%M:%S"))
    finally:
        sc.close()
        prices.stop()


def side_by_side():
    """Runs this test once per backend, all at once; their outputs in BACKENDS' order."""
    print(__doc__)
    procs, failed = [], []
    try:
        for b in BACKENDS:  # each dies with this process (PR_SET_PDEATHSIG), its servers too
            procs.append((b, subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)], preexec_fn=_child_setup(None, None),
                env=dict(os.environ, BP_BACKENDS=b, BP_PART="1"), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for b, p in procs:
            out, _ = p.communicate()
            print(out, end="", flush=True)
            if p.returncode != 0:
                failed.append(f"{b} (exit {p.returncode})")
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if failed:
        sys.exit(f"FAIL: {', '.join(failed)}")
    print("PASS")


def main():
    if len(BACKENDS) > 1:
        return side_by_side()
    if not os.environ.get("BP_PART"):
        print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    if "sqlite" in BACKENDS:
        with tempfile.TemporaryDirectory(prefix="bp-prices-reorg-") as tmp:
            print("--- SQLite")
            scenario(blockpipe, SqlitePrices(os.path.join(tmp, "bp.db")), tmp, SEED)
    if "postgres" in BACKENDS:
        with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-prices-reorg-pg-") as tmp:
            print("--- PostgreSQL")
            scenario(blockpipe, PgPrices(pg), tmp, SEED + 1)
    if "clickhouse" in BACKENDS:
        with ClickHouse() as ch, tempfile.TemporaryDirectory(prefix="bp-prices-reorg-ch-") as tmp:
            print(f"--- ClickHouse {ch.sql('SELECT version()')[0][0]}")
            scenario(blockpipe, ChPrices(ch, "gtp"), tmp, SEED + 2)
    print("PASS")


if __name__ == "__main__":
    main()
