"""`blockpipe simnode` over WebSocket (eth_subscribe newHeads), raw and under `blockpipe run --ws`.

1. Raw client, three endpoints (ep2 lag=5, ep3 ws_silent=1), a block every 0.2 s and a
   depth-3 reorg every 1 s: the handshake's accept key, ping/pong, eth_blockNumber over the
   socket, a subscription id; for ~3 s every announced head links to the head announced
   just below it (a reorg re-announces its branch from the fork point up, in order); ep2's
   heads are 5 behind; ep3 accepts the subscription and announces nothing; eth_unsubscribe
   answers true; a close is answered with a close.
2. `blockpipe run --rpc HTTP --ws WS` for ~9 s against a block every 0.2 s, a depth-3 reorg
   every 2 s: realtime mode=websocket, heads > 0, reorgs reported; after SIGINT (exit 0) the
   SQLite chain is simnode's canonical one at least 4 below the checkpoint, parent links
   unbroken.
3. The same with ws_drop_every=1: simnode drops the socket every second; blockpipe reports
   reconnects >= 1 and the output is still exact.
Stdlib only; needs BLOCKPIPE.
"""

import base64
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode as _Simnode  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEPTH = 3


def fail(msg):
    raise AssertionError(msg)


def Simnode(args, endpoints=1):
    """simnode growing a block every 0.2 s, small blocks, reorgs of DEPTH when asked."""
    return _Simnode(BLOCKPIPE, ["--block-time", "0.2", "--txs-per-block", "0-5",
                                "--reorg-depth", str(DEPTH)] + list(args), endpoints)


class Ws:
    """A minimal RFC 6455 client: masked text frames out, whole frames in."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.s.recv(4096)
            if not d:
                fail(f"handshake: connection closed after {buf!r}")
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        want = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or b"Sec-WebSocket-Accept: " + want not in head:
            fail(f"bad handshake answer: {head!r}")
        self.ids = 0

    def send(self, data, op=1):
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else
                                    bytes([0xfe]) + struct.pack(">H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def frame(self, timeout=5):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, at = self.buf[1] & 0x7f, 2
                if n == 126:
                    n, at = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
                if len(self.buf) >= at + n:
                    op, data = self.buf[0] & 0x0f, self.buf[at:at + n]
                    self.buf = self.buf[at + n:]
                    return op, data
            d = self.s.recv(65536)
            if not d:
                return None, b""
            self.buf += d

    def call(self, method, params, heads=None):
        self.ids += 1
        self.send(json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method,
                              "params": params}).encode())
        while True:
            op, data = self.frame()
            msg = json.loads(data)
            if msg.get("id") == self.ids:
                return msg
            if heads is not None:
                heads.append(msg["params"]["result"])

    def heads(self, seconds, into):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                op, data = self.frame(timeout=max(0.05, end - time.monotonic()))
            except socket.timeout:
                break
            if op != 1:
                fail(f"unexpected frame opcode {op}")
            msg = json.loads(data)
            if msg.get("method") != "eth_subscription":
                fail(f"not a notification: {msg}")
            into.append(msg["params"]["result"])
        return into


def check_links(heads):
    """Each head's parent is the head announced last at number - 1."""
    seen, reorgs = {}, 0
    for h in heads:
        n = int(h["number"], 16)
        for k in ("hash", "parentHash", "timestamp", "stateRoot", "logsBloom"):
            if k not in h:
                fail(f"head {n} has no {k}: {sorted(h)}")
        if n - 1 in seen and seen[n - 1] != h["parentHash"]:
            fail(f"head {n}'s parent {h['parentHash']} is not the head announced at {n - 1}")
        if n in seen:
            reorgs += 1
        seen = {k: v for k, v in seen.items() if k < n}
        seen[n] = h["hash"]
    return reorgs


