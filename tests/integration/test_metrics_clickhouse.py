"""The derived analytics tables of the ClickHouse output (a real Debian clickhouse-server, 18.16:
no TTL, no UInt256) through crashes, SIGKILLs and reorgs, then their retention.

1. tests/tools/metricsdrive.py's scenario, as for SQLite and PostgreSQL: anvil blocks spread over
   minutes, hours and days with the random workload and token events; a backfill crashed in the
   middle of its derived inserts (crash point clickhouse.mid_derived: chain_metrics_block
   written, the other derived tables not), then SIGKILLed at random while it writes; `run
   --confirmations 0` through reorgs of depth 1..5 and a SIGKILL. After each step every row of
   every derived table, read as a query sees it (FINAL, the rollups' newest versions), equals
   the recomputation from the node's blocks and receipts (tests/tools/metricscheck.py), and
   every per-block table's sign sum equals its FINAL row count. The issue's three example
   queries run literally (with the `gtp.` prefix) and return the recomputed rows. The follow
   runs with --ml on: ml_predictions holds one row per canonical transaction of every block it
   applied, each score the one an uninterrupted run gives.
2. Crashes around the rollups: a reorg is written by a process that dies before the rollups
   (clickhouse.before_rollups) and by one that dies between the minutes' and the hours'
   (clickhouse.mid_rollups); the merges are forced (OPTIMIZE ... FINAL) before each restart;
   the restart recomputes the windows and the tables equal the recomputation again.
3. Prices (test_metrics_prices.py's file phases): blocks priced from `--prices FILE` when they
   are written, NULL without a price; a later run given the rest of the prices reprices the
   blocks already written (a -1 row of the old and a +1 row of the new, in one INSERT) and
   their windows.
4. Retention without TTL: a chain of ~3 days backfilled with short retentions drops exactly the
   partitions (a day of chain time for block rows, minutes and sets; 30 days for hours) that
   end at or before each table's cut; every row left equals the recomputation.
"""
import datetime
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import TABLES, Expected, Mismatch, compare, read_clickhouse  # noqa: E402
from metricsdrive import ORIGIN, Scenario, tail  # noqa: E402
import rowcheck  # noqa: E402
import test_metrics_prices as P  # noqa: E402
import test_metrics_retention as R  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3030"))
DB = "gtp"
PER_BLOCK = ("chain_metrics_block", "contract_metrics_block", "token_transfers", "ml_predictions",
             "active_addresses", "contract_senders")
ROLLUPS = tuple(f"{k}_metrics_{g}" for k in ("chain", "contract") for g in ("1m", "1h", "1d"))


class ChBackend:
    label = "clickhouse"
    crashpoint = "clickhouse.mid_derived"

    def __init__(self, ch, db):
        self.ch, self.db = ch, db
        self.url = ch.url(db)

    def checkpoint(self):
        try:
            cps = rowcheck.ch_checkpoints(self.ch, self.db, ORIGIN)
        except RuntimeError:
            return None  # not created yet
        return cps.get("clickhouse")

    def read(self, origin):
        return read_clickhouse(self.ch, self.db, origin)

    def query(self, sql):
        return self.ch.sql(sql.replace("FROM ", f"FROM {self.db}."))

    def address(self, text):
        return text

    def view_columns(self, view):
        return [r[0] for r in self.ch.sql(f"DESCRIBE TABLE {self.db}.{view}")]


