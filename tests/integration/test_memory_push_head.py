"""One chain at the head with push clients stays within its 20 MB (19.07 MiB) resident.

simnode makes a 200-tx block every second; `blockpipe run` follows it into SQLite with the
derived tables (the default) and the API on, as test_memory_budget_head.py does. Once its first
blocks are stored, two push clients subscribe to transactions and logs over Server-Sent Events:
- one reads everything as it comes;
- one sends its request and never reads (a 4 KiB receive buffer): its queue fills.
For 60 s the process's resident set (VmRSS, every half second) and at the end its peak
(VmHWM) must stay within 20 MB. The push hub builds the JSON messages of every transaction and
log of a block (about 0.7 MB a block here) and keeps them for its clients: before they were
charged to nothing, the built events of the last 256 blocks were kept whether or not a client
still needed them, and this run grew by about 0.8 MiB a block (64 MiB after 60 s). Now they are
kept within the push share of the budget (--api-push-memory, 3 MiB) and freed once every client
has passed them.

The reading client must get exactly the chain: for every block it saw whole, one message per
transaction and per log the output holds, in order, each once (cursors strictly increasing).
The client that does not read must be dropped (blockpipe_push_dropped_clients_total), not
hold memory. `/api/sync-status` must show the share (`memory.push`) and what it holds
(`memory.push_held`), and /metrics the same gauges. A budget, not a timing: nothing is timed.

As test_memory_budget.py, measured on a release build of these sources (made incrementally in
BP_BUILD_DIR/rss-release): AddressSanitizer's shadow memory would be what is measured otherwise.
"""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apiclient import SSE, Api, wait_http  # noqa: E402
from pg import free_port  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_budget import release_binary  # noqa: E402
from test_memory_budget_head import status_kib, stored  # noqa: E402

BUDGET_MIB = 20e6 / (1 << 20)  # 20 MB
SECONDS = 60
SHARE = 3 << 20  # --api-push-memory's default


def fail(msg):
    raise AssertionError(msg)


class Reader(threading.Thread):
    """An SSE client of transactions and logs (or topics) that reads as fast as they come."""

    def __init__(self, port, topics="transactions,logs"):
        super().__init__(daemon=True)
        self.sse = SSE(port, f"/api/events?topics={topics}")
        if self.sse.status != 200:
            fail(f"subscribing: {self.sse.status_line}")
        self.msgs = []
        self.stop = False
        self.error = None

    def run(self):
        try:
            while not self.stop:
                ev = self.sse.next_event(timeout=30)
                if ev is None:
                    self.error = "the server closed the reading client's stream"
                    return
                self.msgs.append(ev["data"])
        except OSError as e:
            if not self.stop:
                self.error = f"reading: {e}"


def stop_all(reader, proc, node):
    """The teardown of a push test: the reader's stream, blockpipe (by its PID), the node."""
    if reader:
        reader.stop = True
        reader.sse.close()
    if proc and proc.poll() is None:
        proc.terminate()
        proc.wait(60)
    node.kill()


