"""derived=prices on a database whose derived tables already hold rows, in SQLite, PostgreSQL and
ClickHouse (a real Debian clickhouse-server). `python3 test_derived_prices_reopen.py sqlite
postgres clickhouse` (the default: all three) names the outputs to run.

docs/SCHEMA.md "Choosing the derived tables": `derived=prices` writes nothing of a block and
keeps the database's record (as metrics=off), so it may open a database written with every
group. Per output, simnode blocks (5 transactions each):
1. `backfill --from 0 --to 20` with every group (the default);
2. `backfill --from 21 --to 30 --derived prices`: exits 0. Before, PostgreSQL and ClickHouse
   took the record (every group) for the output's selection, looked for rows of blocks the
   metrics module had not computed and failed every batch ("block 21: the batch has no derived
   rows for it");
3. `backfill --from 31 --to 40` with `?derived=prices` in the output's URL beside a SQLite file
   with every group in the same process (so the module computes every block's rows): exits 0,
   and the output under test still writes no row of a block. Before, PostgreSQL and ClickHouse
   wrote them all.
After each: the blocks table holds 0..last, each once, the checkpoint is last, and the derived
tables are as step 1 left them: chain_metrics_block holds blocks 0..20, chain_metrics_1d counts
21 blocks, token_transfers has nothing after block 20. The file beside has rows of blocks
31..40 (the module computed what the output under test left out).
"""

import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin  # noqa: E402
from simnode import Simnode  # noqa: E402

FIRST = 20  # the last block written with every group


class SqliteDb:
    label = "sqlite"

    def __init__(self, path):
        self.path = path

    def url(self, query=""):
        return "sqlite:" + self.path + ("?" + query if query else "")

    def one(self, sql):
        with sqlite3.connect(self.path) as c:
            return tuple(int(v or 0) for v in c.execute(sql).fetchone())


class PgDb:
    label = "postgres"

    def __init__(self, pg):
        self.pg = pg

    def url(self, query=""):
        return self.pg.url(query=query)

    def one(self, sql):
        return tuple(int(v or 0) for v in self.pg.sql(sql)[0])


class ChDb:
    label = "clickhouse"
    final = " FINAL"

    def __init__(self, ch):
        self.ch = ch
        ch.sql("CREATE DATABASE IF NOT EXISTS bp")

    def url(self, query=""):
        return self.ch.url("bp", query=query)

    def one(self, sql):
        return tuple(int(v or 0) for v in self.ch.sql(sql, db="bp")[0])


def backfill(bp, node, frm, to, outputs, *extra):
    cmd = [bp, "backfill", "--rpc", node.urls[0], "--from", str(frm), "--to", str(to),
           "--batch-size", "5", *extra]
    for o in outputs:
        cmd += ["--output", o]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stderr


def check(db, last, label):
    final = getattr(db, "final", "")
    blocks = db.one("SELECT count(*), count(DISTINCT number), max(number) FROM blocks" + final)
    if blocks != (last + 1, last + 1, last):
        raise Fail(f"{db.label}, {label}: blocks (count, distinct, max) {blocks}, want "
                   f"{(last + 1, last + 1, last)}")
    cmb = db.one("SELECT count(DISTINCT block_number), max(block_number) FROM chain_metrics_block")
    days = db.one("SELECT sum(block_count) FROM chain_metrics_1d" + final)
    tt = db.one("SELECT count(*) FROM token_transfers WHERE block_number > %d" % FIRST)
    if cmb != (FIRST + 1, FIRST) or days != (FIRST + 1,) or tt != (0,):
        raise Fail(f"{db.label}, {label}: the derived tables changed: chain_metrics_block "
                   f"(blocks, max) {cmb}, want {(FIRST + 1, FIRST)}; chain_metrics_1d counts "
                   f"{days[0]} blocks, want {FIRST + 1}; token_transfers after block {FIRST}: "
                   f"{tt[0]} rows, want 0")
    print(f"{db.label}, {label}: blocks 0..{last} once each; chain_metrics_block holds blocks "
          f"0..{FIRST}, chain_metrics_1d counts {FIRST + 1}", flush=True)


def scenario(bp, node, db, tmp):
    rc, err = backfill(bp, node, 0, FIRST, [db.url()])
    if rc != 0:
        raise Fail(f"{db.label}: backfill with every group exited {rc}:\n{err[-3000:]}")
    rc, err = backfill(bp, node, FIRST + 1, 30, [db.url()], "--derived", "prices")
    if rc != 0:
        raise Fail(f"{db.label}: backfill --derived prices on a database holding every "
                   f"group's rows exited {rc}:\n{err[-3000:]}")
    check(db, 30, "--derived prices alone")
    beside = os.path.join(tmp, f"beside-{db.label}.db")
    rc, err = backfill(bp, node, 31, 40, [db.url("derived=prices"), "sqlite:" + beside])
    if rc != 0:
        raise Fail(f"{db.label}: backfill with derived=prices beside an output with every "
                   f"group exited {rc}:\n{err[-3000:]}")
    check(db, 40, "derived=prices beside an output with every group")
    with sqlite3.connect(beside) as c:
        got = c.execute("SELECT count(DISTINCT block_number), min(block_number),"
                        " max(block_number) FROM chain_metrics_block").fetchone()
    if tuple(got) != (10, 31, 40):
        raise Fail(f"{db.label}: the file beside holds chain_metrics_block (blocks, min, max) "
                   f"{tuple(got)}, want (10, 31, 40): the module computed no rows to leave out")


def main():
    print(__doc__)
    bp = blockpipe_bin()
    node = Simnode(bp, ["--length", "60", "--block-time", "0", "--txs-per-block", "5"])
    try:
        for name in sys.argv[1:] or ["sqlite", "postgres", "clickhouse"]:
            with tempfile.TemporaryDirectory(prefix=f"bp-prices-reopen-{name}-") as tmp:
                if name == "sqlite":
                    scenario(bp, node, SqliteDb(os.path.join(tmp, "bp.db")), tmp)
                elif name == "postgres":
                    with Postgres() as pg:
                        scenario(bp, node, PgDb(pg), tmp)
                else:
                    with ClickHouse() as ch:
                        scenario(bp, node, ChDb(ch), tmp)
    finally:
        node.stop()
    print("PASS")


if __name__ == "__main__":
    main()
