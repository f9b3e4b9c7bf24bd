"""A PostgreSQL server that stops answering without closing the connection (real PostgreSQL).

`blockpipe backfill` of simnode blocks in batches of 5 writes PostgreSQL with timeout=3 and
--wait-for-db 1. Once its checkpoint passed block 100 the server is SIGSTOPped, the postmaster
and every backend: the connection stays open and nothing answers, as with a hung storage or a
network black hole. Before, the write waited in libpq for ever (until this test's guard). Now a
watchdog cuts the round trip after 3 s, reconnecting fails (the server accepts but does not
answer within connect_timeout) and the backfill exits 1 with an error naming the output (no
password) and "no answer within 3 s (timeout=3)". The server is continued (SIGCONT, always, in
a finally) before anything is checked: the checkpoint is the highest stored block and the
blocks table holds 0..checkpoint, each once. The same backfill run again completes every block,
each once.
"""

import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import (Fail, backfill_proc, blockpipe_bin, broken_backfill,  # noqa: E402
                     check_complete, check_prefix, checkpoint, last_error, run_to_end,
                     script_main, tail)
from simnode import Simnode  # noqa: E402

LAST = 599
STOP_AT = 100
HANG = 120  # seconds: only a guard against a hang, never a measure
SCHEMA = "stopped"


def server_pids(pg):
    """The postmaster and its children (the backends, the background processes)."""
    root = pg.proc.pid
    kids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == root:
            kids.append(int(d))
    return [root] + kids


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-stopped-")
    node = Simnode(bp, ["--length", str(LAST + 2), "--block-time", "0", "--txs-per-block", "3"])
    try:
        with Postgres() as pg:
            url = pg.url(query=f"schema={SCHEMA}&timeout=3")
            log_path = os.path.join(tmp.name, "stopped.log")
            stopped = []

            def start(log):
                return backfill_proc(bp, node.urls[0], LAST, url, log)

            def stop():
                stopped.extend(server_pids(pg))
                signal_all(stopped, signal.SIGSTOP)
                print(f"server stopped ({len(stopped)} processes)", flush=True)
            rc = broken_backfill(start, log_path, lambda: (checkpoint(pg, SCHEMA) or (0,))[0],
                                 STOP_AT, stop, HANG,
                                 ("the stop", "the server stopped answering"),
                                 undo=lambda: signal_all(stopped, signal.SIGCONT))
            text = open(log_path).read()
            last = last_error(text)
            if rc != 1 or "no answer within 3 s (timeout=3)" not in last \
                    or f"127.0.0.1:{pg.port}/bp" not in last or "bp:bp@" in text:
                raise Fail(f"exit {rc}; want 1 with an error naming the output (no password) "
                           f"and the timeout:\n{tail(log_path)}")
            print(f"exit {rc}: {last.strip()}", flush=True)
            cp = check_prefix(pg, SCHEMA)
            print(f"checkpoint {cp}, blocks 0..{cp} stored once each", flush=True)
            rc = run_to_end(start, log_path + ".2", HANG * 2)
            check_complete(pg, SCHEMA, LAST, rc, log_path + ".2")
            print(f"again with the server continued: blocks 0..{LAST}, each once")
            print("OK: a server that stopped answering ends the backfill with the output's "
                  "name and the timeout; nothing lost")
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