def stalled_client(port):
    """A client that subscribes and never reads: the server's writes fill its socket, then the
    queue the hub keeps for it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/events?topics=transactions,logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
              f"Accept: text/event-stream\r\n\r\n".encode())
    return s


def cursor_key(c):
    _, seq, ord_ = c.split("-")
    return int(seq), int(ord_)


def check_exact(msgs, db):
    """Every block the reader saw whole (not its first or last) holds exactly the output's
    transactions and logs, in order, once each."""
    keys = [cursor_key(m["cursor"]) for m in msgs]
    if any(b <= a for a, b in zip(keys, keys[1:])):
        fail("the reading client's cursors do not strictly increase: a message came twice or "
             "out of order")
    if any(m["type"] != "apply" for m in msgs):
        fail("a revert or other message on a chain without reorgs")
    got = {}
    for m in msgs:
        d = m["data"]
        idx = d["transaction_index"] if m["topic"] == "transactions" else d["log_index"]
        got.setdefault((m["block_number"], m["block_hash"]), {}).setdefault(m["topic"], []).append(
            idx)
    blocks = sorted(got)[1:-1]
    if len(blocks) < SECONDS // 2:
        fail(f"the reading client saw only {len(blocks)} whole blocks in {SECONDS} s of 1 s "
             f"blocks")
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        for number, bhash in blocks:
            want = {
                "transactions": [r[0] for r in c.execute(
                    "SELECT transaction_index FROM transactions WHERE block_hash = ? ORDER BY "
                    "transaction_index", (bhash,))],
                "logs": [r[0] for r in c.execute(
                    "SELECT log_index FROM logs WHERE block_hash = ? ORDER BY log_index",
                    (bhash,))]}
            for topic in ("transactions", "logs"):
                have = got[(number, bhash)].get(topic, [])
                if have != want[topic]:
                    fail(f"block {number}: the client got {len(have)} {topic} messages, the "
                         f"output holds {len(want[topic])} (not exactly once each, in order)")
    finally:
        c.close()
    return blocks


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    fail(f"/metrics has no {name}")


def main():
    print(__doc__.strip())
    bp = release_binary()
    node = Simnode(bp, ["--block-time", "1", "--txs-per-block", "200", "--chain-id", "4000",
                        "--seed", "20"])
    proc, reader, stalled = None, None, None
    try:
        with tempfile.TemporaryDirectory(prefix="bp-pushmem-") as tmp:
            db = os.path.join(tmp, "head.db")
            port = free_port()
            cfg = {"output": f"sqlite:{db}", "log_level": "warn",
                   "api": f"127.0.0.1:{port}", "api_rate_limit": 0,
                   "chains": [{"name": "h", "chain_id": 4000, "rpc": node.urls[0]}]}
            path = os.path.join(tmp, "head.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            log = open(os.path.join(tmp, "head.log"), "w+")
            proc = subprocess.Popen([bp, "run", "--config", path], stdout=log,
                                    stderr=subprocess.STDOUT)
            wait_http(port, 60, proc)
            deadline = time.monotonic() + 120
            while stored(db) < 3:  # at the head: its first blocks are written
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    fail(f"no blocks stored: {log.read()[-3000:]}")
                time.sleep(0.5)
            reader = Reader(port)
            reader.start()
            stalled = stalled_client(port)
            top = 0
            end = time.monotonic() + SECONDS
            while time.monotonic() < end and proc.poll() is None:
                top = max(top, status_kib(proc.pid)["VmRSS"])
                time.sleep(0.5)
            if proc.poll() is not None:
                log.seek(0)
                fail(f"run exited {proc.returncode}: {log.read()[-3000:]}")
            hwm = status_kib(proc.pid)["VmHWM"]
            api = Api(port)
            mem = api.ok("/api/sync-status")["chains"][0].get("memory") or {}
            _, _, body = api.get("/metrics")
            metrics = body.decode() if isinstance(body, bytes) else body
            reader.stop = True
            blocks = stored(db)
            print(f"at the head with a reading and a stalled push client (transactions, logs): "
                  f"{blocks} blocks stored, {len(reader.msgs)} messages read, VmRSS up to "
                  f"{top / 1024:.2f} MiB, peak (VmHWM) {hwm / 1024:.2f} MiB, budget "
                  f"{BUDGET_MIB:.2f} MiB; memory {mem}")
            if reader.error:
                fail(reader.error)
            if top / 1024 > BUDGET_MIB:
                fail(f"VmRSS reached {top / 1024:.2f} MiB at the head with push clients, over "
                     f"the budget of {BUDGET_MIB:.2f} MiB (20 MB)")
            if hwm / 1024 > BUDGET_MIB:
                fail(f"the peak resident set (VmHWM) was {hwm / 1024:.2f} MiB with push clients, "
                     f"over the budget of {BUDGET_MIB:.2f} MiB (20 MB)")
            if mem.get("push") != SHARE or "push_held" not in mem:
                fail(f"/api/sync-status memory does not show the push share: {mem}")
            if metric(metrics, "blockpipe_memory_push_bytes") != SHARE:
                fail("blockpipe_memory_push_bytes is not the push share")
            metric(metrics, "blockpipe_memory_push_held_bytes")
            if metric(metrics, "blockpipe_push_dropped_clients_total") < 1:
                fail("the client that never reads was not dropped")
            whole = check_exact(reader.msgs, db)
            print(f"ok: within 20 MB with push clients; {len(whole)} whole blocks read exactly "
                  f"once; the stalled client was dropped")
    finally:
        if stalled:
            stalled.close()
        stop_all(reader, proc, node)


if __name__ == "__main__":
    main()
