"""A REVERT into hour and day windows whose address sets the metrics module gave up for memory
keeps every set-dependent number exact, in SQLite and in PostgreSQL.

simnode serves 70 blocks of 1,000 transactions one second apart whose senders do not run out
(--senders 100000000 --zipf 1, as bench/metrics_bench.py's set case): with the sets' share
at 1 MiB (BP_SETS_BYTES, for tests; at the default, 6 MiB, the hour alone outgrows it after
about 70 blocks now that the day does not hold the hour's members too) the day's and the
hour's sets outgrow their bound within the first minute, so
the module gives them up and the outputs fall back to their own tables for them until the
next hour or day (docs/ARCHITECTURE.md, "The open windows"). One `blockpipe run
--confirmations 0` writes both outputs, follows the head, and then simnode_fork replaces the
last 3 blocks: the same process REVERTs them inside the given-up hour and day (most of their
senders sent nowhere else in the window, so the windows' counts must fall) and applies the new
fork. After it, in each output, every hour's and day's active_addresses and every contract
window's txcount and unique_senders must equal a recomputation from the raw transactions the
same database holds (SQLite: test_metrics_memory.check, which also checks the rows of the sets
SQLite stored, with their first block), and PostgreSQL's numbers must equal SQLite's. The release binary runs it (tests
test_memory_budget.release_binary): 70,000 transactions under ASan are slow to no purpose.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_budget import release_binary  # noqa: E402
from test_metrics_memory import KEEP_ALL, check, fail, pg_equals_sqlite  # noqa: E402

BLOCKS = 70
TXS = 1000
DEPTH = 3
POPULATION = ["--senders", "100000000", "--contracts", "100000", "--zipf", "1"]
TIMEOUT = 300


def sqlite_head(path):
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return tuple(db.execute("SELECT number, hash FROM checkpoints").fetchone() or ())
        finally:
            db.close()
    except sqlite3.Error:
        return ()


def pg_head(pg):
    try:
        rows = pg.sql("SELECT number, hash FROM checkpoints")
    except Exception:  # noqa: BLE001 - not created yet
        return ()
    return (int(rows[0][0]), "0x" + rows[0][1].removeprefix("\\x")) if rows else ()


def wait_for(what, ok, proc, err_path):
    end = time.monotonic() + TIMEOUT
    while not ok():
        if proc.poll() is not None:
            fail(f"blockpipe run exited {proc.returncode} waiting for {what}:\n{tail(err_path)}")
        if time.monotonic() > end:
            fail(f"timed out waiting for {what}:\n{tail(err_path)}")
        time.sleep(0.2)


def tail(path, n=4000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def main():
    bp = release_binary()
    node = Simnode(bp, ["--length", str(BLOCKS), "--txs-per-block", str(TXS), "--block-time",
                        "0", *POPULATION])
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="bp-setrevert-") as tmp, Postgres() as pg:
            path = os.path.join(tmp, "m.db")
            err_path = os.path.join(tmp, "stderr.txt")
            with open(err_path, "w") as err:
                proc = subprocess.Popen(
                    [bp, "run", "--rpc", node.urls[0], "--output", f"sqlite:{path}", "--output",
                     pg.url(), "--start-block", "0", "--confirmations", "0", "--poll-interval", "0.2",
                     "--rpc-timeout", "120", "--log-level", "info", *KEEP_ALL],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    env=dict(os.environ, BP_SETS_BYTES=str(1 << 20)))
            head = node.rpc_batch([("eth_getBlockByNumber", [hex(BLOCKS - 1), False])])[0]
            want = (BLOCKS - 1, head["hash"])
            wait_for("the head", lambda: sqlite_head(path) == want and pg_head(pg) == want,
                     proc, err_path)
            log = tail(err_path, 1 << 20)
            for g in ("1d", "1h"):
                if f"open {g} window at" not in log:
                    fail(f"the {g} window was not given up for memory:\n{log[-3000:]}")
            print("ok: the hour's and the day's sets were given up for memory")
            fork = node.control("simnode_fork", DEPTH)
            want = (BLOCKS - 1, fork["hashes"][-1])
            wait_for("the fork's head", lambda: sqlite_head(path) == want and pg_head(pg) == want,
                     proc, err_path)
            proc.send_signal(signal.SIGINT)
            if proc.wait(60) != 0:
                fail(f"blockpipe run exited {proc.returncode} on SIGINT:\n{tail(err_path)}")
            log = tail(err_path, 1 << 20)
            if "revert" not in log.lower():
                print("note: the log names no REVERT (the checkpoint's hash says the fork was "
                      "written)")
            print(f"ok: both outputs followed simnode_fork({DEPTH}) to {want}")
            db = sqlite3.connect(path)
            try:
                check(db)  # (a given-up window's set is stored in SQLite: rows to check)
                pg_equals_sqlite(pg, db)
            finally:
                db.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()
    print("PASS")


if __name__ == "__main__":
    main()
