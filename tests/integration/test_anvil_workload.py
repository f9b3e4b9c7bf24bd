"""Backfill of a real anvil chain with a mixed workload, checked field by field.

anvil gets >= 500 seeded random transactions over >= 50 blocks (legacy, EIP-2930 with
access lists, EIP-1559, values above 2^64 wei, contract deployments, calls emitting LOG0..4,
reverting calls), then `blockpipe backfill --from 0 --to HEAD --output sqlite:... --workers 4`
must exit 0, and every column of blocks / transactions / logs / checkpoints must equal what
the node returns from eth_getBlockByNumber(n, true) and eth_getBlockReceipts(n).
A second, small chain checks u64 values above 2^63-1 (block gas limit 2^64-1, a tx gas
limit of 2^63+12345): stored exactly as decimal TEXT, never as a lossy REAL.
"""

import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, unq  # noqa: E402
import rowcheck  # noqa: E402
from rowcheck import Mismatch  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "20241123"))
MIN_TXS, MIN_BLOCKS = 500, 50
BACKFILL_TIMEOUT = 300
CHAIN = "31337"


def compare(db_path, node_blocks, node_receipts, head):
    """Every column of every row equals the node (tests/tools/rowcheck.py: u64 as INTEGER,
    or a BLOB of its digits above 2^63-1; 256-bit amounts as exact decimal TEXT; lists as
    compact JSON), and the one checkpoint row is the head."""
    counts = rowcheck.sqlite_exact(db_path, list(zip(node_blocks, node_receipts)), CHAIN)
    cps = rowcheck.sqlite_checkpoints(db_path, CHAIN)
    if list(cps.values()) != [(head, node_blocks[head]["hash"])]:
        raise Mismatch(f"checkpoints: {cps}, want one row ({head}, {node_blocks[head]['hash']})")
    return counts["transactions"], counts["logs"]


def backfill_and_compare(blockpipe, node, tmpdir, label):
    """Runs the backfill of 0..head into a new SQLite file and compares it all with the node.
    Returns (head, txs, logs, node_blocks, node_receipts)."""
    head = node.block_number()
    node_blocks = [node.block(n, True) for n in range(head + 1)]
    node_receipts = [node.receipts(n) for n in range(head + 1)]

    db_path = os.path.join(tmpdir, f"{label}.db")
    cmd = [blockpipe, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
           "--output", f"sqlite:{db_path}", "--workers", "4"]
    print(f"[{label}] running:", " ".join(cmd))
    t0 = time.monotonic()
    with open(os.path.join(tmpdir, f"{label}.stderr.txt"), "w+") as err:
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                               timeout=BACKFILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            err.seek(0)
            raise Mismatch(f"[{label}] backfill did not finish within {BACKFILL_TIMEOUT}s; "
                           f"output:\n{err.read()[-4000:]}") from None
        err.seek(0)
        out = err.read()
    print(f"[{label}] backfill exit {p.returncode} after {time.monotonic() - t0:.1f}s; last lines:")
    print("  " + "\n  ".join(out.strip().splitlines()[-3:]))
    if p.returncode != 0:
        raise Mismatch(f"[{label}] backfill exited {p.returncode}, want 0; output:\n{out[-4000:]}")
    if "backfill done:" not in out:
        raise Mismatch(f"[{label}] backfill printed no 'backfill done:' line (docs/CLI.md)")

    try:
        n_tx, n_log = compare(db_path, node_blocks, node_receipts, head)
    except Mismatch as e:
        raise Mismatch(f"[{label}] {e}") from None
    return head, n_tx, n_log, node_blocks, node_receipts


def big_u64_phase(blockpipe, tmpdir):
    """u64 columns above 2^63-1 (INTEGER cannot hold them: decimal TEXT, exact): a chain
    whose block gas limit is 2^64-1 and a tx whose gas limit is 2^63+12345 (base fee 0 and
    gas price 0 so the dev account can pay for it)."""
    node = Anvil(["--chain-id", CHAIN, "--gas-limit", str(2 ** 64 - 1), "--base-fee", "0",
                  "--disable-min-priority-fee"])
    try:
        a = node.rpc("eth_accounts")
        node.rpc("evm_setAutomine", [False])
        node.rpc("eth_sendTransaction", [{"from": a[0], "to": a[1], "value": "0x1",
                                          "gas": hex(2 ** 63 + 12345), "gasPrice": "0x0",
                                          "type": "0x0"}])
        node.rpc("eth_sendTransaction", [{"from": a[1], "to": a[2], "value": hex(25 * 10 ** 18),
                                          "gas": hex(21000), "gasPrice": "0x0", "type": "0x0"}])
        node.mine()
        node.mine()
        head, n_tx, _, _, _ = backfill_and_compare(blockpipe, node, tmpdir, "u64-above-2^63")
        print(f"[u64-above-2^63] OK: blocks={head + 1} txs={n_tx} (gas_limit 2^64-1, tx gas 2^63+12345)")
    finally:
        node.stop()


def main():
    print(__doc__.strip())
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-workload-")
    node = Anvil(["--chain-id", CHAIN])
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        sent = 2
        blocks = 1
        while sent < MIN_TXS or blocks < MIN_BLOCKS:
            k = rng.choice([0, 1, 3, 5, 8, 10, 12, 15, 20])  # some empty blocks too
            wl.mine_batch(k)
            sent += k
            blocks += 1
        print(f"node {node.url}: head={node.block_number()}, sent={wl.sent}")
        head, n_tx, n_log, node_blocks, node_receipts = backfill_and_compare(
            blockpipe, node, tmp.name, "workload")
        node.stop()

        by_type, reverted, creations, big = {}, 0, 0, 0
        for b, rs in zip(node_blocks, node_receipts):
            for t, r in zip(b["transactions"], rs):
                by_type[unq(t["type"])] = by_type.get(unq(t["type"]), 0) + 1
                reverted += unq(r["status"]) == 0
                creations += r.get("contractAddress") is not None
                big += unq(t["value"]) >= 2 ** 64
        print(f"[workload] OK: blocks={head + 1} txs={n_tx} logs={n_log} "
              f"by_type={dict(sorted(by_type.items()))} reverted={reverted} "
              f"creations={creations} value>=2^64={big}")
        # the workload itself must have covered every case, or the check proves less
        assert n_tx >= MIN_TXS and head + 1 >= MIN_BLOCKS, (n_tx, head)
        assert reverted and creations and big and n_log and set(by_type) >= {0, 1, 2}, by_type

        big_u64_phase(blockpipe, tmp.name)
    except Mismatch as e:
        sys.exit(f"FAIL: {e}")
    finally:
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
