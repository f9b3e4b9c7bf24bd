"""ClickHouse retention counts chain time, not the server's clock: a backfill of old history
keeps what is younger than each retention relative to the newest block (a real Debian
clickhouse-server, 18.16).

anvil starts 400 days in the past (--timestamp); ~3 days of blocks (one about every 25
minutes, test_metrics_retention.py's chain) are backfilled with short retentions (block rows
2 h, sets 1 h, 1m rows 4 h, 1h rows 30 h, 1d rows forever) and --reorg-window 10. Every block is
older than every retention by the server's clock, so a TTL counted from now() on the chain
time alone would take all of them at its next merge (the derived tables' TTLs, ttl=on by
default on servers from 20.10, also keep a row ttl_slack, 7 days, after it was written). After
the backfill the merges are forced (OPTIMIZE ... FINAL, which also applies any TTL); the rows
left must be exactly the ones the chain-time rule keeps, rounded down to whole partitions
(test_metrics_clickhouse.py's retention_kept_ch: a day of chain time for block rows, minutes
and sets, 30 days for hours), each equal to the recomputation from the node's blocks: what is
younger than its retention relative to the head stays, what is older went. And no derived table
has a TTL clause (18.16 has none; test_clickhouse_current.py runs history() on ClickHouse 26.5
with the TTLs, the default, and with ttl=off).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import TABLES, Expected, Mismatch, compare, read_clickhouse  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS, retention_kept_ch  # noqa: E402
import test_metrics_retention as R  # noqa: E402

DB = "history"
AGO = 400 * 86400


def history(bp, ch, query="", db=DB, ttl=False):
    """The backfill of old history into ch's database db (URL options query) and its checks;
    ttl: the tables with a retention have a TTL (current servers, ttl on)."""
    start = int(time.time()) - AGO
    with Anvil(["--timestamp", start]) as node:
        wl = Workload(node, seed=5)
        wl.setup()
        R.mine(node, wl, 170, 1500)
        head = node.block_number()
        blocks = [node.block(n, True) for n in range(head + 1)]
        receipts = [node.receipts(n) for n in range(head + 1)]
        newest = int(blocks[-1]["timestamp"], 16)
        if newest > time.time() - 300 * 86400:
            raise Mismatch(f"the chain is not old history: newest block at {newest}")
        p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output",
                            ch.url(db, query=query), "--chain", R.ORIGIN, "--from", "0", "--to",
                            str(head), "--batch-size", "20"] + R.FLAGS,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise Mismatch(f"backfill exit {p.returncode}:\n{p.stderr[-3000:]}")
        ch.merge(db, PER_BLOCK + ROLLUPS)
        full = Expected(blocks, receipts, R.ORIGIN)
        before = {t: len(full.tables[t]) for t in TABLES}
        exp = retention_kept_ch(full, blocks)
        counts = compare(exp, read_clickhouse(ch, db, R.ORIGIN), label="old history: ")
        gone = {t: before[t] - counts[t] for t in TABLES if before[t] != counts[t]}
        for t in ("chain_metrics_block", "chain_metrics_1m", "active_addresses",
                  "contract_senders"):
            if not gone.get(t):
                raise Mismatch(f"nothing of {t} expired: the chain is too short")
            if not counts.get(t):
                raise Mismatch(f"every row of {t} went: retention did not count chain time")
        with_ttl = ch.sql(f"SELECT name FROM system.tables WHERE database = '{db}'"
                          " AND match(create_table_query, '[[:space:]]TTL[[:space:]]')")
        if bool(with_ttl) != ttl:
            raise Mismatch(f"tables with a TTL: {with_ttl}, want {'some' if ttl else 'none'}")
        print(f"{ch.sql('SELECT version()')[0][0]} {query}: blocks {newest - int(time.time())} s "
              "from now; kept (relative to the head): "
              + " ".join(f"{t}={n}" for t, n in counts.items() if n)
              + "; expired: " + " ".join(f"{t}={n}" for t, n in gone.items()))


def main():
    print(__doc__)
    with ClickHouse() as ch:
        history(os.environ["BLOCKPIPE"], ch)
    print("PASS")


if __name__ == "__main__":
    main()
