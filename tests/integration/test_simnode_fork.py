"""simnode_fork on demand while `blockpipe run --confirmations 0 --ws` follows an EVM simnode into
SQLite (`blockpipe simnode --help`, "Control methods").

The node's whole chain exists from the start (--block-time 0, 60 blocks), so the head never
moves and every fork is a same-height one the test chooses: after blockpipe caught up with
block 59, simnode_fork(depth) for depth 1..5 (depth 2 onwards reaches below the fork before:
simnode's non-monotonic fork table). After each:
- the answer names exactly what changed: fork_point 59 - depth, head 59, `hashes` the node's
  canonical blocks fork_point+1..59 now, `replaced` what blockpipe had stored there;
- blockpipe catches up (checkpoint = block 59's new hash), and the SQLite output is exactly
  the node's canonical chain (test_reorg.check_db_is_chain: every block's hash and parent,
  each block's tx hashes in order, its log count, no row of an orphaned block);
- its log says "reorg: D block(s) orphaned above common ancestor 59 - D".
The run exits 0 on SIGINT with reorgs=5 in its summary. Then simnode_fork(2) over the
WebSocket: answered there, the new blocks announced to its newHeads subscription. Refused control calls first: depth 0,
depth 60 (more than the blocks above genesis), a string depth, and simnode_rollback (Arch
only) are JSON-RPC errors naming the problem. Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from simnode import Simnode  # noqa: E402
import test_reorg  # noqa: E402
from test_simnode_ws import Ws  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "5151"))
LENGTH = 60
HEAD = LENGTH - 1
HANG = 60  # guards against a hang only


def fail(msg):
    raise AssertionError(msg)


def node_chain(node):
    """The node's canonical chain as test_reorg.check_db_is_chain wants it (two batches)."""
    blocks = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(LENGTH)])
    receipts = node.rpc_batch([("eth_getBlockReceipts", [hex(n)]) for n in range(LENGTH)])
    return [{"hash": b["hash"], "parent_hash": b["parentHash"],
             "txs": [h.lower() for h in b["transactions"]],
             "logs": sum(len(r["logs"]) for r in rs)} for b, rs in zip(blocks, receipts)]


def stored_hashes(db, lo, hi):
    con = test_reorg.db_connect(db)
    try:
        return [r[0] for r in con.execute("SELECT hash FROM blocks WHERE number BETWEEN ? AND ? "
                                          "ORDER BY number", (lo, hi))]
    finally:
        con.close()


def wait_checkpoint(db, want, proc, logpath, label):
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        if test_reorg.checkpoint(db) == want:
            return
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}:\n{open(logpath).read()[-3000:]}")
        time.sleep(0.05)
    fail(f"{label}: checkpoint {test_reorg.checkpoint(db)}, want {want} within {HANG} s")


def refused(node):
    for params, code, words in (([0], -32602, "depth 0: expected 1 to 59"),
                                ([LENGTH], -32602, "depth 60: expected 1 to 59"),
                                (["2"], -32602, "expected [depth]")):
        e = node.control_error("simnode_fork", *params)
        if e["code"] != code or words not in e["message"]:
            fail(f"simnode_fork{params}: {e}, want {code} with {words!r}")
    e = node.control_error("simnode_rollback")
    if e["code"] != -32601 or "--chain-type arch only" not in e["message"]:
        fail(f"simnode_rollback on an EVM node: {e}")
    if node.stats()["reorgs"] != 0:
        fail("a refused simnode_fork made a fork")


def ws_fork(node):
    """simnode_fork over the WebSocket: answered there, and the new branch announced to the
    newHeads subscription from the fork point up, as a timer reorg is."""
    ws = Ws(node.port())
    sub = ws.call("eth_subscribe", ["newHeads"])
    heads = []
    r = ws.call("simnode_fork", [2], heads)["result"]
    ws.heads_until(lambda hs: len(hs) >= 2, HANG, heads)
    below = node.rpc_batch([("eth_getBlockByNumber", [hex(HEAD - 2), False])])[0]["hash"]
    if [h["hash"] for h in heads] != r["hashes"] or heads[0]["parentHash"] != below:
        fail(f"newHeads after simnode_fork(2) over the WebSocket ({sub}): {heads}, answer {r}")
    print(f"simnode_fork(2) over the WebSocket: blocks {HEAD - 1}..{HEAD} announced", flush=True)


def main():
    bp = os.environ["BLOCKPIPE"]
    tmp = tempfile.TemporaryDirectory(prefix="bp-simfork-")
    db = os.path.join(tmp.name, "out.db")
    logpath = os.path.join(tmp.name, "run.log")
    node = Simnode(bp, ["--seed", str(SEED), "--length", str(LENGTH), "--block-time", "0",
                        "--txs-per-block", "1-4"])
    proc = None
    try:
        refused(node)
        ws = "ws://" + node.urls[0].split("://", 1)[1]
        with open(logpath, "w") as log:
            proc = subprocess.Popen([bp, "run", "--rpc", node.urls[0], "--ws", ws, "--output",
                                     f"sqlite:{db}", "--start-block", "0", "--confirmations", "0",
                                     "--poll-interval", "0.2", "--log-level", "info"],
                                    stdout=log, stderr=subprocess.STDOUT)
        head_hash = node.rpc_batch([("eth_getBlockByNumber", [hex(HEAD), False])])[0]["hash"]
        wait_checkpoint(db, (HEAD, head_hash), proc, logpath, "initial sync")
        for depth in range(1, 6):
            label = f"simnode_fork({depth})"
            before = stored_hashes(db, HEAD - depth + 1, HEAD)
            r = node.control("simnode_fork", depth)
            chain = node_chain(node)
            if (r["fork"], r["depth"], r["fork_point"], r["head"]) != (depth, depth,
                                                                       HEAD - depth, HEAD):
                fail(f"{label}: answered {r}")
            if r["hashes"] != [b["hash"] for b in chain[HEAD - depth + 1:]]:
                fail(f"{label}: hashes {r['hashes']} are not the node's canonical blocks now")
            if r["replaced"] != before or set(before) & set(r["hashes"]):
                fail(f"{label}: replaced {r['replaced']}, blockpipe had stored {before}")
            wait_checkpoint(db, (HEAD, r["hashes"][-1]), proc, logpath, label)
            ntx, nlogs = test_reorg.check_db_is_chain(db, chain, label)
            line = f"reorg: {depth} block(s) orphaned above common ancestor {HEAD - depth}"
            if line not in open(logpath).read():
                fail(f"{label}: the log has no {line!r}")
            print(f"{label}: fork point {r['fork_point']}, blocks {HEAD - depth + 1}..{HEAD} "
                  f"replaced; SQLite = the node's chain ({ntx} txs, {nlogs} logs)", flush=True)
        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=HANG) != 0:
            fail(f"blockpipe exited {proc.returncode} on SIGINT")
        text = open(logpath).read()
        if "reorgs=5" not in text:
            fail(f"the run's summary does not count reorgs=5:\n{text[-2000:]}")
        ws_fork(node)
        stats = node.stats()
        if stats["reorgs"] != 6:
            fail(f"simnode /stats reorgs {stats['reorgs']}, want 6")
        node.stop()
        print("OK: simnode_fork 1..5 on demand, each reflected exactly; refused calls refused")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
