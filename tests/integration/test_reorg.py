"""Reorgs of depth 1..5 while `blockpipe run --confirmations 0` follows an anvil chain.

The test mines blocks itself (automine off + evm_mine), lets blockpipe catch up, then for
depth 1..5 calls anvil_reorg(depth, [[tx, blockOffset], ...]) - anvil replaces the last
`depth` blocks by as many new ones (same head number, new hashes; the orphaned blocks' txs
are dropped, the given txs go into the new blocks) - sometimes mines 1-2 blocks more, and
waits until blockpipe's checkpoint is the node's head. Each time the SQLite output must be
exactly the node's canonical chain: every block's hash and parent_hash, the tx hashes of
every block in order, the log count of every block, and no transaction or log row whose
block_hash is off the canonical chain. blockpipe must mention the reorg on stderr and exit
0 within 15 s of SIGINT.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, log_calldata, revert_calldata, unq, wait_until  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4242"))
CATCH_UP_TIMEOUT = 60
STOP_TIMEOUT = 15
# blocks mined after each reorg (depth 1..5); 0 means a same-height reorg: the head number
# does not move, only its hash does.
EXTRA_BLOCKS = [0, 1, 2, 0, 1]


def fail(msg):
    raise AssertionError(msg)


def db_connect(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    return db


def checkpoint(path):
    if not os.path.exists(path):
        return None
    db = db_connect(path)
    try:
        rows = db.execute("SELECT number, hash FROM checkpoints").fetchall()
    except sqlite3.OperationalError:
        return None  # tables not created yet
    finally:
        db.close()
    if len(rows) > 1:
        fail(f"checkpoints has {len(rows)} rows, want 1: {rows}")
    return rows[0] if rows else None


def node_chain(node):
    head = node.block_number()
    chain = []
    for n in range(head + 1):
        b = node.block(n, False)
        logs = sum(len(r["logs"]) for r in node.receipts(n)) if b["transactions"] else 0
        chain.append({"hash": b["hash"], "parent_hash": b["parentHash"],
                      "txs": [h.lower() for h in b["transactions"]], "logs": logs})
    return chain


def check_db_is_chain(path, chain, label):
    """The whole SQLite output equals the node's canonical chain."""
    db = db_connect(path)
    try:
        db.execute("BEGIN")  # one consistent snapshot
        blocks = db.execute("SELECT number, hash, parent_hash FROM blocks ORDER BY number").fetchall()
        numbers = [r[0] for r in blocks]
        if numbers != list(range(len(chain))):
            fail(f"{label}: blocks table numbers {numbers[:5]}..{numbers[-5:]} "
                 f"({len(numbers)} rows), want exactly 0..{len(chain) - 1}")
        for n, h, ph in blocks:
            want = chain[n]
            if (h, ph) != (want["hash"], want["parent_hash"]):
                fail(f"{label}: block {n} in DB is hash={h} parent={ph}, node's canonical is "
                     f"hash={want['hash']} parent={want['parent_hash']}")
        txs = {}
        for bn, bh, h in db.execute("SELECT block_number, block_hash, hash FROM transactions "
                                    "ORDER BY block_number, transaction_index"):
            if bn >= len(chain) or bh != chain[bn]["hash"]:
                fail(f"{label}: orphan transaction row {h} with block_number={bn} "
                     f"block_hash={bh} (not the canonical block)")
            txs.setdefault(bn, []).append(h)
        for n, want in enumerate(chain):
            if txs.get(n, []) != want["txs"]:
                fail(f"{label}: block {n} txs in DB {txs.get(n, [])}, node has {want['txs']}")
        logs = {}
        for bn, bh, li in db.execute("SELECT block_number, block_hash, log_index FROM logs"):
            if bn >= len(chain) or bh != chain[bn]["hash"]:
                fail(f"{label}: orphan log row block_number={bn} log_index={li} "
                     f"block_hash={bh} (not the canonical block)")
            logs[bn] = logs.get(bn, 0) + 1
        for n, want in enumerate(chain):
            if logs.get(n, 0) != want["logs"]:
                fail(f"{label}: block {n} has {logs.get(n, 0)} log rows, node has {want['logs']}")
        db.execute("COMMIT")
    finally:
        db.close()
    return sum(len(b["txs"]) for b in chain), sum(b["logs"] for b in chain)


