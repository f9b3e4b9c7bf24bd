"""A big Arch block's push messages are built a piece at a time, as an EVM block's (docs/API.md
"Huge blocks").

simnode --chain-type arch serves heights 0 and 1 (1 appears BLOCK_TIME s after the node starts),
each of TXS transactions. `blockpipe run --chain-type arch` follows it into SQLite with the API on
and --api-push-memory 1 MiB (its least: pieces of 256 KiB); a Server-Sent Events client of blocks
and transactions attaches while the output has height 0 only and reads everything as it comes.
- The client must get block 1 exactly: its arch_blocks row, then one message per transaction the
  output holds, in tx_index order, each once (cursors strictly increasing).
- What the push hub holds (`memory.push_held` of /api/sync-status: every message alive, each
  once), polled while the client reads, must stay within the share and one piece beyond it (the
  hub builds no piece while the share is full, and the piece it builds may go beyond it). Block
  1's messages are several times that: they must be, or the test proves nothing.

What it caught: Arch blocks' messages were built whole (only EVM blocks went piece by piece), so
the hub held all of a block's messages at once whatever --api-push-memory said: here 7.7 MiB held
against the 1 MiB share (0.5 to 0.7 MiB now). Its counters, not the resident set, are what is measured: this runs on the
ASan build like the other Arch tests (test_memory_huge_block.py measures the EVM path's peak RSS on
a release build). A bound on bytes, not a timing: nothing is timed.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apiclient import API_ANY, Api, api_port, wait_http  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_push_head import Reader, stop_all  # noqa: E402

TXS = 8000
BLOCK_TIME = 10  # s: height 1 comes this long after the node starts
SHARE = 1 << 20  # --api-push-memory (its least)
PIECE = SHARE // 4


def fail(msg):
    raise AssertionError(msg)


class Seen(list):
    """What the reading client keeps of each message: (seq, ord, topic, height, tx_index,
    bytes); `done` once block 1's last transaction came."""

    def __init__(self):
        super().__init__()
        self.done = threading.Event()

    def append(self, m):
        _, seq, ord_ = m["cursor"].split("-")
        tx = m["topic"] == "transactions"
        idx = m["data"]["tx_index"] if tx else None
        super().append((int(seq), int(ord_), m["topic"], m["block_number"], idx,
                        len(json.dumps(m))))
        if tx and m["block_number"] == 1 and idx == TXS - 1:
            self.done.set()


def sync_status(api, proc):
    """/api/sync-status once it knows the chain: (its memory object, the output's checkpoint)."""
    deadline = time.monotonic() + 60
    while True:
        status, _, body = api.get("/api/sync-status", timeout=10)
        if status != 200:
            fail(f"/api/sync-status: {status} {body}")
        if body.get("chains") and body.get("outputs"):
            mem = body["chains"][0].get("memory")
            if not mem:
                fail(f"/api/sync-status has no memory object: {body}")
            return mem, body["outputs"][0].get("checkpoint")
        if proc.poll() is not None or time.monotonic() > deadline:
            fail(f"/api/sync-status never showed the chain: {body}")
        time.sleep(0.1)


def check_exact(seen, db):
    keys = [(s, o) for s, o, *_ in seen]
    if any(b <= a for a, b in zip(keys, keys[1:])):
        fail("the client's cursors do not strictly increase: a message came twice or out of order")
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        want = [r[0] for r in c.execute("SELECT tx_index FROM arch_transactions WHERE "
                                        "block_height = 1 ORDER BY tx_index")]
    finally:
        c.close()
    blocks = [s for s in seen if s[2] == "blocks" and s[3] == 1]
    got = [s[4] for s in seen if s[2] == "transactions" and s[3] == 1]
    if len(blocks) != 1:
        fail(f"block 1: {len(blocks)} block messages, not one")
    if len(want) != TXS or got != want:
        fail(f"block 1: the client got {len(got)} transaction messages, the output holds "
             f"{len(want)} (not exactly once each, in order)")
    first_tx = next(i for i, s in enumerate(seen) if s[2] == "transactions" and s[3] == 1)
    if seen.index(blocks[0]) > first_tx:
        fail("block 1's block message came after its transactions")
    return sum(s[5] for s in seen if s[3] == 1)


def main():
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--length", "2", "--txs-per-block", str(TXS),
                        "--block-time", str(BLOCK_TIME), "--start-head", "0"])
    started = time.monotonic()
    proc, reader = None, None
    try:
        with tempfile.TemporaryDirectory(prefix="bp-archhuge-") as tmp:
            db = os.path.join(tmp, "arch.db")
            logpath = os.path.join(tmp, "run.log")
            log = open(logpath, "w+")
            proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", node.urls[0],
                                     "--start-block", "0", "--output", f"sqlite:{db}",
                                     "--poll-interval", "0.2", "--api", API_ANY,
                                     "--api-push-memory", str(SHARE), "--api-rate-limit", "0",
                                     "--rpc-timeout", "120", "--log-level", "info"],
                                    stdout=log, stderr=subprocess.STDOUT)
            port = api_port(logpath, 60, proc)
            wait_http(port, 60, proc)
            api = Api(port)
            reader = Reader(port, "blocks,transactions")
            reader.msgs = seen = Seen()
            _, cp = sync_status(api, proc)
            if cp is not None and cp >= 1:
                fail(f"the client attached after height 1 was stored "
                     f"({time.monotonic() - started:.1f} s after the node started; height 1 "
                     f"comes at {BLOCK_TIME} s): too late to test anything")
            reader.start()
            peak, polls = 0, 0
            deadline = time.monotonic() + 600
            while not seen.done.is_set():
                m, _ = sync_status(api, proc)
                if m["push"] != SHARE:
                    fail(f"memory.push is {m['push']}, not the {SHARE} asked for")
                peak, polls = max(peak, m["push_held"]), polls + 1
                if proc.poll() is not None or reader.error or time.monotonic() > deadline:
                    log.seek(0)
                    fail(f"the client did not get block 1 whole ({len(seen)} messages; "
                         f"{reader.error or ''}): {log.read()[-3000:]}")
                time.sleep(0.02)
            reader.stop = True
            block_bytes = check_exact(seen, db)
            bound = SHARE + PIECE + 64 * 1024  # the share, one piece beyond it, one message
            print(f"Arch block 1 of {TXS} txs, {block_bytes / 1048576:.1f} MiB of messages, read "
                  f"whole by an SSE client: the hub held at most {peak / 1048576:.2f} MiB "
                  f"({polls} polls; bound {bound / 1048576:.2f} MiB, share "
                  f"{SHARE / 1048576:.0f} MiB)")
            if block_bytes < 3 * bound:
                fail(f"block 1's messages are {block_bytes} bytes, not several times the bound "
                     f"{bound}: the test would pass with them built whole")
            if peak > bound:
                fail(f"the push hub held {peak} bytes at once with a {SHARE}-byte share: a big "
                     f"Arch block's messages were built whole")
            print("ok")
    finally:
        stop_all(reader, proc, node)


if __name__ == "__main__":
    main()
