"""Node implementations other than anvil: ganache 7 and Hardhat Network 2, each started here.

For each node: a seeded random workload (tests/tools/anvil.py's Workload: legacy, EIP-2930,
EIP-1559, values above 2^64, deployments, LOG0..4 calls, reverts) over >= 20 blocks, then
  1. `blockpipe backfill` of 0..head into SQLite: every column of every block, transaction
     (receipt fields included) and log equals the node (tests/tools/rowcheck.py), the
     reference for logs being the node's eth_getLogs (block-wide logIndex);
  2. `blockpipe run --ws` from block 0 while the workload goes on, then a reorg made with
     evm_snapshot / evm_revert (both nodes have them): the outputs end exactly as the node's
     chain (the orphaned rows gone), compared field by field again.
The quirks each node has must be met as the README says: both lack eth_getBlockReceipts
(ganache answers -32700, hardhat -32004: the fallback is keyed on the message), and ganache
numbers receipt logIndex from 0 in every transaction: renumbered with one warning, and
refused by name with --strict-node. BP_OTHER_NODES=ganache (or hardhat) runs one.
"""

import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Workload, wait_until  # noqa: E402
from evmnodes import NODES, block_and_receipts  # noqa: E402
import rowcheck  # noqa: E402
from rowcheck import Mismatch  # noqa: E402
from rtcheck import Blockpipe, CheckFailed  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "20261204"))
CHAIN = "31337"
MIN_TXS, MIN_BLOCKS = 150, 20
TIMEOUT = 300


def node_data(node, upto):
    data, restarted = [], 0
    for n in range(upto + 1):
        b, rs, r = block_and_receipts(node, n)
        data.append((b, rs))
        restarted += r
    return data, restarted


def grow(wl, rng, blocks, min_txs=0):
    sent = 0
    for i in range(blocks):
        k = rng.choice([0, 1, 3, 5, 8, 12])
        if i < 2:
            k = 12  # several logging txs in one block early on, for the logIndex check
        wl.mine_batch(k)
        sent += k
    while sent < min_txs:
        wl.mine_batch(12)
        sent += 12


def backfill(blockpipe, node, tmp, label, extra=()):
    head = node.block_number()
    db = os.path.join(tmp, f"{label}.db")
    cmd = [blockpipe, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
           "--output", f"sqlite:{db}", "--workers", "4", "--stats-interval", "0.2", *extra]
    print(f"[{label}] running:", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stderr, db, head


def check_backfill(blockpipe, node, tmp, name):
    rc, log, db, head = backfill(blockpipe, node, tmp, name)
    if rc != 0:
        raise Mismatch(f"[{name}] backfill exited {rc}; stderr:\n{log[-4000:]}")
    data, restarted = node_data(node, head)
    counts = rowcheck.sqlite_exact(db, data, CHAIN, label=f"{name} backfill")
    if "does not support eth_getBlockReceipts" not in log:
        raise Mismatch(f"[{name}] no fallback warning for eth_getBlockReceipts:\n{log[-3000:]}")
    main = [ln for ln in log.splitlines() if " stats head=" in ln]
    if not main or "limits=rpc[0]:no-eth_getBlockReceipts" not in main[-1]:
        raise Mismatch(f"[{name}] the stats line does not show the missing method: {main[-1:]}")
    warned = log.count("numbers logIndex from 0 in every transaction")
    if name == "ganache":
        # the quirk must still be there, or this test no longer proves the repair
        if not restarted:
            raise Mismatch("[ganache] receipts' logIndex did not restart in any transaction")
        if warned != 1:
            raise Mismatch(f"[ganache] the logIndex repair was warned {warned} times, want 1:\n"
                           f"{log[-3000:]}")
    elif warned or restarted:
        raise Mismatch(f"[{name}] logIndex restarted ({restarted}) / warned ({warned})")
    print(f"[{name}] backfill OK: blocks=0..{head} txs={counts['transactions']} "
          f"logs={counts['logs']} blocks-with-restarting-logIndex={restarted}", flush=True)
    return head


def check_strict(blockpipe, node, tmp):
    rc, log, _, _ = backfill(blockpipe, node, tmp, "ganache-strict",
                             ["--strict-node", "--max-retries", "0"])
    if rc == 0:
        raise Mismatch("[ganache --strict-node] backfill exited 0, want a failure")
    need = [f"rpc {node.url}", "field 'logIndex'", "restarts in every transaction", "tx 0x"]
    missing = [s for s in need if s not in log]
    if missing:
        raise Mismatch(f"[ganache --strict-node] error lacks {missing}:\n{log[-3000:]}")
    print("[ganache] --strict-node refuses the restarting logIndex, naming endpoint, block, "
          "tx and field", flush=True)


def check_follow(node, wl, rng, tmp, name):
    bp = Blockpipe(tmp, ["--rpc", node.url, "--ws", node.ws_url, "--start-block", "0",
                         "--poll-interval", "0.2", "--stats-interval", "1"], name=f"{name}-run")
    try:
        bp.wait_caught_up(node, TIMEOUT, f"{name} catch-up")
        bp.wait_realtime(lambda rt: rt.get("mode") == "websocket", 60, "mode=websocket")
        grow(wl, rng, 5)
        bp.wait_caught_up(node, TIMEOUT, f"{name} following")
        # a reorg: blocks mined on a snapshot are taken back and others mined instead
        snap = node.rpc("evm_snapshot")
        grow(wl, rng, 2)
        orphan = node.block(node.block_number(), False)["hash"]
        bp.wait_caught_up(node, TIMEOUT, f"{name} before the reorg")
        if node.rpc("evm_revert", [snap]) is not True:
            raise Mismatch(f"[{name}] evm_revert refused")
        wl.after_reorg()
        grow(wl, rng, 4)
        head, _ = bp.wait_caught_up(node, TIMEOUT, f"{name} after the reorg")
        if node.block(head, False)["hash"] == orphan:
            raise Mismatch(f"[{name}] the reorg did not replace the tip")
        bp.wait_log(r"reorg", 30, "the reorg in blockpipe's log")
        bp.stop()
    except CheckFailed as e:
        raise Mismatch(f"[{name}] {e}") from None
    finally:
        bp.kill()
    data, _ = node_data(node, head)
    counts = rowcheck.sqlite_exact(bp.db, data, CHAIN, label=f"{name} run")
    print(f"[{name}] run over WebSocket with a reorg OK: blocks=0..{head} "
          f"txs={counts['transactions']} logs={counts['logs']}", flush=True)


def one_node(blockpipe, name, tmp):
    rng = random.Random(SEED)
    node = NODES[name](chain_id=int(CHAIN))
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        grow(wl, rng, MIN_BLOCKS, MIN_TXS)
        print(f"[{name}] node {node.url}: head={node.block_number()} sent={wl.sent}", flush=True)
        check_backfill(blockpipe, node, tmp, name)
        if name == "ganache":
            check_strict(blockpipe, node, tmp)
        check_follow(node, wl, rng, tmp, name)
    finally:
        node.stop()


def main():
    print(__doc__.strip(), flush=True)
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    names = os.environ.get("BP_OTHER_NODES", "ganache,hardhat").split(",")
    with tempfile.TemporaryDirectory(prefix="bp-nodes-") as tmp:
        for name in names:
            t0 = time.monotonic()
            try:
                one_node(blockpipe, name, tmp)
            except (Mismatch, AssertionError, RuntimeError, TimeoutError) as e:
                sys.exit(f"FAIL: [{name}] {e}")
            print(f"[{name}] done in {time.monotonic() - t0:.0f}s", flush=True)
    print("OK")


if __name__ == "__main__":
    main()