def utc(w):
    return datetime.datetime.fromtimestamp(w, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def crash_around_rollups(sc, ch):
    """A reorg written by processes that die before and in the middle of the rollups."""
    ml = ("--ml", "on") if sc.ml else ()
    for point, depth in (("clickhouse.before_rollups", 2), ("clickhouse.mid_rollups", 3)):
        sc.mine()
        sc.mine()
        head = sc.node.block_number()
        sc.node.rpc("anvil_reorg", [depth, []])
        sc.wl.after_reorg()
        sc.mine()
        p = sc.spawn(sc.cmd("run", "--confirmations", "0", "--poll-interval", "0.2", *ml),
                     {"BP_CRASHPOINT": point})
        rc = p.wait(120)
        if rc != 86:
            raise Mismatch(f"run armed with {point} exited {rc}, want 86:\n{tail(sc.err_path)}")
        ch.merge(DB, PER_BLOCK + ROLLUPS)
        proc = sc.spawn(sc.cmd("run", "--confirmations", "0", "--poll-interval", "0.2", *ml))
        try:
            sc.wait_caught_up(proc, f"after a crash at {point}")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        sc.check(f"after a crash at {point} (reorg of depth {depth} below {head + 1}), merged")


def retention_kept_ch(exp, blocks):
    """exp's tables as partition drops leave them: the rule's cut of each table (as for SQLite
    and PostgreSQL), rounded down to the table's partition (whole partitions go)."""
    ts = [int(b["timestamp"], 16) for b in blocks]
    newest, frozen = ts[-1], ts[-1 - R.REORG_WINDOW]
    keep = R.KEEP
    eff = {"1m": max(keep["1m"], keep["block"] + 3600),
           "1h": max(keep["1h"], keep["block"] + 86400), "1d": keep["1d"]}
    parent = {"1m": 3600, "1h": 86400, "1d": 86400}
    part = {"1m": 86400, "1h": 2592000, "1d": 31104000}

    def floor(c, unit):
        return c - c % unit

    t = exp.tables
    c = floor(R.cut(newest, frozen, keep["block"], 60), 86400)
    t["chain_metrics_block"] = {k: r for k, r in t["chain_metrics_block"].items()
                                if r["block_timestamp"] >= c}
    for g, length in R.GRAIN.items():
        c = floor(R.cut(newest, frozen, eff[g], parent[g]), part[g])
        t[f"chain_metrics_{g}"] = {w: r for w, r in t[f"chain_metrics_{g}"].items() if w >= c}
        c = floor(R.cut(newest, frozen, eff[g], length), part[g])
        t[f"contract_metrics_{g}"] = {k: r for k, r in t[f"contract_metrics_{g}"].items()
                                      if k[0] >= c}
    sets = {g: floor(R.cut(newest, frozen, keep["sets"], length), 86400)
            for g, length in R.GRAIN.items()}
    for name in ("active_addresses", "contract_senders"):
        t[name] = {k: v for k, v in t[name].items() if k[1] >= sets[k[0]]}
    return exp


def prices(bp, ch, tmp):
    with Anvil() as node:
        wl = Workload(node, seed=77)
        wl.setup()
        blocks, receipts = P.build_chain(node, wl)
        P.file_phases(bp, node, wl, blocks, receipts, tmp, ch.url("usd"),
                      lambda: read_clickhouse(ch, "usd", P.ORIGIN),
                      lambda: ch.sql("SELECT timestamp, usd FROM usd.prices FINAL"
                                     " WHERE symbol = 'ETH'"), "clickhouse")


def retention(bp, ch):
    with Anvil() as node:
        wl = Workload(node, seed=5)
        wl.setup()
        R.mine(node, wl, 170, 1500)
        head = node.block_number()
        db = "retention"
        p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", ch.url(db), "--chain",
                            R.ORIGIN, "--from", "0", "--to", str(head), "--batch-size", "20"]
                           + R.FLAGS, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise Mismatch(f"retention backfill exit {p.returncode}:\n{p.stderr[-3000:]}")
        blocks = [node.block(n, True) for n in range(head + 1)]
        receipts = [node.receipts(n) for n in range(head + 1)]
        full = Expected(blocks, receipts, R.ORIGIN)
        before = {t: len(full.tables[t]) for t in TABLES}
        exp = retention_kept_ch(full, blocks)
        counts = compare(exp, read_clickhouse(ch, db, R.ORIGIN), label="retention: ")
        gone = {t: before[t] - counts[t] for t in TABLES if before[t] != counts[t]}
        for t in ("chain_metrics_block", "chain_metrics_1m", "active_addresses",
                  "contract_senders"):
            if not gone.get(t):
                raise Mismatch(f"retention: nothing of {t} expired: the chain is too short")
        if gone.get("chain_metrics_1d"):
            raise Mismatch("retention: 1d rows expired though kept forever")
        print("retention (partition drops, 18.16): exactly the rows of the expired partitions "
              "went: " + " ".join(f"{t}={n}" for t, n in gone.items()))


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with ClickHouse() as ch, tempfile.TemporaryDirectory(prefix="bp-metrics-ch-") as tmp:
        version = ch.sql("SELECT version()")[0][0]
        print(f"ClickHouse {version}")
        sc = Scenario(blockpipe, ChBackend(ch, DB), tmp, SEED, ml=True)
        try:
            sc.run(utc)
            crash_around_rollups(sc, ch)
            ch.merge(DB, PER_BLOCK + ROLLUPS)
            exp = sc.check("all merged")
            sc.queries(exp, utc)
            sc.ml_uninterrupted(sc.be.read(ORIGIN)["ml_predictions"])
        finally:
            sc.close()
        versions = ch.sql(f"SELECT version FROM {DB}.schema_migrations ORDER BY 1")
        if versions != [["1"], ["2"], ["3"], ["4"], ["5"], ["6"]]:
            raise Mismatch(f"schema_migrations: {versions}, want versions 1 to 6")
        prices(blockpipe, ch, tmp)
        retention(blockpipe, ch)
    print("PASS")


if __name__ == "__main__":
    main()
