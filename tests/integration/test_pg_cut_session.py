"""What a PostgreSQL call the watchdog cut (`timeout=`, src/sink/pg_conn.c) leaves on the server,
against a real PostgreSQL and simnode blocks. `python3 test_pg_cut_session.py former stuck
open watchdog` (the default: all four) names the parts to run.

A cut closes our end only: the server's session goes on with its statement (waiting for a lock,
building an index) and keeps what it holds, the chain's writer lock (an advisory lock of the
session) too, until the statement ends or the server notices the connection is gone.

1. Our former session holds the writer lock. A psql session holds `LOCK TABLE blocks` (ACCESS
   EXCLUSIVE) while `backfill --from 6 --to 40` writes with timeout=2: the first COPY into
   blocks waits, the watchdog cuts it after 2 s, blockpipe reconnects and finds its own former
   session, still waiting for the table, holding the writer lock. It ends that session
   (pg_terminate_backend: the backend's pid and start name it) and takes the lock again; the
   test then lets the table go and the backfill completes: exit 0, blocks 0..40 each once,
   checkpoint 40. Before, libpq's PQbackendPID said 0 for the cut connection, the session was
   not recognised as ours and the backfill exited 1 naming its own backend as "another" writer.
2. The former session that will not go. The same, in a schema of its own, but the test stops
   (SIGSTOP) blockpipe's backend while it waits for the table, so that it cannot end when
   told to: the backfill says the writer lock is held by this process's own former session,
   naming its backend and what to do (`SELECT pg_terminate_backend(PID)`), and exits 1;
   before, it named its own backend as another writer holding the chain.
3. Opening waits under the watchdog too. The psql session holds `LOCK TABLE
   chain_metrics_block` while a backfill with timeout=2 opens the output: reading its
   derived_groups record waits for the table; the backfill exits 1 while the lock is still
   held, its error naming the server and "no answer within 2 s (timeout=2)". Before, that read
   was outside the watchdog and the backfill waited as long as the lock was held.
4. The watchdog cuts nothing but the overrun call's connection: tests/tools/pg_watchdog.c
   (cmocka) against this server (a descriptor number libpq closed inside the call and the kernel gave
   to another file is not shut down; a call that ended in time is not cut).
"""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import PASSWORD, USER, Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, checkpoint, kill_running, tail, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402

LAST = 40
HOLD = 600  # seconds the psql session would hold its lock: the test ends it long before
HANG = 120  # seconds: only a guard against a hang, never a measure


