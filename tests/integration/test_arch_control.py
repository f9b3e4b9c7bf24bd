"""Rollbacks, re-applies and a fork made on demand (simnode's control methods) while
`blockpipe run --chain-type arch --ws --confirmations 0` follows the node into SQLite.

The node's whole chain exists from the start (--block-time 0, 80 blocks of 1-6
transactions), so nothing happens unless the test asks for it. Once blockpipe has caught up
with block 79:
1. simnode_rollback({"height": 70}): the answer names block 70, its hash as stored, and its
   even-indexed transactions (the timer's choice) as stored;
2. simnode_reapply(): the same block and txids, the next episode;
3. a rollback of block 65, refused over it a rollback of block 70, its re-apply; then
   simnode_rollback({"txids": [one chosen transaction of block 60]}) and its re-apply: only
   that one is rolled back;
4. simnode_fork(3): fork point 76, the new hashes of 77..79 are the node's canonical ones, the
   replaced ones are what blockpipe had stored.
After each, the test waits until blockpipe shows it (the rolled-back set in
arch_transactions, or the checkpoint on the new branch) and then compares every stored column
of arch_blocks, arch_transactions (rolled_back exactly: the node's rollback_status now) and
arch_account_updates with the node (tests/tools/archcheck.py), and every stored block hash
with the node's canonical get_block_hash. The log names the fork's common ancestor, the run
exits 0 on SIGINT with reorgs=1, and arch_events holds the three rollback and three re-apply
events. Refused control calls first: depth 0 and 80, an unknown txid, a height above the
head, a re-apply with nothing rolled back -- JSON-RPC errors naming the problem, nothing made.
Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from simnode import Simnode  # noqa: E402
import archcheck  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1416"))
LENGTH = 80
HEAD = LENGTH - 1
HANG = 60  # guards against a hang only


def fail(msg):
    raise AssertionError(msg)


def q(db, sql, args=()):
    if not os.path.exists(db):
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        con.close()


def checkpoint(db):
    rows = q(db, "SELECT number, hash FROM checkpoints WHERE chain = 'arch'")
    return tuple(rows[0]) if rows else None


def rolled_back(db):
    return {r[0] for r in q(db, "SELECT txid FROM arch_transactions WHERE rolled_back = 1")}


def wait_for(what, cond, proc, logpath):
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            fail(f"{what}: blockpipe exited {proc.returncode}:\n{open(logpath).read()[-3000:]}")
        time.sleep(0.05)
    fail(f"{what}: not within {HANG} s")


def check_all(url, db, label):
    """Every stored column as the node's answers now; every block the canonical one."""
    rows = archcheck.sqlite_rows(db, "arch", HEAD)
    archcheck.check_values(url, rows, rollback="exact")
    stored = [b["hash"] for b in rows["arch_blocks"]]
    canon = archcheck.call(url, [("get_block_hash", [h]) for h in range(LENGTH)])
    if stored != canon:
        bad = next(h for h in range(LENGTH) if h >= len(stored) or stored[h] != canon[h])
        fail(f"{label}: block {bad} stored {stored[bad:bad + 1]}, the node's canonical "
             f"{canon[bad]} ({len(stored)} blocks stored)")
    print(f"{label}: the tables are the node's ({len(stored)} blocks)", flush=True)


def events(db):
    """(rolledback_transactions, reapplied_transactions) events stored."""
    n = dict(q(db, "SELECT topic, count(*) FROM arch_events GROUP BY topic"))
    return n.get("rolledback_transactions", 0), n.get("reapplied_transactions", 0)


def block_txids(db, height):
    return [r[0] for r in q(db, "SELECT txid FROM arch_transactions WHERE block_height = ? "
                                "ORDER BY tx_index", (height,))]


def refused(node):
    for method, params, words in (
            ("simnode_fork", [0], "depth 0: expected 1 to 79"),
            ("simnode_fork", [LENGTH], "depth 80: expected 1 to 79"),
            ("simnode_rollback", [{"txids": ["00" * 32]}],
             "txids[0] " + "00" * 32 + ": not a transaction of the canonical chain"),
            ("simnode_rollback", [{"height": LENGTH}], "height 80: above the head 79"),
            ("simnode_reapply", [], "nothing is rolled back: simnode_rollback first")):
        e = node.control_error(method, *params)
        if e["code"] != -32602 or words not in e["message"]:
            fail(f"{method}{params}: {e}, want -32602 with {words!r}")
    s = node.stats()
    if s["reorgs"] or s["episodes"]:
        fail(f"refused control calls made something: {s}")


