"""A PostgreSQL output that loses a group of batches and then never answers (real PostgreSQL).

`blockpipe backfill` of simnode blocks in batches of 5 writes PostgreSQL through
tests/tools/tcpproxy.py; behind the head its batches go several to one transaction (a group,
docs/ARCHITECTURE.md "Groups"). Once its checkpoint passed block 300 the proxy is cut for good:
every connection closed, every new one closed at once. The write inside the open group fails,
the group is rolled back, and the output is sent back to its checkpoint (bp_sink.rewind), whose
reads all fail from then on. Before, the backfill waited for it for ever (until ctest's
timeout). Now, after as many reads as a failed write gets attempts (each bounded by
--wait-for-db 1), it exits non-zero naming the output (no password) and saying it lost the
batches and did not answer; nothing is lost: read directly, the checkpoint is the last block
committed and the blocks table holds exactly 0..checkpoint. With the proxy open again the same
backfill completes every block. A cut that happens to land between two groups fails the write
as before (no group lost): that attempt is made again on a new schema, up to 4 times.
"""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import (Fail, backfill_proc, blockpipe_bin, broken_backfill,  # noqa: E402
                     check_complete, check_prefix, checkpoint, last_error, run_to_end,
                     script_main, tail)
from rtcheck import Server  # noqa: E402
from simnode import Simnode  # noqa: E402

LAST = 1499
CUT_AT = 300
HANG = 150  # seconds: only a guard against a hang, never a measure
LOST = "going back to its checkpoint"


def attempt(bp, node, pg, proxy, tmp, n):
    """One cut; True when it landed in a group (the case under test), checked."""
    schema = f"g{n}"
    url = (f"postgres://bp:bp@127.0.0.1:{proxy.port}/bp?schema={schema}")
    log_path = os.path.join(tmp, f"{n}.log")

    def start(log):
        return backfill_proc(bp, node.urls[0], LAST, url, log, "--log-level", "debug")

    def cut():
        proxy.signal(signal.SIGUSR1)
        proxy.expect("CUT", 10)
    rc = broken_backfill(start, log_path, lambda: (checkpoint(pg, schema) or (0,))[0], CUT_AT,
                         cut, HANG, ("the cut", "its output stopped answering"), f"{n}: ")
    text = open(log_path).read()
    if LOST not in text:
        print(f"{n}: the cut landed between groups (exit {rc}); again", flush=True)
        return False
    last = last_error(text)
    if rc == 0 or "has not answered since" not in last or "postgres://" not in last \
            or "bp:bp@" in text:
        raise Fail(f"{n}: exit {rc}; want non-zero with an error naming the output (no "
                   f"password) that lost its batches and did not answer:\n{tail(log_path)}")
    cp = check_prefix(pg, schema, f"{n}: ")
    print(f"{n}: group lost at the cut, exit {rc} naming the output; checkpoint {cp}, "
          f"blocks 0..{cp} stored once each", flush=True)
    proxy.signal(signal.SIGUSR2)
    proxy.expect("OPEN", 10)
    rc = run_to_end(start, log_path + ".2", HANG * 2)
    check_complete(pg, schema, LAST, rc, log_path + ".2", f"{n}: ")
    print(f"{n}: again with the proxy open: blocks 0..{LAST}, each once", flush=True)
    return True


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-group-")
    node = Simnode(bp, ["--length", str(LAST + 2), "--block-time", "0", "--txs-per-block", "3"])
    try:
        with Postgres() as pg:
            proxy = Server("tcpproxy.py", ["127.0.0.1", pg.port])
            try:
                for n in range(1, 5):
                    if attempt(bp, node, pg, proxy, tmp.name, n):
                        print("OK: an output that lost a group and never answered ends the "
                              "backfill with its name; nothing lost")
                        return
                    proxy.signal(signal.SIGUSR2)
                    proxy.expect("OPEN", 10)
                    time.sleep(0.1)
                raise Fail("4 cuts all landed between groups")
            finally:
                proxy.stop()
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
