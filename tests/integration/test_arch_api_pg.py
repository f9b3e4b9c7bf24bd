"""/api/arch/... over PostgreSQL answer what they answer over SQLite (docs/API.md "Arch Network"):
hashes are bytea there (read back as the same bare hex), rolled_back a boolean, JSON columns
jsonb (compared parsed), received_at a double (the same value back to the microsecond the
PostgreSQL writer keeps, so the events' cursors page the same).

One run follows simnode --chain-type arch (a block every 0.2 s, 1-6 transactions) with --ws
into SQLite and PostgreSQL (tests/tools/pg.py) at once; once both hold block 40 the test rolls
back a committed block, re-applies it and rolls it back again (simnode's control methods), each
waited for in both outputs, and stops the run (SIGINT). `blockpipe serve` then serves each
database; every list endpoint (both orders, paged by cursor, page sizes 1 and 13), its filters
(rolled_back, account, transaction, topic) and the single-row endpoints must answer the same
JSON from both, with rows in every table and some transactions rolled back.
Stdlib only; needs BLOCKPIPE and a PostgreSQL server (tests/tools/pg.py).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from apiclient import API_ANY, Api, api_port, log_size, wait_http  # noqa: E402
from pg import Postgres  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_arch_api import pages  # noqa: E402
import test_arch_ws as ws  # noqa: E402

HANG = 90


def fail(msg):
    raise AssertionError(msg)


def sqlite_count(db, sql):
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        con.close()


def checkpoint(db):
    """The SQLite output's checkpoint height, or None."""
    if not os.path.exists(db):
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT number FROM checkpoints WHERE chain = 'arch'").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def pg_checkpoint(pg):
    try:
        rows = pg.sql("SELECT number FROM checkpoints WHERE chain = 'arch'")
    except RuntimeError:
        return None  # the schema is not there yet
    return int(rows[0][0]) if rows else None


def serve(bp, out, log):
    log.flush()
    start = log_size(log.name)  # the log may hold another process's lines
    proc = subprocess.Popen([bp, "serve", "--output", out, "--api", API_ANY, "--api-rate-limit",
                             "0"], stdout=log, stderr=subprocess.STDOUT)
    port = api_port(log.name, HANG, proc, start)
    wait_http(port, HANG, proc)
    return proc, Api(port)


def micros(row):
    """PostgreSQL's writer stores received_at to the microsecond (sink/pg_arch.c), SQLite the
    double as received."""
    if "received_at" in row:
        row["received_at"] = round(row["received_at"], 6)
    return row


def same(apis, path, limit):
    got = [[micros(r) for r in pages(a, path, limit)] for a in apis]
    if got[0] != got[1]:
        diff = [(x, y) for x, y in zip(*got) if x != y][:2]
        fail(f"{path} (pages of {limit}): SQLite {len(got[0])} rows, PostgreSQL {len(got[1])}: "
             f"{diff}")
    return got[0]


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "30",
                        "--txs-per-block", "1-6", "--seed", "5"])
    procs = []
    try:
        with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-arch-apipg-") as tmp:
            db = os.path.join(tmp, "a.db")
            log = open(os.path.join(tmp, "bp.log"), "w")
            url = node.urls[0]
            run = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--ws",
                                    "ws://" + url.split("://", 1)[1], "--output", f"sqlite:{db}",
                                    "--output", pg.url(), "--start-block", "0",
                                    "--poll-interval", "0.2"], stdout=log, stderr=subprocess.STDOUT)
            procs.append(run)

            def stored(txids, back):
                """Every one of txids stored with rolled_back = back in both outputs."""
                ids = ",".join(f"'{t}'" for t in txids)
                lite = sqlite_count(db, "SELECT count(*) FROM arch_transactions WHERE "
                                    f"rolled_back = {int(back)} AND txid IN ({ids})")
                pgids = ",".join(f"'\\x{t}'" for t in txids)
                n = pg.sql(f"SELECT count(*) FROM arch_transactions WHERE rolled_back = "
                           f"{'true' if back else 'false'} AND txid IN ({pgids})")
                return lite == len(txids) and int(n[0][0]) == len(txids)

            def committed():
                """The height both outputs committed (0 before both have a checkpoint)."""
                return min(checkpoint(db) or 0, pg_checkpoint(pg) or 0)

            # past block 40 in both (the filters below read 10..40 and block 35)
            ws.wait_for("the run past block 40 in SQLite and PostgreSQL",
                        lambda: committed() > 40, run)
            # a rollback of a committed block, its re-apply and a rollback again (the events
            # of both kinds in the tables), each waited for in both outputs; then stopped
            r = ws.episode_pair(node, committed(), stored, run, "the run")
            print(f"block {r['block_height']}: rolled back, re-applied and rolled back again, "
                  "each stored in SQLite and PostgreSQL", flush=True)
            run.send_signal(signal.SIGINT)
            if run.wait(timeout=HANG) != 0:
                fail(f"the run exited {run.returncode}")
            apis = []
            for out in (f"sqlite:{db}", pg.url()):
                proc, api = serve(bp, out, log)
                procs.append(proc)
                apis.append(api)
            counts = {}
            for path in ("/api/arch/blocks", "/api/arch/transactions", "/api/arch/account_updates",
                         "/api/arch/events"):
                for order in ("asc", "desc"):
                    for limit in (1, 13) if path != "/api/arch/events" else (13,):
                        rows = same(apis, f"{path}?order={order}", limit)
                counts[path] = len(rows)
                if not rows:
                    fail(f"{path}: no rows")
            back = same(apis, "/api/arch/transactions?rolled_back=true", 5)
            same(apis, "/api/arch/transactions?rolled_back=false&from_block=10&to_block=40", 9)
            accts = pages(apis[0], "/api/arch/account_updates?block=35", 100)
            same(apis, f"/api/arch/account_updates?account={accts[0]['account']}", 3)
            same(apis, f"/api/arch/account_updates?transaction={accts[0]['txid']}", 3)
            for topic in ("rolledback_transactions", "reapplied_transactions", "block"):
                same(apis, f"/api/arch/events?topic={topic}&order=asc", 4)
            blocks = pages(apis[0], "/api/arch/blocks?block=35", 1)
            for path in ("/api/arch/blocks/latest", "/api/arch/blocks/35",
                         f"/api/arch/blocks/{blocks[0]['hash']}",
                         f"/api/arch/transactions/{accts[0]['txid']}"):
                a, b = (x.get(path) for x in apis)
                if a[0] != 200 or a[0] != b[0] or a[2] != b[2]:
                    fail(f"{path}: SQLite {a[0]} {a[2]}, PostgreSQL {b[0]} {b[2]}")
            if not back:
                fail("no transaction rolled back: the episodes did not reach the tables")
            print(f"the same answers from SQLite and PostgreSQL: {counts}, {len(back)} rolled "
                  f"back", flush=True)
            for p in procs[1:]:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=HANG)
            log.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        node.kill()
    print("OK")


if __name__ == "__main__":
    main()