def rollback_and_reapply(node, url, db, params, want_txids, label, proc, logpath):
    r = node.control("simnode_rollback", params)
    height = r["block_height"]
    stored_hash = q(db, "SELECT hash FROM arch_blocks WHERE height = ?", (height,))[0][0]
    if r["block_hash"] != stored_hash or r["txids"] != want_txids:
        fail(f"{label}: answered {r}, want block {stored_hash} and txids {want_txids}")
    wait_for(f"{label}: rolled back in arch_transactions",
             lambda: rolled_back(db) == set(r["txids"]), proc, logpath)
    check_all(url, db, label)
    a = node.control("simnode_reapply")
    if (a["episode"], a["block_height"], a["txids"]) != (r["episode"] + 1, height, r["txids"]):
        fail(f"{label}: simnode_reapply answered {a} after {r}")
    wait_for(f"{label}: re-applied in arch_transactions", lambda: not rolled_back(db), proc,
             logpath)
    check_all(url, db, label + ", re-applied")
    return r["episode"]


def main():
    bp = os.environ["BLOCKPIPE"]
    tmp = tempfile.TemporaryDirectory(prefix="bp-archctl-")
    db = os.path.join(tmp.name, "out.db")
    logpath = os.path.join(tmp.name, "run.log")
    node = Simnode(bp, ["--chain-type", "arch", "--seed", str(SEED), "--length", str(LENGTH),
                        "--block-time", "0", "--txs-per-block", "1-6"])
    url = node.urls[0]
    proc = None
    try:
        refused(node)
        ws = "ws://" + url.split("://", 1)[1]
        with open(logpath, "w") as log:
            proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--ws", ws,
                                     "--output", f"sqlite:{db}", "--start-block", "0",
                                     "--confirmations", "0", "--poll-interval", "0.2",
                                     "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
        head = (HEAD, archcheck.call(url, [("get_block_hash", [HEAD])])[0])
        wait_for("initial sync", lambda: checkpoint(db) == head, proc, logpath)
        check_all(url, db, "initial sync")

        txs = block_txids(db, 70)
        ep = rollback_and_reapply(node, url, db, {"height": 70}, txs[0::2],
                                  "simnode_rollback(height 70)", proc, logpath)
        node.control("simnode_rollback", {"height": 65})  # (block 70's again: the same event key)
        e = node.control_error("simnode_rollback", {"height": 70})  # over a rollback
        if e["code"] != -32602 or "block 65 are rolled back: simnode_reapply first" not in \
                e["message"]:
            fail(f"a rollback over a rollback: {e}")
        node.control("simnode_reapply")
        wait_for("the second rollback and re-apply stored", lambda: events(db) == (2, 2), proc,
                 logpath)
        if rolled_back(db):
            fail(f"rolled back after the re-apply: {rolled_back(db)}")
        txs = block_txids(db, 60)
        chosen = txs[len(txs) // 2]
        ep2 = rollback_and_reapply(node, url, db, {"txids": [chosen]}, [chosen],
                                   "simnode_rollback(one txid of block 60)", proc, logpath)
        if ep2 != ep + 4:
            fail(f"episodes {ep}, {ep2}: want consecutive pairs")

        before = [r[0] for r in q(db, "SELECT hash FROM arch_blocks WHERE height > ? "
                                      "ORDER BY height", (HEAD - 3,))]
        f = node.control("simnode_fork", 3)
        canon = archcheck.call(url, [("get_block_hash", [h]) for h in range(HEAD - 2, LENGTH)])
        if (f["fork_point"], f["head"], f["hashes"], f["replaced"]) != (HEAD - 3, HEAD, canon,
                                                                         before):
            fail(f"simnode_fork(3) answered {f}; the node's canonical 77..79 {canon}, stored "
                 f"{before}")
        wait_for("simnode_fork(3): the checkpoint on the new branch",
                 lambda: checkpoint(db) == (HEAD, f["hashes"][-1]), proc, logpath)
        check_all(url, db, "simnode_fork(3)")
        line = f"reorg: 3 block(s) orphaned above common ancestor {HEAD - 3}"
        if line not in open(logpath).read():
            fail(f"the log has no {line!r}")

        proc.send_signal(signal.SIGINT)
        if proc.wait(timeout=HANG) != 0:
            fail(f"blockpipe exited {proc.returncode} on SIGINT")
        text = open(logpath).read()
        if "reorgs=1" not in text:
            fail(f"the run's summary does not count reorgs=1:\n{text[-2000:]}")
        if events(db) != (3, 3):
            fail(f"arch_events: {events(db)} rollbacks / re-applies, want 3 and 3")
        node.stop()
        print("OK: on-demand rollbacks (a block, a chosen txid), re-applies and a depth-3 fork "
              "reflected exactly; refused calls refused")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
