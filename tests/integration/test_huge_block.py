"""A block of 50,000 transactions with receipts, end to end (issue: huge blocks).

simnode --txs-per-block 50000 serves blocks 0..2 (genesis empty; the answer for one block and its receipts is
about 140 MB; blockpipe decodes it while it is received). `blockpipe backfill 0..2` into
SQLite must exit 0 and hold exactly simnode's chain: every tx hash in order with its sender,
input and receipt gas, every log's address, data and topics, the log count of every tx.
A second run of the same range resumes and writes nothing twice.
Peak RSS is printed (not asserted: this build has AddressSanitizer; docs/PERFORMANCE.md has
the release figure). Stdlib only; needs BLOCKPIPE.
"""

import os
import resource
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
TXS = 50000


def fail(msg):
    raise AssertionError(msg)


def backfill(url, db):
    cmd = [BLOCKPIPE, "backfill", "--rpc", url, "--from", "0", "--to", "2", "--workers", "2",
           "--output", f"sqlite:{db}", "--log-level", "warn", "--rpc-timeout", "120"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        fail(f"backfill exited {p.returncode}: {p.stderr[-3000:]}")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def check_block(node, db, n):
    block, receipts = node.rpc_batch([("eth_getBlockByNumber", [hex(n), True]),
                                      ("eth_getBlockReceipts", [hex(n)])])
    c = sqlite3.connect(db)
    rows = c.execute("SELECT hash, from_address, input, receipt_gas_used FROM transactions "
                     "WHERE block_number = ? ORDER BY transaction_index", (n,)).fetchall()
    if len(rows) != len(block["transactions"]):
        fail(f"block {n}: {len(rows)} txs stored, simnode has {len(block['transactions'])}")
    for i, (tx, rc, row) in enumerate(zip(block["transactions"], receipts, rows)):
        want = (tx["hash"], tx["from"], tx["input"], int(rc["gasUsed"], 16))
        if tuple(row) != want:
            fail(f"block {n} tx {i}: stored {row!r}, simnode {want!r}")
    logs = [lg for rc in receipts for lg in rc["logs"]]
    got = c.execute("SELECT log_index, transaction_hash, address, data, topic0, topic1, topic2, "
                    "topic3 FROM logs WHERE block_number = ? ORDER BY log_index",
                    (n,)).fetchall()
    if len(got) != len(logs):
        fail(f"block {n}: {len(got)} logs stored, simnode has {len(logs)}")
    for lg, row in zip(logs, got):
        topics = lg["topics"] + [None] * (4 - len(lg["topics"]))
        want = (int(lg["logIndex"], 16), lg["transactionHash"], lg["address"], lg["data"],
                *topics)
        if tuple(row) != want:
            fail(f"block {n} log {want[0]}: stored {row!r}, simnode {want!r}")
    c.close()
    return len(rows), len(logs)


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE is not set")
    node = Simnode(BLOCKPIPE, ["--length", "3", "--txs-per-block", str(TXS), "--block-time",
                               "0"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-huge-") as tmp:
            db = os.path.join(tmp, "huge.db")
            rss = backfill(node.urls[0], db)
            total = [check_block(node, db, n) for n in range(3)]
            if [t for t, _ in total] != [0, TXS, TXS]:  # simnode's genesis has no txs
                fail(f"tx counts {total}")
            backfill(node.urls[0], db)  # resumes at the checkpoint: nothing again
            c = sqlite3.connect(db)
            n = c.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
            c.close()
            if n != 2 * TXS:
                fail(f"{n} transactions after the second run, want {2 * TXS}")
            print(f"ok: 2 blocks of {TXS} txs, {sum(lg for _, lg in total)} logs; "
                  f"peak RSS {rss:.0f} MiB (sanitizer build)")
    finally:
        node.kill()


if __name__ == "__main__":
    main()
