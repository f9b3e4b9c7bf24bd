"""A PostgreSQL output with a derived= selection stores its lazy windows' sets when something needs
them (src/sink/pg_derived.c bp_pg_derived_unlazy), and what it stores equals the recomputation
from the raw transactions, within its selection.

PostgreSQL keeps an hour's or a day's set (active_addresses, and contract_senders when the
database writes contract_metrics) listed in lazy_set_windows while the metrics module holds the
window whole; whatever needs the rows stores them from the window's raw transactions
(docs/SCHEMA.md). tests/tools/metricscheck.py read_pg counts a listed window's rows from the raw
transactions, so the other tests compare the sum of stored and listed: here the list must be
empty when the rows are compared, so only stored rows are.

anvil (tests/tools/metricsdrive.py's chain: random workload and token events over minutes, hours
and days), one PostgreSQL output with derived=chain_metrics,active_addresses,prices (no
contract_metrics, token_transfers) beside a SQLite file with every group, in one process:
1. a backfill: windows are listed in lazy_set_windows (or the test proves nothing), and the
   selected tables (stored rows plus listed windows) equal the recomputation, the others are
   empty; the SQLite file equals the recomputation whole.
2. a restart with the PostgreSQL output at metrics=off beside the SQLite one (every group), two
   more blocks mined: the output stores every listed window at open (its new blocks get no
   derived rows, so a listed set must not take their senders). lazy_set_windows is empty, and
   the stored active_addresses and the other selected tables equal the recomputation from the
   blocks before the restart; contract_senders is still empty (not selected: the sets are stored
   without the contract pairs); the SQLite file has every block.
`python3 test_derived_select_unlazy.py` (PostgreSQL from tests/tools/pg.py; needs BLOCKPIPE).
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metricscheck import Mismatch  # noqa: E402
from metricsdrive import ORIGIN, Scenario  # noqa: E402
from pg import Postgres  # noqa: E402
from test_derived_select import FOLLOW, check, check_all, mine_and_backfill  # noqa: E402
from test_metrics_pg import PgBackend  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4646"))


def listed(sc):
    return int(sc.be.pg.sql("SELECT count(*) FROM lazy_set_windows")[0][0])


def restart_off(sc, beside, label):
    """`run` with the tested output at metrics=off and the all-groups SQLite beside it, to the
    node's head."""
    cmd = sc.cmd("run", *FOLLOW)
    i = cmd.index("--output") + 1
    cmd[i] += ("&" if "?" in cmd[i] else "?") + "metrics=off"
    sc.follow_to_head(cmd + ["--output", f"sqlite:{beside}"], label)


def scenario(sc):
    label = sc.be.label
    beside = os.path.join(sc.tmp, "all.db")
    head = mine_and_backfill(sc, beside, 30)
    lazy = listed(sc)
    if not lazy:
        raise Mismatch(f"{label}: no window is listed in lazy_set_windows after the backfill: "
                       f"nothing for the test to store")
    print(f"{label}: {lazy} windows listed in lazy_set_windows after the backfill", flush=True)
    check(sc, head + 1, "backfilled (stored rows and listed windows)")
    check_all(sc, beside, head + 1, "backfilled")

    upto = head + 1  # the blocks with derived rows: the ones after the restart have none
    for _ in range(2):
        sc.mine(3)
    restart_off(sc, beside, f"{label}, restarted at metrics=off")
    left = listed(sc)
    if left:
        raise Mismatch(f"{label}: {left} windows still listed in lazy_set_windows after a "
                       f"restart at metrics=off: their sets were not stored")
    stored = int(sc.be.pg.sql("SELECT count(*) FROM active_addresses")[0][0])
    check(sc, upto, f"restarted at metrics=off: {stored} stored active_addresses rows")
    check_all(sc, beside, sc.node.block_number() + 1, "restarted")


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-derived-unlazy-") as tmp:
        with Postgres() as pg:
            sc = Scenario(blockpipe, PgBackend(pg), tmp, SEED)
            try:
                scenario(sc)
            finally:
                sc.close()
    print("PASS")


if __name__ == "__main__":
    main()
