"""--max-memory 100MiB bounds a backfill of 1,000-tx blocks into ClickHouse with the derived
tables on (issue 10/15: a process stays under its budget).

simnode serves BLOCKS blocks of 1,000 transactions one second apart (test_metrics_memory's chain
for SQLite: senders from 4,096 addresses, calls to 256 contracts, so the open hour's and day's
contract_senders sets are too big for the output's 4 MiB share and are held lean). A backfill
into a private ClickHouse server (tests/tools/clickhouse.py) at --max-memory 100MiB must keep
blockpipe's peak resident set (wait4 ru_maxrss of its PID, and VmHWM sampled while it runs)
under 100 MiB. Before the answers of the sets' reads were taken a row at a time and the batch's
encoded INSERT data went out in pieces of at most 2 MiB (both were held whole, uncounted) the
same backfill of 240 blocks reached 117 MiB two thirds through. Then the set-dependent numbers
must equal a recomputation from the raw transactions (test_metrics_memory_clickhouse.check).
Measured on a release build (test_memory_budget.release_binary).
The output's buffers (the encoders' INSERT data, the answers, the derived tables' per-batch
state) must be charged to the budget while they hold more than the output's fixed part of it:
the run's summary says how much at most (before, they were not counted at all, and the summary
had no such line). On these blocks they hold about the fixed part's 8 MiB, sometimes a little
more, so the run sets that part to 1 MiB (BP_CH_KEEP_BYTES, for tests): the charge must show.
Then lean mode alone: BP_CH_SET_BYTES=1 (for tests: the sets' share in bytes) makes every window
of every grain lean (only the members the batch asks about kept, read again by each batch);
a backfill of LEAN_BLOCKS blocks into another database must give the same recomputed numbers.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_budget import backfill, release_binary  # noqa: E402
from test_metrics_memory_clickhouse import KEEP_ALL, check, fail  # noqa: E402

BLOCKS = 60
LEAN_BLOCKS = 20
TXS = 1000
BUDGET = 100  # MiB
DB = "low"


def main():
    bp = release_binary()
    node = Simnode(bp, ["--length", str(BLOCKS), "--txs-per-block", str(TXS), "--block-time",
                        "1"])
    try:
        with ClickHouse() as ch:
            peak, log = backfill(bp, node.urls[0], ch.url(DB), BLOCKS - 1, "--max-memory",
                                 f"{BUDGET}MiB", "--log-level", "info", *KEEP_ALL,
                                 env=dict(os.environ, BP_CH_KEEP_BYTES=str(1 << 20)))
            if peak >= BUDGET:
                fail(f"peak RSS {peak:.0f} MiB into ClickHouse with the derived tables, budget "
                     f"{BUDGET} MiB")
            print(f"ok: {BLOCKS} blocks of {TXS} txs into ClickHouse with the derived tables, "
                  f"budget {BUDGET} MiB, peak RSS {peak:.0f} MiB")
            m = re.search(r"output 'clickhouse://[^']*': its buffers held up to ([0-9.]+) MiB "
                          r"beyond its fixed part of the memory budget, charged to it", log)
            if not m or float(m.group(1)) <= 0:
                fail("the output's buffers were not charged to the memory budget (no summary "
                     f"line saying how much): {log[-2000:]}")
            print(f"ok: the output's buffers held up to {m.group(1)} MiB beyond its fixed part, "
                  "charged to the budget")
            n = int(ch.sql(f"SELECT sum(_sign) FROM {DB}.chain_metrics_block")[0][0])
            if n != BLOCKS:
                fail(f"chain_metrics_block holds {n} blocks, want {BLOCKS}")
            check(ch, DB)
            peak, _ = backfill(bp, node.urls[0], ch.url("lean"), LEAN_BLOCKS - 1, "--log-level",
                               "warn", *KEEP_ALL, env=dict(os.environ, BP_CH_SET_BYTES="1"))
            print(f"ok: lean mode, {LEAN_BLOCKS} blocks, peak RSS {peak:.0f} MiB")
            check(ch, "lean")
    finally:
        node.kill()


if __name__ == "__main__":
    main()
