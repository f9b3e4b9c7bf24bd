"""--output-failure continue: a failing output is set aside, the others go on, and the next
start catches it up.

`run` follows anvil into SQLite and PostgreSQL with --output-failure continue. PostgreSQL is
killed mid-run while blocks keep coming: blockpipe must say the output is set aside, keep
running and keep SQLite exact up to the head. After SIGINT (exit 0) PostgreSQL comes back
and a second `run` must bring it to the head, exactly the node's chain, while SQLite (ahead)
skips what it has. With the default (--output-failure stop) the same failure stops the run
with exit 1 and an error naming the output, and SQLite stays consistent.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from pg import Postgres  # noqa: E402
import pgcheck  # noqa: E402

HANG = 120  # seconds: only a guard against a hang, never a measure


def sqlite_cp(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        row = c.execute("SELECT number FROM checkpoints").fetchone()
        c.close()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def sqlite_exact(node, db, head):
    c = sqlite3.connect(db)
    rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
    c.close()
    want = [(n, node.block(n, False)["hash"]) for n in range(head + 1)]
    if rows != want:
        raise AssertionError(f"SQLite holds {len(rows)} blocks, want exactly 0..{head}")


def start(bp, node, pg, db, log, mode):
    return subprocess.Popen([bp, "run", "--rpc", node.url, "--start-block", "0", "--output",
                             f"sqlite:{db}", "--output", pg.url(), "--output-failure", mode,
                             "--wait-for-db", "1", "--poll-interval", "0.2",
                             "--stats-interval", "0.5"], stderr=log)


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-of-") as tmp:
        wl = Workload(node, seed=13)
        wl.setup()
        for _ in range(5):
            wl.mine_batch(2)
        db, log_path = os.path.join(tmp, "bp.db"), os.path.join(tmp, "stderr.log")
        log = open(log_path, "w")
        proc = start(bp, node, pg, db, log, "continue")
        try:
            head = node.block_number()
            wait_until(lambda: pgcheck.checkpoint(pg) and pgcheck.checkpoint(pg)[0] == head,
                       60, "PostgreSQL to reach the head")
            pg.kill()
            for _ in range(8):
                wl.mine_batch(2)
                time.sleep(0.2)
            head = node.block_number()
            wait_until(lambda: sqlite_cp(db) == head, 60, f"SQLite to reach {head} without "
                       "PostgreSQL")
            if proc.poll() is not None:
                raise AssertionError(f"blockpipe stopped (exit {proc.returncode}) although "
                                     "--output-failure continue")
            wait_until(lambda: "outputs_set_aside=1" in open(log_path).read(), HANG,
                       "the stats line to report the output set aside")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = open(log_path).read()
        if rc != 0:
            raise AssertionError(f"exit {rc} after SIGINT\n{text[-2000:]}")
        if "this output is set aside (--output-failure continue) at its checkpoint" not in text:
            raise AssertionError(f"no clear message about the failed output:\n{text[-2000:]}")
        sqlite_exact(node, db, head)
        print(f"part 1: PostgreSQL killed, set aside; SQLite exact up to {head}; exit 0")

        pg.start()
        log2_path = os.path.join(tmp, "stderr2.log")
        log2 = open(log2_path, "w")
        proc = start(bp, node, pg, db, log2, "continue")
        try:
            try:
                wait_until(lambda: pgcheck.checkpoint(pg) and pgcheck.checkpoint(pg)[0] == head,
                           60, "PostgreSQL to catch up after the restart")
            except TimeoutError as e:
                raise AssertionError(f"{e}\n{open(log2_path).read()[-3000:]}")
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        chain = pgcheck.node_chain(node, head)
        pgcheck.check_chain(pg, chain, "after catch-up")
        sqlite_exact(node, db, head)
        print(f"part 2: restart caught PostgreSQL up to {head}, exact; SQLite unchanged")

        log3_path = os.path.join(tmp, "stderr3.log")
        log3 = open(log3_path, "w")
        proc = start(bp, node, pg, db, log3, "stop")
        try:
            # running with both outputs open (its first stats line) before the server dies
            wait_until(lambda: proc.poll() is not None or "stats head=" in open(log3_path).read(),
                       HANG, "the third run's first stats line")
            pg.kill()
            wl.mine_batch(2)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = open(log3_path).read()
        if rc != 1 or "output 'postgres://" not in text:
            raise AssertionError(f"--output-failure stop: exit {rc}, want 1 with the output "
                                 f"named:\n{text[-2000:]}")
        c = sqlite3.connect(db)
        n, distinct = c.execute("SELECT COUNT(*), COUNT(DISTINCT number) FROM blocks").fetchone()
        cp = c.execute("SELECT number FROM checkpoints").fetchone()[0]
        c.close()
        if n != distinct or cp != n - 1:
            raise AssertionError(f"SQLite inconsistent after the stop: {n} rows, cp {cp}")
        print("part 3: default stop: exit 1 naming the output; SQLite consistent")


if __name__ == "__main__":
    main()
