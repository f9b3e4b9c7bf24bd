#!/usr/bin/env python3
"""A backfill whose --to is above the node's head says so once and waits for the chain.

simnode holds blocks 0..9 (--length 10, the whole chain at once). `blockpipe backfill --from 0
--to 20` stores 0..9 and then has nothing to do until the chain grows: its log must say, once,
that --to 20 is above the node's head 9 and that it waits (before, nothing but the stats lines
did, and a user took it for a hang). A SIGINT then ends it with exit 0 and blocks 0..9 stored.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
HANG = 120  # guards against a hang only
SAID = "backfill --to 20: the node's head is 9 (--confirmations 0): waiting for the chain"


def fail(msg):
    raise AssertionError(msg)


def stored(db):
    if not os.path.exists(db):
        return []
    con = sqlite3.connect(db, timeout=10)
    try:
        return [r[0] for r in con.execute("SELECT number FROM blocks ORDER BY number")]
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        con.close()


def main():
    print(__doc__.strip().splitlines()[0])
    sim = Simnode(BP, ["--block-time", "0", "--length", "10", "--txs-per-block", "2"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-backfill-short-") as tmp:
            db = os.path.join(tmp, "out.db")
            logpath = os.path.join(tmp, "run.log")
            with open(logpath, "w") as log:
                p = subprocess.Popen([BP, "backfill", "--rpc", sim.urls[0], "--from", "0",
                                      "--to", "20", "--output", f"sqlite:{db}"],
                                     stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + HANG
                while SAID not in open(logpath).read() or stored(db) != list(range(10)):
                    if p.poll() is not None:
                        fail(f"backfill exited {p.returncode}:\n{open(logpath).read()[-3000:]}")
                    if time.monotonic() > deadline:
                        fail(f"within {HANG} s: blocks {stored(db)}, want 0..9, and the line "
                             f"{SAID!r}:\n{open(logpath).read()[-3000:]}")
                    time.sleep(0.1)
                p.send_signal(signal.SIGINT)
                rc = p.wait(timeout=HANG)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            text = open(logpath).read()
            if rc != 0:
                fail(f"backfill exited {rc} on SIGINT:\n{text[-3000:]}")
            if text.count("waiting for the chain to reach it") != 1:
                fail(f"the wait was said {text.count('waiting for the chain to reach it')} times")
            print("the backfill said once that --to is above the head; blocks 0..9 stored")
    finally:
        sim.stop()
    print("PASS")


if __name__ == "__main__":
    main()
