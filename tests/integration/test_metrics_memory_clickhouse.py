"""--max-memory bounds a backfill into ClickHouse with the derived tables on (issue 10).

bench/clickhouse_bench.py's chain: simnode serves 600 blocks of 200 transactions 12 s apart (2
hours of chain time, 120 minutes; about 126,000 set rows in active_addresses and 248,000 in
contract_senders over the three grains). A backfill of all of it into a private ClickHouse
server (tests/tools/clickhouse.py: Debian's 18.16 here) with --max-memory 256MiB must
keep blockpipe's peak resident set (wait4 ru_maxrss of its PID, and VmHWM sampled while it runs)
under the budget. It peaked at 259-289 MiB in 7 runs before the output's window sets were held
as interned ids within a share of the budget (they were string-keyed maps with two string copies
per member, uncounted: about 33 MiB here). Then every set-dependent number must equal a
recomputation from the raw transactions the same database holds: the distinct senders of every
minute, hour and day, and every contract window's transactions and distinct senders. Measured on
a release build (test_memory_budget.release_binary: ASan's shadow memory would be what is
measured).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from test_memory_budget import backfill, release_binary  # noqa: E402

BLOCKS = 600
TXS = 200
BUDGET = 256  # MiB (--max-memory)
DB = "mem"
KEEP_ALL = ["--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
            "--retention-1h", "0"]
# the raw transactions as a query sees them, with the contract each one counts for
TXS_SQL = ("SELECT block_number AS b, block_timestamp AS ts, hex(from_address) AS a, "
           "if(isNull(to_address), hex(receipt_contract_address), "
           "if(isNotNull(input) AND input != '0x' AND input != '', hex(to_address), '')) AS k "
           "FROM transactions FINAL")


def fail(msg):
    raise AssertionError(msg)


def same(ch, what, got_sql, want_sql):
    got = sorted(map(tuple, ch.sql(got_sql)))
    want = sorted(map(tuple, ch.sql(want_sql)))
    if not want:
        fail(f"{what}: the recomputation is empty")
    if got != want:
        diff = sorted(set(got) ^ set(want))[:5]
        fail(f"{what}: {len(got)} rows stored, {len(want)} recomputed; first differences {diff}")
    print(f"ok: {what} ({len(got)} rows) equal the recomputation from the raw transactions")


def check(ch, db=DB):
    """The set-dependent numbers of database db against its raw transactions."""
    for grain, secs in (("1m", 60), ("1h", 3600), ("1d", 86400)):
        win = f"intDiv(ts, {secs}) * {secs}"
        same(ch, f"chain_metrics_{grain}.active_addresses",
             f"SELECT window_start, active_addresses FROM {db}.chain_metrics_{grain} FINAL "
             "WHERE block_count > 0",
             f"SELECT {win} AS w, uniqExact(a) FROM ({TXS_SQL.replace('FROM ', f'FROM {db}.')})"
             " GROUP BY w")
        same(ch, f"contract_metrics_{grain} txcount and unique_senders",
             f"SELECT window_start, hex(contract_address), txcount, unique_senders "
             f"FROM {db}.contract_metrics_{grain} FINAL WHERE txcount > 0",
             f"SELECT {win} AS w, k, count(), uniqExact(a) FROM "
             f"({TXS_SQL.replace('FROM ', f'FROM {db}.')}) WHERE k != '' GROUP BY w, k")


def main():
    bp = release_binary()
    sim = subprocess.Popen([bp, "simnode", "--listen", "127.0.0.1:0", "--block-time", "12",
                            "--start-head", str(BLOCKS - 1), "--txs-per-block", str(TXS)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = sim.stdout.readline().split()[-1]
        with ClickHouse() as ch:
            peak, log = backfill(bp, url, ch.url(DB), BLOCKS - 1, "--workers", "4",
                                 "--log-level", "warn", "--max-memory", f"{BUDGET}MiB", *KEEP_ALL)
            if peak >= BUDGET:
                fail(f"peak RSS {peak:.0f} MiB into ClickHouse with the derived tables, budget "
                     f"{BUDGET} MiB")
            print(f"ok: {BLOCKS} blocks of {TXS} txs into ClickHouse with the derived tables, "
                  f"budget {BUDGET} MiB, peak RSS {peak:.0f} MiB")
            n = int(ch.sql(f"SELECT sum(_sign) FROM {DB}.chain_metrics_block")[0][0])
            if n != BLOCKS:
                fail(f"chain_metrics_block holds {n} blocks, want {BLOCKS}")
            check(ch)
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