def wait_caught_up(node, path, label, proc, err_path):
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])

    def ok():
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited with {proc.returncode} while following; "
                 f"stderr:\n{tail(err_path)}")
        return checkpoint(path) == want
    try:
        wait_until(ok, CATCH_UP_TIMEOUT, f"{label}: checkpoint == node head {want}", 0.1)
    except TimeoutError as e:
        fail(f"{e}; DB checkpoint is {checkpoint(path)}; blockpipe stderr:\n{tail(err_path)}")
    return want


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def reorg_txs(rng, wl, depth):
    """2-3 txs for the replacement blocks, at random offsets inside them."""
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    if wl.contracts:
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(5))}, rng.randrange(depth)])
        if rng.random() < 0.5:
            pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts),
                           "gas": hex(100000), "data": revert_calldata(rng)}, rng.randrange(depth)])
    return pairs


def main():
    print(__doc__.strip())
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-reorg-")
    db_path = os.path.join(tmp.name, "bp.db")
    err_path = os.path.join(tmp.name, "stderr.txt")
    node = Anvil()
    proc = None
    err = open(err_path, "w")
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()  # automine off from here on: the test mines every block
        for _ in range(8):
            wl.mine_batch(rng.randrange(0, 7))

        cmd = [blockpipe, "run", "--rpc", node.url, "--output", f"sqlite:{db_path}",
               "--start-block", "0", "--confirmations", "0", "--poll-interval", "0.2",
               "--stats-interval", "1"]
        print("running:", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        for _ in range(12):
            wl.mine_batch(rng.randrange(0, 7))
            time.sleep(0.05)
        head = wait_caught_up(node, db_path, "initial sync", proc, err_path)
        ntx, nlog = check_db_is_chain(db_path, node_chain(node), "initial sync")
        print(f"initial sync ok: head={head[0]} txs={ntx} logs={nlog}")

        for depth in range(1, 6):
            before = node.block_number()
            old = [node.block(n, False)["hash"] for n in range(before - depth + 1, before + 1)]
            pairs = reorg_txs(rng, wl, depth)
            node.rpc("anvil_reorg", [depth, pairs])
            wl.after_reorg()
            new = [node.block(n, False)["hash"] for n in range(before - depth + 1, before + 1)]
            if any(o == n for o, n in zip(old, new)) or node.block_number() != before:
                fail(f"anvil_reorg({depth}) did not replace the last {depth} blocks: "
                     f"{old} -> {new}")
            extra = EXTRA_BLOCKS[depth - 1]
            for _ in range(extra):
                wl.mine_batch(rng.randrange(1, 6))
            label = f"reorg depth {depth} (+{extra} blocks)"
            head = wait_caught_up(node, db_path, label, proc, err_path)
            ntx, nlog = check_db_is_chain(db_path, node_chain(node), label)
            print(f"{label} ok: head={head[0]} {head[1][:12]}… txs={ntx} logs={nlog}")

        log = open(err_path, errors="replace").read()
        if "reorg" not in log.lower():
            fail("blockpipe's stderr has no line mentioning 'reorg' after 5 reorgs:\n"
                 + tail(err_path))
        if "stats head=" not in log:
            fail("blockpipe printed no 'stats head=' line with --stats-interval 1 "
                 "(docs/CLI.md):\n" + tail(err_path))

        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"blockpipe did not exit within {STOP_TIMEOUT}s of SIGINT:\n{tail(err_path)}")
        if rc != 0:
            fail(f"blockpipe exited {rc} after SIGINT, want 0:\n{tail(err_path)}")
        print(f"SIGINT: exit 0 after {time.monotonic() - t0:.1f}s")
        # the output must still be the chain after the shutdown flush
        check_db_is_chain(db_path, node_chain(node), "after SIGINT")
        print("OK: reorgs of depth 1..5 applied exactly; no orphan rows; clean stop")
    except AssertionError as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