def raw_protocol():
    node = Simnode(["--reorg-every", "1", "--faults", "ep2:lag=5;ep3:ws_silent=1"], endpoints=3)
    try:
        ws = Ws(node.port(0))
        ws.send(b"hello", op=9)
        if ws.frame() != (10, b"hello"):
            fail("ping not answered with its pong")
        bn = ws.call("eth_blockNumber", [])
        if not bn.get("result", "").startswith("0x"):
            fail(f"eth_blockNumber over the socket: {bn}")
        sub = ws.call("eth_subscribe", ["newHeads"])["result"]
        if not re.fullmatch(r"0x[0-9a-f]+", sub):
            fail(f"subscription id {sub!r}")
        bad = ws.call("eth_subscribe", ["logs"], heads=[])
        if bad.get("error", {}).get("code") != -32602:
            fail(f"eth_subscribe logs: {bad}")
        lagged, silent = Ws(node.port(1)), Ws(node.port(2))
        lagged.call("eth_subscribe", ["newHeads"])
        if "result" not in silent.call("eth_subscribe", ["newHeads"]):
            fail("ws_silent endpoint refused the subscription")
        heads = ws.heads(3.5, [])
        reorgs = check_links(heads)
        if len(heads) < 10 or reorgs < 2:
            fail(f"{len(heads)} heads with {reorgs} reorgs in 3.5 s")
        lag_heads = lagged.heads(0.5, [])
        head = node.stats()["head"]
        if not lag_heads or int(lag_heads[-1]["number"], 16) > head - 5:
            fail(f"lag=5 endpoint announced {lag_heads[-1:]} with the head at {head}")
        if silent.heads(0.5, []):
            fail("ws_silent endpoint announced a head")
        after = []
        if ws.call("eth_unsubscribe", [sub], heads=after).get("result") is not True:
            fail("eth_unsubscribe did not answer true")
        if ws.heads(0.6, []):
            fail("heads announced after eth_unsubscribe")
        ws.send(struct.pack(">H", 1000), op=8)
        op, data = ws.frame()
        if op != 8:
            fail(f"close answered with opcode {op}")
        st = node.stop()
        ep = st["endpoints"]
        if ep[0]["ws"]["heads"] < len(heads) or ep[2]["ws"]["heads"] != 0:
            fail(f"ws counters: {[e['ws'] for e in ep]}")
        print(f"raw: {len(heads)} heads, {reorgs} re-announced branches; counters "
              f"{[e['ws'] for e in ep]}")
    finally:
        node.kill()


def db_rows(db):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cp = c.execute("SELECT number FROM checkpoints").fetchone()[0]
        rows = c.execute("SELECT number, hash, parent_hash FROM blocks ORDER BY number").fetchall()
    finally:
        c.close()
    return cp, rows


def check_chain(node, cp, rows):
    if [r[0] for r in rows] != list(range(cp + 1)):
        fail(f"blocks are not exactly 0..{cp} once each ({len(rows)} rows)")
    for i in range(1, len(rows)):
        if rows[i][2] != rows[i - 1][1]:
            fail(f"parent link broken at block {rows[i][0]}")
    res = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(cp + 1)])
    bad = [n for n, h, _ in rows if n <= cp - DEPTH - 1 and (res[n] or {}).get("hash") != h]
    if bad:
        fail(f"{len(bad)} blocks differ from simnode's canonical chain, first {bad[0]}")


def follow(tmp, name, faults, extra, seconds):
    args = ["--reorg-every", "2"] + (["--faults", faults] if faults else [])
    node = Simnode(args)
    try:
        db = os.path.join(tmp, f"{name}.db")
        url = node.urls[0]
        run = subprocess.Popen([BLOCKPIPE, "run", "--rpc", url, "--ws",
                                url.replace("http://", "ws://"), "--start-block", "0",
                                "--stats-interval", "0.5", "--output", f"sqlite:{db}", *extra],
                               stderr=subprocess.PIPE, text=True)
        time.sleep(seconds)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=30)
        if run.returncode != 0:
            fail(f"{name}: run exited {run.returncode}:\n{err[-3000:]}")
        lines = re.findall(r"stats realtime mode=(\S+) .*? heads=(\d+) reconnects=(\d+)", err)
        if not lines:
            fail(f"{name}: no `stats realtime` line:\n{err[-3000:]}")
        modes = {m for m, _, _ in lines}
        heads, reconnects = int(lines[-1][1]), int(lines[-1][2])
        if "websocket" not in modes or heads <= 0:
            fail(f"{name}: realtime modes {modes}, heads {heads}:\n{err[-3000:]}")
        if "reorg" not in err:
            fail(f"{name}: no reorg reported:\n{err[-3000:]}")
        cp, rows = db_rows(db)
        check_chain(node, cp, rows)
        st = node.stop()
        print(f"{name}: {cp + 1} blocks exact, heads={heads} reconnects={reconnects}, "
              f"simnode reorgs={st['reorgs']} ws={st['endpoints'][0]['ws']}")
        return reconnects, st["endpoints"][0]["ws"]
    finally:
        node.kill()


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE must point at the blockpipe binary")
    raw_protocol()
    with tempfile.TemporaryDirectory(prefix="bp_simnode_ws.") as tmp:
        follow(tmp, "websocket", None, [], 9)
        reconnects, ws = follow(tmp, "drops", "ws_drop_every=1",
                                ["--ws-reconnect-interval", "0.2"], 9)
        if reconnects < 1 or ws["drops"] < 1:
            fail(f"drops: reconnects={reconnects}, simnode drops={ws['drops']}")
    print("test_simnode_ws: ok")


if __name__ == "__main__":
    main()