class TableLock:
    """A psql session holding `LOCK TABLE table` (ACCESS EXCLUSIVE) until release()."""

    def __init__(self, pg, table):
        self.pg, self.table = pg, table
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        self.p = subprocess.Popen(
            [os.path.join(pg.bin, "psql"), "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
             USER, "bp", "-c", f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; "
             f"SELECT pg_sleep({HOLD}); COMMIT;"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_for(self.held, 60, f"psql's lock on {table}")

    def held(self):
        rows = self.pg.sql(f"SELECT count(*) FROM pg_locks WHERE relation = '{self.table}'"
                           "::regclass AND mode = 'AccessExclusiveLock' AND granted")
        return rows[0][0] == "1"

    def release(self):
        self.pg.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE "
                    f"'%pg_sleep({HOLD})%' AND pid <> pg_backend_pid()")
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def backfill(bp, node, url, frm, log):
    return subprocess.Popen([bp, "backfill", "--rpc", node.urls[0], "--from", str(frm), "--to",
                             str(LAST), "--batch-size", "5", "--output", url, "--wait-for-db",
                             "10"], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def former_session(bp, node, pg, tmp):
    lock = TableLock(pg, "blocks")
    path = os.path.join(tmp, "former.log")
    ended = "ended it, and took the lock again"
    try:
        with open(path, "w") as log:
            p = backfill(bp, node, pg.url(query="timeout=2"), 6, log)
            try:
                wait_for(lambda: p.poll() is not None or ended in read(path), HANG,
                         "the former session ended")
                if p.poll() is not None:
                    raise Fail(f"1: the backfill exited {p.returncode} before it ended its "
                               f"former session:\n{tail(path)}")
                line = next(ln for ln in read(path).splitlines() if ended in ln)
                print(f"1: {line[24:].strip()[:300]}", flush=True)
                lock.release()
                rc = p.wait(HANG)
            finally:
                kill_running(p)
    finally:
        lock.release()
    if rc != 0:
        raise Fail(f"1: the backfill exited {rc} after the table was let go:\n{tail(path)}")
    rows = pg.sql("SELECT count(*), count(DISTINCT number), max(number) FROM blocks")[0]
    cp = (checkpoint(pg) or (None,))[0]
    if [int(v) for v in rows] != [LAST + 1, LAST + 1, LAST] or cp != LAST:
        raise Fail(f"1: blocks (count, distinct, max) {rows}, checkpoint {cp}; want "
                   f"{LAST + 1}, {LAST + 1}, {LAST} and {LAST}:\n{tail(path)}")
    print(f"1: the backfill completed: blocks 0..{LAST} once each, checkpoint {cp}", flush=True)


def waiting_backend(pg, table):
    """The pid of the blockpipe session waiting for a lock on table, or 0."""
    rows = pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'blockpipe%'"
                  " AND wait_event_type = 'Lock' AND pid IN (SELECT pid FROM pg_locks WHERE"
                  f" relation = '{table}'::regclass AND NOT granted)")
    return int(rows[0][0]) if rows else 0


def stuck_session(bp, node, pg, tmp):
    url = pg.url(query="schema=stuck&timeout=2")
    out = subprocess.run([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "5",
                          "--output", url], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=HANG)
    if out.returncode != 0:
        raise Fail(f"2: the first backfill exited {out.returncode}:\n{out.stderr[-3000:]}")
    lock = TableLock(pg, "stuck.blocks")
    path = os.path.join(tmp, "stuck.log")
    stopped = []
    try:
        with open(path, "w") as log:
            p = backfill(bp, node, url, 6, log)
            try:
                wait_for(lambda: p.poll() is not None or waiting_backend(pg, "stuck.blocks"),
                         HANG, "blockpipe's session waiting for stuck.blocks")
                pid = waiting_backend(pg, "stuck.blocks")
                if pid:
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
                rc = p.wait(HANG)
            finally:
                kill_running(p)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        lock.release()
    text = read(path)
    pid = stopped[0] if stopped else "?"
    says = [f"its writer lock is still held by this process's former session (PostgreSQL "
            f"backend {pid})", f"(SELECT pg_terminate_backend({pid}))"]
    if not stopped or rc != 1 or not all(w in text for w in says):
        raise Fail(f"2: the backfill exited {rc} (backend stopped: {stopped}), want 1 with "
                   f"{says}:\n{tail(path)}")
    line = next(ln for ln in text.splitlines() if "error" in ln and says[0] in ln)
    print(f"2: exited 1: {line[24:].strip()[:400]}", flush=True)


def open_watched(bp, node, pg, tmp):
    lock = TableLock(pg, "chain_metrics_block")
    path = os.path.join(tmp, "open.log")
    try:
        with open(path, "w") as log:
            p = backfill(bp, node, pg.url(query="timeout=2&checkpoint=other"), 0, log)
            try:
                rc = p.wait(HANG)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise Fail(f"3: the backfill still waited after {HANG} s:\n{tail(path)}") from None
        still = lock.held()
    finally:
        lock.release()
    text = read(path)
    where = f"127.0.0.1:{pg.port}/bp: reading derived_groups: no answer within 2 s (timeout=2)"
    if rc != 1 or where not in text or not still:
        raise Fail(f"3: the backfill exited {rc} (the lock still held: {still}), want 1 with "
                   f"{where!r} while the lock is held:\n{tail(path)}")
    line = next(ln for ln in text.splitlines() if where in ln)
    print(f"3: exited 1 while the lock was held: {line[24:].strip()[:300]}", flush=True)


def watchdog_unit(pg):
    exe = os.environ["BP_PG_WATCHDOG"]  # tests/tools/pg_watchdog.c
    target = pg.url().split("://", 1)[1]
    p = subprocess.run([exe], env=dict(os.environ, BP_PG_TARGET=target),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=HANG)
    if p.returncode != 0:
        raise Fail(f"4: tests/tools/pg_watchdog exited {p.returncode}:\n{p.stdout}{p.stderr}")
    print("4: tests/tools/pg_watchdog passed against the server", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    node = Simnode(bp, ["--length", str(LAST + 2), "--block-time", "0", "--txs-per-block", "3"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-pg-cut-") as tmp, Postgres() as pg:
            out = subprocess.run([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to",
                                  "5", "--output", pg.url()], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=HANG)
            if out.returncode != 0:
                raise Fail(f"the first backfill exited {out.returncode}:\n{out.stderr[-3000:]}")
            parts = {"former": lambda: former_session(bp, node, pg, tmp),
                     "stuck": lambda: stuck_session(bp, node, pg, tmp),
                     "open": lambda: open_watched(bp, node, pg, tmp),
                     "watchdog": lambda: watchdog_unit(pg)}
            for name in sys.argv[1:] or list(parts):
                parts[name]()
    finally:
        node.stop()
    print("PASS")


if __name__ == "__main__":
    main()
