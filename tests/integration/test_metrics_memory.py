"""--max-memory bounds a backfill with the derived tables on (the default), and they stay exact
when the metrics module gives its open windows' address sets up for memory.

simnode serves 240 blocks of 1,000 transactions one second apart (senders drawn from 4,096
addresses, calls from 256 contracts: about 200,000 distinct (contract, sender) pairs in the
open hour and day). A backfill into SQLite with --max-memory 100MiB must keep its peak
resident set (wait4 ru_maxrss and VmHWM sampled while it runs) under 100 MiB; before the
derived data was charged to the budget the same run peaked at 250 MiB with 112 MiB (the open
windows' sets, the batch's derived rows and SQLite's larger page cache were not counted).
The sets fit their share of that budget (an eighth of what the fixed part leaves: 3.5 of 7
MiB, the day holding only its closed hours' members), so the share is set to 2 MiB
(BP_SETS_BYTES, for tests): the log must say a window was given up, and then every
set-dependent number must still equal a recomputation from the raw transactions the same
database holds: the 1h and 1d windows' active_addresses, every contract window's
unique_senders, and the active_addresses / contract_senders rows of the windows SQLite stored
(those given up, at least one: each address with the lowest block of the window it sent in).
Measured on a release build (test_memory_budget.release_binary: ASan's shadow memory would be
what is measured).

The same chain into PostgreSQL at the default budget and the same share, where the sets are
given up too: within
a run of blocks, a (window, contract) then had a count of the rows known to be new and one of
the staged rows inserted, the contract window was joined to both and the backfill stopped
(SQLSTATE 21000, at blocks 191..193); its set-dependent numbers must equal SQLite's, checked
above.
"""

import os
import re
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_budget import backfill, release_binary  # noqa: E402

BLOCKS = 240
TXS = 1000
BUDGET = 100
# the sets' share in bytes (src/core/pipeline.c): the sets of this chain fit the default one
SMALL_SETS = dict(os.environ, BP_SETS_BYTES=str(2 << 20))
KEEP_ALL = ["--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
            "--retention-1h", "0"]
CONTRACT_OF = ("CASE WHEN to_address IS NULL THEN receipt_contract_address"
               " WHEN input IS NOT NULL AND input <> '0x' THEN to_address END")


def fail(msg):
    raise AssertionError(msg)


def same(db, what, got_sql, want_sql, stored_only=False):
    """stored_only: the windows (first column) of the stored rows only."""
    got = sorted(db.execute(got_sql).fetchall())
    want = sorted(db.execute(want_sql).fetchall())
    if stored_only:
        windows = {g[0] for g in got}
        want = [r for r in want if r[0] in windows]
        if not got:
            print(f"ok: {what}: none stored (the window was seen whole)")
            return
    if not want:
        fail(f"{what}: the recomputation is empty")
    if got != want:
        diff = sorted(set(got) ^ set(want))[:5]
        fail(f"{what}: {len(got)} rows stored, {len(want)} recomputed; first differences {diff}")
    print(f"ok: {what} ({len(got)} rows) equal the recomputation from the raw transactions")


def check(db):
    """The set-dependent derived numbers against the raw transactions. SQLite stores the set
    rows of a window only when a count needs them (docs/SCHEMA.md): those of a window given up
    for memory, which must then be its whole set."""
    if not db.execute("SELECT count(*) FROM active_addresses").fetchone()[0]:
        fail("no window's set was stored, though one was given up for memory")
    txs = ("SELECT t.block_number AS b, c.block_timestamp AS ts, t.from_address AS a, "
           f"{CONTRACT_OF} AS k FROM transactions t JOIN chain_metrics_block c "
           "ON c.block_number = t.block_number")
    for grain, secs in (("1h", 3600), ("1d", 86400)):
        win = f"(ts - ts % {secs})"
        same(db, f"active_addresses rows of {grain}",
             f"SELECT window_start, address, first_block FROM active_addresses "
             f"WHERE grain = '{grain}'",
             f"SELECT {win}, a, min(b) FROM ({txs}) GROUP BY 1, 2", stored_only=True)
        same(db, f"contract_senders rows of {grain}",
             f"SELECT window_start, contract_address, address, first_block FROM contract_senders"
             f" WHERE grain = '{grain}'",
             f"SELECT {win}, k, a, min(b) FROM ({txs}) WHERE k IS NOT NULL GROUP BY 1, 2, 3",
             stored_only=True)
        same(db, f"chain_metrics_{grain}.active_addresses",
             f"SELECT window_start, active_addresses FROM chain_metrics_{grain}",
             f"SELECT {win}, count(DISTINCT a) FROM ({txs}) GROUP BY 1")
    for grain, secs in (("1m", 60), ("1h", 3600), ("1d", 86400)):
        win = f"(ts - ts % {secs})"
        same(db, f"contract_metrics_{grain} txcount and unique_senders",
             f"SELECT window_start, contract_address, txcount, unique_senders "
             f"FROM contract_metrics_{grain}",
             f"SELECT {win}, k, count(*), count(DISTINCT a) FROM ({txs}) WHERE k IS NOT NULL "
             "GROUP BY 1, 2")


