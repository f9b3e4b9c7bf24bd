"""A rollback the Arch node sent while the WebSocket was down, of a block blockpipe fetched
before the cut and commits only after the reconnect, is found (docs/ARCH.md "Malformed events:
what was chosen", lost_wait in src/core/pipeline.c): the re-read at the resubscription waits
until every block asked for before it is committed.

simnode --chain-type arch grows a block every 0.5 s (1-6 transactions each, finalized 50 below
the head) and changes only when the test asks. blockpipe follows it with --ws through
tests/tools/tcpproxy.py and HTTP through tests/tools/rpcgate.py, --confirmations 0, into SQLite.
Once it has caught up and subscribed:
1. the gate holds every request naming block L (2 above the node's head then), so nothing from
   L up is committed, while blocks above L are fetched: the test waits until the gate has
   answered get_processed_transaction for every transaction of a block B above L (B's state
   as fetched: not rolled back);
2. the proxy cuts the socket; simnode_rollback of block B (its event lost); the proxy lets the
   socket through again, and the test waits for the resubscription and for blockpipe's line
   saying that the re-read waits for the blocks asked for before it (up to B or above);
3. the gate lets L through: blockpipe commits L..B, then re-reads (the logged range reaches
   B, B's rolled-back transactions counted), and every stored transaction's rolled_back is the
   node's rollback_status (B's rolled back).
A re-read that does not wait reads only the blocks below L at the resubscription: B is stored
as fetched (not rolled back) and stays so until the next re-read - the test fails on the
missing wait line, the re-read's range, or B's rows.
Stdlib only; needs BLOCKPIPE.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from rpcgate import RpcGate  # noqa: E402
from rtcheck import Server  # noqa: E402
from simnode import Simnode  # noqa: E402
import archcheck  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from test_arch_resync import wait_log  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1417"))
HANG = 90  # guards against a hang only
SUBSCRIBED = r"subscribed \(subscribe \(Arch topics\)\)"


def fail(msg):
    raise AssertionError(msg)


def block_txids(url, height):
    h = arch.call(url, [("get_block_hash", [height])])[0]
    return archcheck.block_txids(arch.call(url, [("get_block", [h])])[0])


def bare(txid):
    t = txid.lower()
    return t[2:] if t.startswith("0x") else t


def stored_back(db, txids):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM arch_transactions WHERE rolled_back = 1 AND "
                           f"txid IN ({','.join('?' * len(txids))})", txids).fetchone()[0]
    finally:
        con.close()


def fetched_above(url, gate, low, proc):
    """A block above `low` whose every transaction the gate has answered
    get_processed_transaction for (blockpipe fetched it), waited for."""
    seen = {}
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        for b in range(low + 1, arch.node_head(url) + 1):
            if b not in seen:
                seen[b] = block_txids(url, b)
            if seen[b] and {bare(t) for t in seen[b]} <= {bare(t) for t in list(gate.txids)}:
                return b, seen[b]
        if proc.poll() is not None:
            fail(f"blockpipe exited {proc.returncode}")
        time.sleep(0.05)
    fail(f"no block above {low} fetched within {HANG} s (the gate answered "
         f"{len(gate.txids)} transactions)")


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.5", "--start-head", "30",
                        "--txs-per-block", "1-6", "--finality", "50", "--seed", str(SEED)])
    url = node.urls[0]
    gate = RpcGate(url)
    proxy = Server("tcpproxy.py", ["127.0.0.1", node.port()])
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-lostwait-")
    db = os.path.join(tmp.name, "out.db")
    logpath = os.path.join(tmp.name, "run.log")
    try:
        with open(logpath, "w") as log:
            proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", gate.url,
                                     "--ws", f"ws://127.0.0.1:{proxy.port}", "--output",
                                     f"sqlite:{db}", "--start-block", "10", "--confirmations",
                                     "0", "--poll-interval", "0.2", "--ws-reconnect-interval",
                                     "0.2", "--log-level", "info"],
                                    stdout=log, stderr=subprocess.STDOUT)
            wait_log(logpath, 0, SUBSCRIBED, proc, "start")
            arch.wait_caught_up(url, db, proc, "start")
            low = arch.node_head(url) + 2
            gate.hold_at = {low}  # 1.
            b, txids = fetched_above(url, gate, low, proc)
            cp = arch.checkpoint(db)[0]
            if cp >= low:
                fail(f"checkpoint {cp} passed the held block {low}")
            print(f"block {low} held (checkpoint {cp}); block {b} fetched ({len(txids)} "
                  "transactions)", flush=True)
            log.flush()
            mark = os.path.getsize(logpath)
            proxy.signal(signal.SIGUSR1)  # 2.
            print(f"cut: {proxy.expect('CUT', HANG)}", flush=True)
            r = node.control("simnode_rollback", {"height": b})
            episode, t = node.stats()["episodes"], time.monotonic()
            proxy.signal(signal.SIGUSR2)
            print(f"reopen: {proxy.expect('OPEN', HANG)}; block {b}: {len(r['txids'])} "
                  "transactions rolled back while the socket was cut", flush=True)
            wait_log(logpath, mark, SUBSCRIBED, proc, "the resubscription")
            m = wait_log(logpath, mark, r"the rollback state is read again once blocks "
                         r"(\d+)\.\.(\d+), asked for before", proc, "the re-read's wait")
            if int(m.group(2)) < b:
                fail(f"the re-read waits for blocks up to {m.group(2)} only, {b} was fetched "
                     "before the loss")
            with open(logpath) as f:
                f.seek(mark)
                early = re.search(r"rollback state of blocks \d+\.\.\d+ re-read", f.read())
            if early:
                fail(f"re-read while block {low} was still held: {early.group(0)}")
            if node.stats()["episodes"] != episode:
                fail("the node made an episode the test did not ask for")
            gate.release()  # 3.
            m = wait_log(logpath, mark, r"rollback state of blocks (\d+)\.\.(\d+) re-read "
                         r"\((\d+) rolled back", proc, "the re-read after the release")
            lo, hi, nback = (int(x) for x in m.groups())
            if not lo <= b <= hi or nback < len(r["txids"]):
                fail(f"re-read {lo}..{hi} ({nback} rolled back): want block {b} in it and its "
                     f"{len(r['txids'])} rolled back")
            ws.wait_for(f"block {b}'s rollback stored", lambda: stored_back(
                db, r["txids"]) == len(r["txids"]), proc)
            arch.wait_progress(db, proc, b, "after the re-read")
            back, n = ws.compare_rollbacks(node, url, db, -1, episode, t)
            if back != len(r["txids"]):
                fail(f"{back} stored transactions rolled back, the node {len(r['txids'])}")
            ws.stop(proc, "the run")
        text = open(logpath).read()
        errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
        if errors:
            fail("blockpipe logged errors:\n" + "\n".join(errors[:10]))
        print(f"OK: block {b} fetched before the cut, rolled back while it was down, committed "
              f"after the reconnect: the re-read {lo}..{hi} waited for it; all {n} "
              f"transactions' rolled_back as the node's ({back} rolled back)")
    except AssertionError:
        print_tails(logpath, chars=5000)
        raise
    finally:
        gate.release()
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        gate.close()
        proxy.stop()
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
