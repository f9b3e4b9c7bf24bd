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
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, checkpoint, tail, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402

LAST = 599
STOP_AT = 100
HANG = 120  # seconds: only a guard against a hang, never a measure
SCHEMA = "stopped"


def backfill(bp, node, url, log):
    return subprocess.Popen([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to",
                             str(LAST), "--batch-size", "5", "--output", url, "--wait-for-db", "1"],
                            stdout=log, stderr=subprocess.STDOUT)


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


def stored(pg):
    rows = pg.sql(f"SELECT count(*), count(DISTINCT number), coalesce(max(number), -1) "
                  f"FROM {SCHEMA}.blocks")
    return tuple(int(v) for v in rows[0])


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
            with open(log_path, "w") as log:
                p = backfill(bp, node, url, log)
                try:
                    wait_for(lambda: p.poll() is not None or
                             (checkpoint(pg, SCHEMA) or (0,))[0] >= STOP_AT, HANG,
                             f"checkpoint past {STOP_AT}", 0.05)
                    if p.poll() is not None:
                        raise Fail(f"backfill exited {p.returncode} before the stop:\n"
                                   f"{tail(log_path)}")
                    stopped = server_pids(pg)
                    signal_all(stopped, signal.SIGSTOP)
                    print(f"server stopped ({len(stopped)} processes)", flush=True)
                    try:
                        rc = p.wait(timeout=HANG)
                    except subprocess.TimeoutExpired:
                        raise Fail(f"backfill still waits {HANG} s after the server stopped "
                                   f"answering:\n{tail(log_path)}") from None
                finally:
                    signal_all(stopped, signal.SIGCONT)
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            text = open(log_path).read()
            errors = [ln for ln in text.splitlines() if " error " in ln]
            last = errors[-1] if errors else ""
            if rc != 1 or "no answer within 3 s (timeout=3)" not in last \
                    or f"127.0.0.1:{pg.port}/bp" not in last or "bp:bp@" in text:
                raise Fail(f"exit {rc}; want 1 with an error naming the output (no password) "
                           f"and the timeout:\n{tail(log_path)}")
            print(f"exit {rc}: {last.strip()}", flush=True)
            cp = checkpoint(pg, SCHEMA)
            count, distinct, top = stored(pg)
            if not cp or count != cp[0] + 1 or distinct != count or top != cp[0]:
                raise Fail(f"checkpoint {cp}, blocks table {count} rows ({distinct} distinct) "
                           f"up to {top}: want exactly 0..checkpoint, each once")
            print(f"checkpoint {cp[0]}, blocks 0..{top} stored once each", flush=True)
            with open(log_path + ".2", "w") as log:
                p = backfill(bp, node, url, log)
                try:
                    rc = p.wait(timeout=HANG * 2)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            count, distinct, top = stored(pg)
            cp = checkpoint(pg, SCHEMA)
            if rc != 0 or count != LAST + 1 or distinct != count or top != LAST \
                    or not cp or cp[0] != LAST:
                raise Fail(f"the backfill again: exit {rc}, blocks table {count} rows "
                           f"({distinct} distinct) up to {top}, checkpoint {cp}:\n"
                           f"{tail(log_path + '.2')}")
            print(f"again with the server continued: blocks 0..{LAST}, each once")
            print("OK: a server that stopped answering ends the backfill with the output's "
                  "name and the timeout; nothing lost")
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError, AssertionError) as e:
        sys.exit(f"FAIL: {e}")