# The set-dependent numbers, as (window, [contract,] value...) text rows, from either database.
SET_NUMBERS = [f"SELECT window_start, active_addresses FROM chain_metrics_{g}"
               for g in ("1h", "1d")]
SET_NUMBERS += [f"SELECT window_start, lower(CONTRACT), txcount, unique_senders FROM "
                f"contract_metrics_{g}" for g in ("1m", "1h", "1d")]


def check_sets_account(log):
    """The module's account of its sets at the end (bp_metrics_log_sets): never above their
    bound after a block, and as many windows given up as the log said one by one."""
    m = re.search(r"held at most (\d+) bytes \(bound (\d+)\): (\d+) interned addresses in "
                  r"(\d+) bytes, (\d+) members .* (\d+) windows given up", log)
    if not m:
        fail(f"no account of the address sets at the end: {log[-2000:]}")
    held, bound, ids, id_bytes, members, dropped = map(int, m.groups())
    if not 0 < held <= bound or not 0 < id_bytes < held or ids <= 0 or members <= 0:
        fail(f"the sets' account is not consistent: {m.group(0)}")
    if dropped != log.count("outgrew the"):
        fail(f"{dropped} windows given up by the account, {log.count('outgrew the')} in the log")
    print(f"ok: sets held at most {held} of {bound} bytes: {members} members, {ids} addresses")


def pg_same_as_sqlite(bp, url, db):
    """The chain into PostgreSQL at the default budget: the same numbers as SQLite's."""
    with Postgres() as pg:
        _, log = backfill(bp, url, pg.url(), BLOCKS - 1, "--log-level", "info", *KEEP_ALL,
                          env=SMALL_SETS)
        if "outgrew the" not in log:
            fail(f"PostgreSQL: no open window was given up for memory: {log[-2000:]}")
        pg_equals_sqlite(pg, db)


def pg_equals_sqlite(pg, db):
    """PostgreSQL's set-dependent numbers (SET_NUMBERS) equal those of the SQLite file db."""
    for q in SET_NUMBERS:
        got = sorted(tuple(r) for r in pg.sql(
            q.replace("CONTRACT", "'0x' || encode(contract_address, 'hex')")))
        want = sorted(tuple(str(v) for v in r)
                      for r in db.execute(q.replace("CONTRACT", "contract_address")))
        if got != want:
            fail(f"PostgreSQL {q}: {len(got)} rows, SQLite {len(want)}; first differences "
                 f"{sorted(set(got) ^ set(want))[:5]}")
        print(f"ok: PostgreSQL equals SQLite: {q} ({len(got)} rows)")


def main():
    bp = release_binary()
    node = Simnode(bp, ["--length", str(BLOCKS), "--txs-per-block", str(TXS), "--block-time",
                        "0"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-metrics-mem-") as tmp:
            path = os.path.join(tmp, "m.db")
            peak, log = backfill(bp, node.urls[0], f"sqlite:{path}", BLOCKS - 1, "--max-memory",
                                 f"{BUDGET}MiB", "--log-level", "info", *KEEP_ALL,
                                 env=SMALL_SETS)
            if peak >= BUDGET:
                fail(f"peak RSS {peak:.0f} MiB with the derived tables and a budget of "
                     f"{BUDGET} MiB")
            print(f"ok: {BLOCKS} blocks of {TXS} txs with the derived tables, budget {BUDGET} "
                  f"MiB, peak RSS {peak:.0f} MiB")
            if "outgrew the" not in log:
                fail(f"no open window was given up for memory: {log[-2000:]}")
            print("ok: " + next(line for line in log.splitlines() if "outgrew the" in line))
            check_sets_account(log)
            db = sqlite3.connect(path)
            try:
                n = db.execute("SELECT count(*) FROM chain_metrics_block").fetchone()[0]
                if n != BLOCKS:
                    fail(f"chain_metrics_block holds {n} rows, want {BLOCKS}")
                check(db)
                pg_same_as_sqlite(bp, node.urls[0], db)
            finally:
                db.close()
    finally:
        node.kill()


if __name__ == "__main__":
    main()
