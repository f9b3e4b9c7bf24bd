"""A rollback deep below the tip while the Arch WebSocket is cut is caught at the resubscription
(docs/ARCH.md item 17): blockpipe reads again the rollback state of every committed block above
the node's best finalized block, not only the last 64.

simnode --chain-type arch grows a block every 0.2 s from height 200; its best finalized block
is 160 below the head (--finality 160); it rolls back only when the test asks (simnode_rollback:
the newest block with transactions at least 100 below the head, --rollback-depth 100). Two runs
follow it with --ws through tests/tools/tcpproxy.py (HTTP goes to the node): A with
--reorg-window 1000, B with --reorg-window 32. Once both are caught up and subscribed, the proxy
cuts the sockets (SIGUSR1); the test rolls back a block ~100 below the tip; the proxy lets the
sockets through again (SIGUSR2). Then:
- A logs the re-read of blocks from the finalized block + 1 up to its tip (more than 64 blocks,
  the rolled-back block more than 64 below the tip among them) finding as many rolled back as
  the node had (asked while the socket was cut); a push subscriber of A (--api,
  /api/ws?topics=transactions, attached before the cut) gets a transactions `revert` (reason
  rollback, resync true) for exactly those; and every stored transaction's rolled_back equals
  the node's rollback_status (the node makes no other episode);
- B, whose reorg window holds 32 blocks of the ~160 not final, warns that the rollback state of
  the blocks below it is not read again and stays missed (naming the span).
Fails with the old re-read of the last 64 blocks (the rollback is ~100 below the tip).
Stdlib only; needs BLOCKPIPE.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from simnode import Simnode  # noqa: E402
from pgcheck import kill_running  # noqa: E402
from apiclient import API_ANY, WS, api_port, wait_http  # noqa: E402
from rtcheck import Server  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402

HANG = 90
DEPTH = 100


def fail(msg):
    raise AssertionError(msg)


def start(bp, url, proxy_port, db, log, window, extra=()):
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", url, "--ws",
           f"ws://127.0.0.1:{proxy_port}", "--output", f"sqlite:{db}", "--start-block", "0",
           "--poll-interval", "0.2", "--ws-reconnect-interval", "0.2", "--reorg-window",
           str(window), "--log-level", "info", *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def node_rolled(url, db, above):
    """{txid: height} of the stored transactions above `above` the node says are rolled back."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    rows = con.execute("SELECT txid, block_height FROM arch_transactions WHERE block_height > ?",
                       (above,)).fetchall()
    con.close()
    out = {}
    for i in range(0, len(rows), 200):
        view = arch.call(url, [("get_processed_transaction", [r[0]]) for r in rows[i:i + 200]])
        out.update({r[0]: r[1] for r, v in zip(rows[i:i + 200], view)
                    if v["rollback_status"]["type"] == "rolledback"})
    return out


def resync_reverts(client, want, deadline):
    """The txids of the transactions revert messages flagged resync, until want are all in."""
    got = set()
    while not want <= got and time.monotonic() < deadline:
        try:
            m = client.recv_json(timeout=1)
        except (socket.timeout, TimeoutError):
            continue
        if m.get("topic") == "transactions" and m.get("reason") == "rollback":
            if not m.get("resync"):
                fail(f"a rollback missed by the socket announced as received: {m}")
            got.add(m["txid"])
    return got


