"""outage.py - what the outputs' outage tests share: `blockpipe run` into SQLite and one more
output, a block mined every ~0.25 s from the test's own loop, and SQLite's checkpoint.
stdlib only.

    run = Run(bp, node, db, log_path, "continue", other_url, ["--wait-for-db", "1"])
    miner = Miner(workload)
    miner.until(lambda: run.has("set aside"), run, "2: set aside")   # mining meanwhile
    run.stop("2")                                                     # SIGINT, exit 0
"""

import signal
import sqlite3
import subprocess
import time

from pgcheck import Fail, tail

HANG = 90  # seconds: a guard against a hang, never a measure


def sqlite_cp(db):
    """The number of SQLite's checkpoint row, None when none (or not readable yet)."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        row = c.execute("SELECT number FROM checkpoints").fetchone()
        c.close()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def sqlite_exact(db, chain, label):
    """SQLite holds exactly the blocks of chain (pgcheck.node_chain)."""
    c = sqlite3.connect(db)
    rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
    c.close()
    if rows != [(n, b["hash"]) for n, b in enumerate(chain)]:
        raise Fail(f"{label}: SQLite does not hold exactly blocks 0..{len(chain) - 1}")


class Run:
    """blockpipe run from block 0 into sqlite:DB and url, --output-failure mode."""

    def __init__(self, bp, node, db, log_path, mode, url, extra=()):
        self.log_path = log_path
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(
            [bp, "run", "--rpc", node.url, "--start-block", "0", "--output", f"sqlite:{db}",
             "--output", url, "--output-failure", mode, "--poll-interval", "0.2",
             "--stats-interval", "0.5", *extra],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def alive(self, label):
        if self.proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {self.proc.returncode}:\n{tail(self.log_path)}")

    def has(self, text):
        with open(self.log_path, errors="replace") as f:
            return text in f.read()

    def stop(self, label):
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(HANG)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail(f"{label}: no exit within {HANG} s of SIGINT") from None
        self.log.close()
        if rc != 0:
            raise Fail(f"{label}: exit {rc} after SIGINT:\n{tail(self.log_path)}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Miner:
    """A block every ~0.25 s, mined from the test's own loop (Workload is not thread-safe)."""

    def __init__(self, wl):
        self.wl, self.next = wl, 0.0

    def tick(self):
        if time.monotonic() >= self.next:
            self.wl.mine_batch(self.wl.rng.randrange(0, 4))
            self.next = time.monotonic() + 0.25

    def until(self, pred, run, label, timeout=HANG):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.tick()
            run.alive(label)
            if pred():
                return
            time.sleep(0.05)
        raise Fail(f"{label}: timed out after {timeout} s\n{tail(run.log_path)}")

    def for_seconds(self, s, run, label):
        end = time.monotonic() + s
        self.until(lambda: time.monotonic() >= end, run, label, s + 5)


def settle(node, run, db, checkpoint, consumer_view, label):
    """No more blocks: the other output (checkpoint() -> (number, hash)) and SQLite reach the
    head; consumer_view() (a streamcheck.ChainView) and SQLite hold exactly the chain.
    Returns the head."""
    from pgcheck import node_chain  # noqa: PLC0415
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])
    end = time.monotonic() + HANG
    while checkpoint() != want or sqlite_cp(db) != head:
        run.alive(label)
        if time.monotonic() > end:
            raise Fail(f"{label}: the output at {checkpoint()}, SQLite at {sqlite_cp(db)}, want "
                       f"{want}\n{tail(run.log_path)}")
        time.sleep(0.1)
    chain = node_chain(node)
    consumer_view().check(chain, label, ("blocks", "transactions", "logs"))
    sqlite_exact(db, chain, label)
    return head
