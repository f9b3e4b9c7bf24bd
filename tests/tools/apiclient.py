"""apiclient.py - clients of blockpipe's HTTP API for the tests (Python 3 stdlib only): plain
HTTP requests, a WebSocket client, a Server-Sent Events client, and a replica that applies
push messages (apply / revert) so a test can compare what a client ends with against the
node's canonical chain.

    from apiclient import Api, WS, SSE, Replica
    api = Api(port)
    status, headers, body = api.get("/api/blocks?limit=5")     # body: parsed JSON (or text)
    ws = WS(port, "/api/ws?topics=blocks,transactions")
    msg = ws.recv_json(timeout=10)
    sse = SSE(port, "/api/events?topics=blocks")
    ev = sse.next_event(timeout=10)                           # {"id":..,"event":..,"data":..}
    rep = Replica(); rep.apply(msg); rep.check(node, head)     # raises AssertionError
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Api:
    def __init__(self, port: int, host: str = "127.0.0.1", token: str | None = None):
        self.port, self.host, self.token = port, host, token

    def request(self, method: str, path: str, body: bytes | None = None, headers=None,
                timeout: float = 30.0):
        """(status, headers as a lower-case dict, JSON body or text)."""
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        text = raw.decode("utf-8", "replace")
        if hdrs.get("content-type", "").startswith("application/json") and raw:
            return r.status, hdrs, json.loads(text)
        return r.status, hdrs, text

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def ok(self, path: str):
        status, _, body = self.get(path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body}")
        return body


# --api for a test: the kernel picks the port when blockpipe binds it, and api_port() reads it
# from the log. A port picked beforehand (free_port()) can be taken by another test between
# the pick and blockpipe's bind.
API_ANY = "127.0.0.1:0"
_LISTENING = re.compile(rb"api: listening on https?://[^ ]*:(\d+)/")


def log_size(path: str) -> int:
    """The log's size now: api_port(..., start=) for a process that appends to it."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def start_blockpipe(args, log_path):
    """$BLOCKPIPE with args, its output (both streams) in log_path, started: the Popen."""
    bp = os.environ["BLOCKPIPE"]
    print("running:", bp, " ".join(args), flush=True)
    return subprocess.Popen([bp, *args], stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def api_port(log_path: str, timeout: float, proc=None, start: int = 0) -> int:
    """The port of the API blockpipe started with --api HOST:0 writing its log to log_path:
    from its line 'api: listening on http://HOST:PORT/' (logged once the port is bound), the
    first one after byte start (a restart appending to the same log: log_size() before it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(log_path, "rb") as f:
                f.seek(start)
                m = _LISTENING.search(f.read())
            if m:
                return int(m.group(1))
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"blockpipe exited with {proc.returncode} before its API "
                                 f"listened (log {log_path})")
        if time.monotonic() >= deadline:
            raise AssertionError(f"no 'api: listening on' in {log_path} within {timeout} s")
        time.sleep(0.05)


def wait_http(port: int, timeout: float, proc=None):
    """Waits until GET /health answers 200 (the listener is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"blockpipe exited with {proc.returncode} before its API answered")
        try:
            if Api(port).get("/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the API on port {port} did not answer within {timeout} s")


class Closed(Exception):
    """The server closed the WebSocket: code and reason."""

    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code, self.reason = code, reason


class WS:
    """A WebSocket client (RFC 6455, no extensions): text messages, close code and reason."""

    def __init__(self, port: int, path: str, headers=None, timeout: float = 30.0,
                 deflate: bool = False, rcvbuf: int | None = None):
        if rcvbuf:  # a small receive window, set before connecting (a slow reader)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if deflate:
            extra += "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"{extra}\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed(None, "closed during the handshake: " + resp.decode("latin-1"))
            resp += chunk
        head, self.buf = resp.split(b"\r\n\r\n", 1)
        self.status_line = head.decode("latin-1").split("\r\n")[0]
        self.headers = head.decode("latin-1").lower()
        if " 101 " not in self.status_line + " ":
            raise Closed(None, "handshake refused: " + self.status_line)
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode().lower()
        if want not in self.headers:
            raise AssertionError("bad Sec-WebSocket-Accept")

    def send(self, data, opcode: int = 0x1, fin: bool = True):
        if isinstance(data, str):
            data = data.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None, "connection closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout: float = 30.0) -> str:
        """The next text message; Closed when the server closes."""
        self.sock.settimeout(timeout)
        parts = []
        while True:
            b0, b1 = self._exact(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode("utf-8", "replace"))
            if op == 0x9:
                self.send(payload, opcode=0xA)
                continue
            if op == 0xA:
                continue
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def recv_json(self, timeout: float = 30.0):
        return json.loads(self.recv(timeout))

    def close(self):
        try:
            self.send(struct.pack("!H", 1000), opcode=0x8)
        except OSError:
            pass
        self.sock.close()


class SSE:
    """A Server-Sent Events client on a raw socket: events with their id, event and data."""

    def __init__(self, port: int, path: str, headers=None, timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Accept: text/event-stream\r\n{extra}\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("SSE: closed before the headers: " + self.buf.decode())
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.decode("latin-1").split("\r\n")[0]
        self.status = int(self.status_line.split()[1])
        self.headers = head.decode("latin-1").lower()
        self.last_id = None

    def body(self, timeout: float = 10.0) -> str:
        """An error answer's body (the connection closes or sends content-length bytes)."""
        self.sock.settimeout(timeout)
        import re
        m = re.search(r"content-length: *(\d+)", self.headers)
        while not m or len(self.buf) < int(m.group(1)):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        return self.buf.decode("utf-8", "replace")

    def next_event(self, timeout: float = 30.0):
        """The next event as {"id", "event", "data"} (comments skipped); None when closed."""
        self.sock.settimeout(timeout)
        while True:
            while b"\n\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
            block, self.buf = self.buf.split(b"\n\n", 1)
            ev = {"id": None, "event": "message", "data": ""}
            data = []
            for line in block.decode().split("\n"):
                if not line or line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    data.append(v)
                elif k in ("id", "event"):
                    ev[k] = v
            if not data:
                continue
            ev["data"] = json.loads("\n".join(data))
            if ev["id"] is not None:
                self.last_id = ev["id"]
            return ev

    def close(self):
        self.sock.close()


class Replica:
    """What a client builds from push messages: blocks by number, transactions and logs by
    block hash. apply/revert follow the documented meaning: an apply adds the row, a revert
    drops the block and every transaction and log of it."""

    def __init__(self):
        self.blocks = {}  # number -> hash
        self.txs = {}     # block hash -> {index: tx hash}
        self.logs = {}    # block hash -> {log_index: (address, topic0)}
        self.reorgs = 0
        self.count = 0

    def apply(self, m: dict):
        self.count += 1
        topic, kind, bh = m["topic"], m["type"], m.get("block_hash")
        if topic == "reorgs":
            self.reorgs += 1
            return
        if kind == "revert":
            if topic == "blocks":
                if self.blocks.get(m["block_number"]) == bh:
                    del self.blocks[m["block_number"]]
            elif topic == "transactions":
                self.txs.pop(bh, None)
            elif topic == "logs":
                self.logs.pop(bh, None)
            return
        if kind != "apply":
            return
        d = m["data"]
        if topic == "blocks":
            self.blocks[d["number"]] = d["hash"]
        elif topic == "transactions":
            self.txs.setdefault(bh, {})[d["transaction_index"]] = d["hash"]
        elif topic == "logs":
            self.logs.setdefault(bh, {})[d["log_index"]] = (d["address"], d["topic0"])

    def check(self, node, head: int, first: int, label: str, topics=("blocks", "transactions",
                                                                     "logs")):
        """Exactly the node's canonical blocks first..head (hashes), their transactions (in
        index order) and logs, nothing of an orphaned block."""
        want_blocks, want_txs, want_logs = {}, {}, {}
        for n in range(first, head + 1):
            b = node.block(n, full=False)
            want_blocks[n] = b["hash"]
            want_txs[b["hash"]] = {i: h for i, h in enumerate(b["transactions"])}
            logs = {}
            for r in node.receipts(n) or []:
                for lg in r["logs"]:
                    logs[int(lg["logIndex"], 16)] = (lg["address"].lower(),
                                                     lg["topics"][0] if lg["topics"] else None)
            want_logs[b["hash"]] = logs
        errors = []
        if "blocks" in topics:
            got = {n: h for n, h in self.blocks.items() if n >= first}
            if got != want_blocks:
                extra = {n: h[:12] for n, h in got.items() if want_blocks.get(n) != h}
                missing = {n: h[:12] for n, h in want_blocks.items() if got.get(n) != h}
                errors.append(f"blocks differ: extra/wrong {extra}, missing {missing}")
        if "transactions" in topics:
            got = {h: t for h, t in self.txs.items() if t}
            want = {h: t for h, t in want_txs.items() if t}
            if got != want:
                errors.append(f"transactions differ: {len(got)} blocks with txs held, "
                              f"{len(want)} wanted; orphans "
                              f"{[h[:12] for h in got if h not in want]}")
        if "logs" in topics:
            got = {h: t for h, t in self.logs.items() if t}
            want = {h: t for h, t in want_logs.items() if t}
            if got != want:
                errors.append(f"logs differ: {len(got)} blocks with logs held, {len(want)} "
                              f"wanted; orphans {[h[:12] for h in got if h not in want]}")
        if errors:
            raise AssertionError(f"{label}: " + "; ".join(errors))
        print(f"check: {label}: blocks {first}..{head}, "
              f"{sum(len(t) for t in self.txs.values())} transactions, "
              f"{sum(len(t) for t in self.logs.values())} logs: exactly the canonical chain "
              f"({self.count} messages, {self.reorgs} reorg messages)", flush=True)