def wait_log(path, offset, pattern, proc, what):
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        with open(path) as f:
            f.seek(offset)
            m = re.search(pattern, f.read())
        if m:
            return m
        if proc.poll() is not None:
            fail(f"{what}: blockpipe exited {proc.returncode}")
        time.sleep(0.1)
    fail(f"{what}: no {pattern!r} in {path} within {HANG} s")


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "200",
                        "--txs-per-block", "1-8", "--rollback-depth", str(DEPTH),
                        "--finality", "160", "--seed", "7"])
    proxy = None
    procs = []
    try:
        url = node.urls[0]
        proxy = Server("tcpproxy.py", ["127.0.0.1", node.port()])
        with tempfile.TemporaryDirectory(prefix="bp-arch-resync-") as tmp:
            dbs = [os.path.join(tmp, n) for n in ("a.db", "b.db")]
            logs = [os.path.join(tmp, n) for n in ("a.log", "b.log")]
            files = [open(p, "w") for p in logs]
            procs = [start(bp, url, proxy.port, dbs[0], files[0], 1000,
                           ("--api", API_ANY)),
                     start(bp, url, proxy.port, dbs[1], files[1], 32)]
            port = api_port(logs[0], HANG, procs[0])
            wait_http(port, HANG, procs[0])
            for i in range(2):
                arch.wait_caught_up(url, dbs[i], procs[i], "ab"[i])
                wait_log(logs[i], 0, r"subscribed \(subscribe \(Arch topics\)\)", procs[i],
                         "ab"[i])
            marks = [os.path.getsize(p) for p in logs]
            sub = WS(port, "/api/ws?topics=transactions")  # from now on: no rollback event
            proxy.signal(signal.SIGUSR1)
            print(f"cut: {proxy.expect('CUT', HANG)}", flush=True)
            # while the sockets are cut: a rollback ~DEPTH below the head (simnode_rollback's
            # choice: the newest block with transactions at least --rollback-depth below it)
            r = node.control("simnode_rollback")
            episode = node.stats()["episodes"]
            t = time.monotonic()
            head = arch.node_head(url)
            rolled = node_rolled(url, dbs[0], head - DEPTH - 64)
            if set(rolled) != set(r["txids"]):
                fail(f"the node's rolled-back transactions {sorted(rolled)}, its answer {r}")
            deep = min(rolled.values())
            proxy.signal(signal.SIGUSR2)
            print(f"reopen: {proxy.expect('OPEN', HANG)} (rollback episode {episode} at head "
                  f"{head}: {len(rolled)} transactions of block {deep} rolled back)", flush=True)
            m = wait_log(logs[0], marks[0], r"rollback state of blocks (\d+)\.\.(\d+) re-read "
                         r"\((\d+) rolled back", procs[0], "a: the re-read after the reopen")
            lo, hi, nback = int(m.group(1)), int(m.group(2)), int(m.group(3))
            print(f"a: re-read {time.monotonic() - t:.1f} s after the rollback", flush=True)
            if hi - lo + 1 <= 64 or not lo <= deep <= hi - 64 or nback != len(rolled):
                fail(f"re-read {lo}..{hi} ({nback} rolled back): want more than 64 blocks from "
                     f"the finalized one + 1, with {deep} more than 64 below the tip and "
                     f"{len(rolled)} rolled back")
            # the resync's push messages: one revert per transaction, whatever came later
            got = resync_reverts(sub, set(rolled), time.monotonic() + HANG)
            if got != set(rolled):
                fail(f"push: resync reverts of {sorted(got)}, rolled back {sorted(rolled)}")
            arch.wait_progress(dbs[0], procs[0], hi + 1, "a after the re-read")
            back, n = ws.compare_rollbacks(node, url, dbs[0], -1, episode, t)
            if back != len(rolled):
                fail(f"a: {back} stored transactions rolled back, the node {len(rolled)}")
            print(f"a: all {n} transactions' rolled_back as the node's ({back} rolled back)",
                  flush=True)
            sub.close()
            print(f"a: re-read blocks {lo}..{hi} ({hi - lo + 1} not final), {nback} rolled back "
                  f"in block {deep} ({hi - deep} below the tip), each announced by push",
                  flush=True)
            m = wait_log(logs[1], marks[1], r"warn .*are above the node's best finalized block "
                         r"\d+ .*stays missed", procs[1], "b: the warning")
            print(f"b: warned: {m.group(0)[:300]}", flush=True)
            for i, p in enumerate(procs):
                ws.stop(p, "ab"[i])
            for f in files:
                f.close()
            text = open(logs[0]).read()
            errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
            if errors:
                fail("a logged errors:\n" + "\n".join(errors[:10]))
    finally:
        kill_running(*procs)
        if proxy:
            proxy.stop()
        node.kill()
    print("OK")


if __name__ == "__main__":
    main()
