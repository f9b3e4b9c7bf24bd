"""`blockpipe simnode` over WebSocket (eth_subscribe newHeads), raw and under `blockpipe run --ws`.

1. Raw client, three endpoints (ep2 lag=5, ep3 ws_silent=1), a block every 0.2 s and a
   depth-3 reorg every 1 s: the handshake's accept key, ping/pong, eth_blockNumber over the
   socket, a subscription id; until >= 10 heads with >= 2 re-announced branches have come,
   every announced head links to the head announced just below it (a reorg re-announces its
   branch from the fork point up, in order); ep2's heads are 5 behind; ep3 accepts the
   subscription and announces nothing while ep1 gets those heads; eth_unsubscribe answers
   true and no head comes while two more blocks are made; a close is answered with a close.
2. `blockpipe run --rpc HTTP --ws WS` against a block every 0.2 s, a depth-3 reorg every
   2 s, until its realtime line says mode=websocket with heads from the socket and it has
   reported a reorg; after SIGINT (exit 0) the SQLite blocks are 0..checkpoint once with
   unbroken parent links, every field of every block, transaction and log equal to simnode's
   block of that hash (the newest included), those at least 4 below the checkpoint on
   simnode's canonical chain; the JSON-lines stream, replayed, ends as the same chain with
   the same rows, and the rows of the blocks it reverted are those blocks' (by hash).
3. The same with ws_drop_every=1: simnode drops the socket every second; blockpipe reports
   reconnects >= 1 and the outputs are still exact.
Every wait is for the event itself, with a deadline that only guards against a hang.
Stdlib only; needs BLOCKPIPE.
"""

import base64
import hashlib
import json
import os
import re
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import wait_until  # noqa: E402
from rtcheck import Blockpipe  # noqa: E402
from simnode import Simnode as _Simnode  # noqa: E402
import rowcheck  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEPTH = 3
CHAIN = "1337"  # simnode's default chain id
HANG = 60  # seconds: only a guard against a hang, never a measure


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
        """Every head that arrives within `seconds` (a silence check: nothing must come)."""
        return self.heads_until(lambda hs: False, seconds, into, quiet_ok=True)

    def heads_until(self, done, timeout, into, quiet_ok=False):
        """Reads heads into `into` until done(into); fails after `timeout` s (a hang guard)."""
        end = time.monotonic() + timeout
        while not done(into):
            left = end - time.monotonic()
            if left <= 0:
                if quiet_ok:
                    return into
                fail(f"timed out after {timeout} s waiting for heads: {len(into)} so far")
            try:
                op, data = self.frame(timeout=left)
            except socket.timeout:
                continue
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
        heads = ws.heads_until(lambda hs: len(hs) >= 10 and check_links(hs) >= 2, HANG, [])
        reorgs = check_links(heads)
        # every head from the first up to now, heads that came in the meantime included
        lag_heads = lagged.heads_until(lambda hs: len(hs) >= 1, HANG, [])
        lagged.heads(0.2, lag_heads)
        head = node.stats()["head"]
        if int(lag_heads[-1]["number"], 16) > head - 5:
            fail(f"lag=5 endpoint announced {lag_heads[-1:]} with the head at {head}")
        # subscribed before the >= 10 heads above were announced to ep1: it would have some
        if silent.heads(0.5, []):
            fail("ws_silent endpoint announced a head")
        after = []
        if ws.call("eth_unsubscribe", [sub], heads=after).get("result") is not True:
            fail("eth_unsubscribe did not answer true")
        gone = node.stats()["head"]
        wait_for(lambda: node.stats()["head"] >= gone + 2, "two blocks after eth_unsubscribe")
        late = ws.heads(0.3, [])
        if late:
            fail(f"heads announced after eth_unsubscribe: {[h['number'] for h in late]}")
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


def wait_for(pred, what, timeout=None):
    try:
        wait_until(pred, timeout or HANG, what, 0.1)
    except TimeoutError as e:
        fail(str(e))


def follow(tmp, name, faults, extra, want_reconnect=False):
    """`blockpipe run --ws` until it has taken heads from the socket, seen a reorg (and
    reconnected when asked), then SIGINT; its outputs must be simnode's chain."""
    args = ["--reorg-every", "2"] + (["--faults", faults] if faults else [])
    node = Simnode(args)
    bp = None
    try:
        url = node.urls[0]
        bp = Blockpipe(tmp, ["--rpc", url, "--ws", url.replace("http://", "ws://"),
                             "--start-block", "0", "--stats-interval", "0.5", *extra], name)
        bp.wait_realtime(lambda r: r.get("mode") == "websocket" and r.get("heads", 0) > 0,
                         HANG, "mode=websocket with heads from the socket")
        bp.wait_log(r"reorg: \d+ block\(s\) orphaned", HANG, "a reorg reported on stderr")
        if want_reconnect:
            bp.wait_realtime(lambda r: r.get("reconnects", 0) >= 1, HANG, "reconnects >= 1")
        bp.stop()
        rt = bp.last_realtime()
        heads, reconnects = int(rt["heads"]), int(rt["reconnects"])
        if heads <= 0:
            fail(f"{name}: the last realtime line counts no head: {rt}")
        # simnode reorgs on after the stop: blocks above the reorg depth may be orphaned
        # since (they are compared by hash), the others must be canonical
        cp, data, counts = rowcheck.sqlite_branch_exact(url, bp.db, CHAIN, DEPTH + 1)
        # the blocks it reverted are served by hash too: their rows are compared as well
        orphans = rowcheck.fetch(url, rowcheck.jsonl_reverted(bp.jsonl))
        rowcheck.jsonl_exact(bp.jsonl, data, CHAIN, orphans, f"{name} (jsonl)")
        st = node.stop()
        print(f"{name}: {cp + 1} blocks, {counts['transactions']} txs, {counts['logs']} logs "
              f"exact in SQLite and JSON lines ({len(orphans)} reverted blocks' rows too), "
              f"heads={heads} reconnects={reconnects}, "
              f"simnode reorgs={st['reorgs']} ws={st['endpoints'][0]['ws']}")
        return reconnects, st["endpoints"][0]["ws"]
    finally:
        if bp:
            bp.kill()
        node.kill()


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE must point at the blockpipe binary")
    raw_protocol()
    with tempfile.TemporaryDirectory(prefix="bp_simnode_ws.") as tmp:
        follow(tmp, "websocket", None, [])
        reconnects, ws = follow(tmp, "drops", "ws_drop_every=1",
                                ["--ws-reconnect-interval", "0.2"], want_reconnect=True)
        if reconnects < 1 or ws["drops"] < 1:
            fail(f"drops: reconnects={reconnects}, simnode drops={ws['drops']}")
    print("test_simnode_ws: ok")


if __name__ == "__main__":
    main()
