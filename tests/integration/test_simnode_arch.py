"""`blockpipe simnode --chain-type arch` against the documented Arch Network shapes (docs/ARCH.md).

Run twice: in the default shape, the Rust SDK's wire format (Arch-Network/arch-sdk
sdk/src/types/block.rs, processed_transaction.rs, event.rs, pinned by
sdk/tests/rpc_wire_format.rs: what a current node answers), and with --arch-shape ts, the
TypeScript SDK's (SaturnBTC/arch-typescript-sdk src/struct/, websocket-client/types/events.ts).
Each run: two endpoints over one chain growing a block every 0.2 s, a depth-3 fork every 2 s and a
rollback / re-apply episode every 1.5 s; ep2 answers every call with an injected error and
drops its WebSocket every second.
1. HTTP (ep1): is_node_ready, get_block_count, get_best_block_hash,
   get_best_finalized_block_hash, get_block_hash (a number and the book's "680000" string
   form), get_block (the Block's keys in order and each one's type, the hash as ["hash"] and
   bare, parent links walked from the finalized block down), get_processed_transaction
   (params as the book's bare string and as an array; the ProcessedTransaction's keys in
   order and their types), 404 for an unknown block / tx, -32601 for an unknown method; ep2:
   -32000 on every call.
2. WebSocket (ep1): a subscription to each of the six topics with request_id echoed, an unknown
   topic refused; then events until a fork, a rollback and its re-apply, and a dkg event have
   come: every payload has exactly the keys of event.rs / events.ts; block events answer by
   get_block; transaction / account_update events name transactions the block announced next
   at their block_height lists; a rollback's transactions show rollback_status rolledback
   while it is simnode's newest episode (its /stats count), the re-apply (same hashes, same
   height) brings back notRolledback; a fork re-announces its branch
   from the fork point up, linked by previous_block_hash to the block below, while the orphaned
   block still answers by hash; unsubscribe answered.
3. ep2's WebSocket is dropped (no close frame) within a few seconds.
Waits are for the event itself with a deadline that only guards against a hang.
Stdlib only; needs BLOCKPIPE.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
HANG = 60
HEX = set("0123456789abcdef")
# The Rust SDK's wire format (arch-sdk), field by field:
RUST = {
    # sdk/src/types/block.rs struct Block, in its field order (serde writes them so);
    # rpc_wire_format.rs block_response_deserialization: hashes 32 byte numbers, timestamp
    # u128 milliseconds, bitcoin_block_height a number
    "block": ["transactions", "previous_block_hash", "timestamp", "block_height",
              "bitcoin_block_height"],
    # processed_transaction.rs struct ProcessedTransaction (processed_transaction_response_
    # deserialization; inner_instructions_list: inner_instruction.rs, a list per instruction)
    "ptx": ["runtime_transaction", "status", "bitcoin_txid", "logs", "rollback_status",
            "inner_instructions_list"],
    # Status: serde tag "type", content "message", camelCase (status_response_deserialization)
    "status_types": ("queued", "processed", "failed"),
}
# The TypeScript SDK's: struct/block.ts (hex strings, bitcoin_block_height a string, both
# transactions_count and merkle_root; simnode's timestamp in seconds), struct/processed-
# transaction.ts (no inner_instructions_list; status processing / processed / failed).
TS = {
    "block": ["transactions", "previous_block_hash", "timestamp", "block_height",
              "bitcoin_block_height", "transactions_count", "merkle_root"],
    "ptx": ["runtime_transaction", "status", "bitcoin_txid", "logs", "rollback_status"],
    "status_types": ("processing", "processed", "failed"),
}
SHAPE = RUST  # the run's (main)
# event.rs / events.ts: the same keys in both
EVENT_KEYS = {
    "block": {"hash", "timestamp"},
    "transaction": {"hash", "status", "program_ids", "block_height"},
    "account_update": {"account", "transaction_hash", "block_height"},
    "rolledback_transactions": {"transaction_hashes", "block_height"},
    "reapplied_transactions": {"transaction_hashes", "block_height"},
    "dkg": {"status"},
}


def fail(msg):
    raise AssertionError(msg)


def is_hash(s):
    return isinstance(s, str) and len(s) == 64 and set(s) <= HEX


def is_bytes(v, n):
    return isinstance(v, list) and len(v) == n and all(isinstance(x, int) and 0 <= x < 256
                                                       for x in v)


def is_hash_field(v):
    """A Hash field of a get_block answer: 32 byte numbers (Rust), 64 hex digits (TS)."""
    return is_bytes(v, 32) if SHAPE is RUST else is_hash(v)


def hexof(v):
    """A hash field as the hex a call takes (get_block's parameter)."""
    return v if isinstance(v, str) else bytes(v).hex()


def post(url, method, params, rid=1):
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        a = json.loads(r.read())
    if a.get("id") != rid or a.get("jsonrpc") != "2.0":
        fail(f"{method}: bad envelope {a}")
    return a


def call(url, method, params=None):
    a = post(url, method, [] if params is None else params)
    if "error" in a:
        fail(f"{method}({params}): error {a['error']}")
    return a["result"]


def check_block(b, height=None):
    if list(b) != SHAPE["block"]:
        fail(f"get_block keys {list(b)} != {SHAPE['block']}")
    ok = is_hash_field(b["previous_block_hash"]) and isinstance(b["block_height"], int) and \
        isinstance(b["timestamp"], int) and all(is_hash_field(t) for t in b["transactions"])
    if SHAPE is RUST:  # ms: 1e11 <= t < 1e14 for a date after 1973 (docs/ARCH.md)
        ok = ok and 10**11 <= b["timestamp"] < 10**14 and \
            isinstance(b["bitcoin_block_height"], int)
    else:
        ok = ok and b["timestamp"] < 10**11 and is_hash(b["merkle_root"]) and \
            isinstance(b["bitcoin_block_height"], str) and b["bitcoin_block_height"].isdigit() \
            and b["transactions_count"] == len(b["transactions"])
    if not ok:
        fail(f"get_block field types: {b}")
    if height is not None and b["block_height"] != height:
        fail(f"get_block: block_height {b['block_height']}, expected {height}")


def check_ptx(p):
    if list(p) != SHAPE["ptx"]:
        fail(f"get_processed_transaction keys {list(p)} != {SHAPE['ptx']}")
    rt = p["runtime_transaction"]
    if set(rt) != {"version", "signatures", "message"} or not all(is_bytes(s, 64)
                                                                  for s in rt["signatures"]):
        fail(f"runtime_transaction: {rt}")
    m = rt["message"]
    if set(m) != {"header", "account_keys", "recent_blockhash", "instructions"}:
        fail(f"message keys: {sorted(m)}")
    if set(m["header"]) != {"num_required_signatures", "num_readonly_signed_accounts",
                            "num_readonly_unsigned_accounts"}:
        fail(f"header: {m['header']}")
    if not all(is_bytes(k, 32) for k in m["account_keys"]) or not is_bytes(m["recent_blockhash"],
                                                                           32):
        fail(f"account_keys / recent_blockhash not 32-byte arrays: {m}")
    for ins in m["instructions"]:
        if set(ins) != {"program_id_index", "accounts", "data"} or \
                ins["program_id_index"] >= len(m["account_keys"]):
            fail(f"instruction: {ins}")
    st = p["status"]
    if st.get("type") not in SHAPE["status_types"] or \
            (st["type"] == "failed") != isinstance(st.get("message"), str):
        fail(f"status: {st}")
    if SHAPE is RUST and (len(p["inner_instructions_list"]) != len(m["instructions"]) or
                          not all(x == [] for x in p["inner_instructions_list"])):
        fail(f"inner_instructions_list: {p['inner_instructions_list']}")
    if p["bitcoin_txid"] is not None and not is_bytes(p["bitcoin_txid"], 32):
        fail(f"bitcoin_txid: {p['bitcoin_txid']}")
    if p["rollback_status"].get("type") not in ("notRolledback", "rolledback"):
        fail(f"rollback_status: {p['rollback_status']}")


def check_http(url, bad_url):
    if call(url, "is_node_ready") is not True:
        fail("is_node_ready is not true")
    count = call(url, "get_block_count")
    best = call(url, "get_best_block_hash")
    fin = call(url, "get_best_finalized_block_hash")
    if not (isinstance(count, int) and count > 10 and is_hash(best) and is_hash(fin)):
        fail(f"count {count}, best {best}, finalized {fin}")
    if call(url, "get_block_hash", [5]) != call(url, "get_block_hash", ["5"]):
        fail("get_block_hash: a number and its digits name different blocks")
    b = call(url, "get_block", [fin])  # the book's ["hash"]
    check_block(b)
    if call(url, "get_block", fin) != b:  # the Rust SDK's bare string (docs/ARCH.md item 19)
        fail("get_block: a bare hash and [hash] answer differently")
    h, walked = fin, 0
    while b["block_height"] > 0 and walked < 6:  # parent links, down from the finalized block
        prev = hexof(b["previous_block_hash"])
        parent = call(url, "get_block", [prev])
        check_block(parent, b["block_height"] - 1)
        if call(url, "get_block_hash", [parent["block_height"]]) != prev:
            fail(f"finalized chain: get_block_hash({parent['block_height']}) is not the parent")
        h, b, walked = prev, parent, walked + 1
    txs = 0
    for n in range(1, 12):
        blk = call(url, "get_block", [call(url, "get_block_hash", [n])])
        check_block(blk, n)
        for t in map(hexof, blk["transactions"]):
            p1 = call(url, "get_processed_transaction", t)  # the book's bare string
            p2 = call(url, "get_processed_transaction", [t])
            if p1 != p2:
                fail("get_processed_transaction: bare and array params differ")
            check_ptx(p1)
            txs += 1
    if txs == 0:
        fail("no transactions in blocks 1..11")
    for method, param in (("get_block", "ab" * 32), ("get_processed_transaction", "cd" * 32)):
        e = post(url, method, [param]).get("error")
        if not e or e.get("code") != 404:
            fail(f"{method} of an unknown hash: expected error 404, got {e}")
    e = post(url, "no_such_method", []).get("error")
    if not e or e.get("code") != -32601:
        fail(f"unknown method: expected -32601, got {e}")
    e = post(bad_url, "get_block_count", []).get("error")
    if not e or e.get("code") != -32000:
        fail(f"ep2 (error_rate=1): expected -32000, got {e}")
    print(f"http: count={count}, {walked} parent links, {txs} transactions checked")


class Ws:
    """A minimal RFC 6455 client."""

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
                fail("handshake: connection closed")
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            fail(f"bad handshake answer: {head!r}")

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask, n = os.urandom(4), len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0xfe]) + struct.pack(">H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def frame(self, timeout):
        """(opcode, payload); (None, b"") when the peer closed the TCP connection."""
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

    def message(self, timeout=HANG):
        op, data = self.frame(timeout)
        if op != 1:
            fail(f"expected a text frame, got opcode {op}")
        return json.loads(data)


def subscribe_all(ws, early):
    """Subscribes to every topic; events that come between the answers go to `early`."""
    ids = {}

    def answer():
        while True:
            a = ws.message()
            if "subscription_id" in a:
                return a
            early.append(a)
    for i, topic in enumerate(EVENT_KEYS):
        ws.send({"method": "subscribe", "params": {"topic": topic, "filter": {},
                                                   "request_id": f"req_{i}"}})
        a = answer()
        if a.get("status") != "Subscribed" or a.get("topic") != topic or \
                a.get("request_id") != f"req_{i}" or not a.get("subscription_id"):
            fail(f"subscribe {topic}: {a}")
        ids[topic] = a["subscription_id"]
    if len(set(ids.values())) != len(ids):
        fail(f"subscription ids repeat: {ids}")
    ws.send({"method": "subscribe", "params": {"topic": "nonsense", "request_id": "x"}})
    a = answer()
    if a.get("status") != "Error" or a.get("request_id") != "x":
        fail(f"an unknown topic was not refused: {a}")
    return ids


class Events:
    """The stream's state and the checks made as events arrive."""

    def __init__(self, node, episode0):
        self.node, self.url = node, node.urls[0]
        self.by_height = {}  # height -> the block hash last announced there
        self.top = -1
        self.forks = self.rollbacks = self.reapplies = self.dkg = 0
        self.states = {"rolledback": 0, "notRolledback": 0}  # checked, per state
        self.pending = None  # the last rollback: (height, hashes)
        self.count = {t: 0 for t in EVENT_KEYS}
        self.txs = {}  # height -> txs named by transaction / account_update events
        self.episode = episode0  # the index of the next rollback / re-apply event

    def on_block(self, d):
        b = call(self.url, "get_block", [d["hash"]])
        check_block(b)
        # event.rs BlockEvent: the u128 as a string (block_event_timestamp_serializes_as_string)
        want = str(b["timestamp"]) if SHAPE is RUST else b["timestamp"]
        if d["timestamp"] != want:
            fail(f"block event timestamp {d['timestamp']!r} != get_block's {want!r}")
        n = b["block_height"]
        if n <= self.top:  # a fork: the new branch from its fork point up
            old = self.by_height.get(n)
            if old is None or old == d["hash"]:
                fail(f"block {n} announced again with the same hash")
            if call(self.url, "get_block", [old])["block_height"] != n:
                fail("the orphaned block no longer answers by hash")
            self.forks += 1
        named, listed = self.txs.pop(n, set()), set(map(hexof, b["transactions"]))
        if not named <= listed:
            fail(f"block {n}: events named transactions {named - listed} that it does not list")
        below = self.by_height.get(n - 1)
        if below is not None and hexof(b["previous_block_hash"]) != below:
            fail(f"block {n}: previous_block_hash {b['previous_block_hash']} is not the block "
                 f"announced at {n - 1} ({below})")
        self.by_height[n] = d["hash"]
        self.top = n
        self.txs = {k: v for k, v in self.txs.items() if k > n}  # a fork's orphans

    def on_episode(self, topic, d):
        hashes, n = d["transaction_hashes"], d["block_height"]
        if not hashes or not all(is_hash(h) for h in hashes):
            fail(f"{topic}: {d}")
        want = "rolledback" if topic == "rolledback_transactions" else "notRolledback"
        if topic == "rolledback_transactions":
            self.pending = (n, hashes)
            self.rollbacks += 1
        else:
            # (the first episode event may re-apply a rollback from before the subscription)
            if self.pending != (n, hashes) and (self.pending or self.rollbacks):
                fail(f"reapplied {d} is not the last rollback {self.pending}")
            self.pending = None
            self.reapplies += 1
        j, self.episode = self.episode, self.episode + 1
        # The state is certain while this episode is the newest (simnode counts them).
        before = self.node.stats()["episodes"]
        got = [post(self.url, "get_processed_transaction", [h]) for h in hashes]
        if before != j + 1 or self.node.stats()["episodes"] != j + 1:
            return
        for h, a in zip(hashes, got):
            if "error" in a:  # forked away since: unknown again
                continue
            if a["result"]["rollback_status"]["type"] != want:
                fail(f"{topic}: tx {h} has rollback_status {a['result']['rollback_status']}")
            self.states[want] += 1

    def on(self, msg):
        topic, d = msg.get("topic"), msg.get("data")
        if topic not in EVENT_KEYS or set(d) != EVENT_KEYS[topic]:
            fail(f"event keys: {msg}")
        self.count[topic] += 1
        if topic == "block":
            self.on_block(d)
        elif topic in ("transaction", "account_update"):
            h = d["hash"] if topic == "transaction" else d["transaction_hash"]
            if topic == "transaction" and not tx_status_ok(d["status"]):
                fail(f"transaction status: {d}")
            if topic == "account_update" and not is_hash(d["account"]):
                fail(f"account: {d}")
            # checked against the block's own list when its block event comes (after them)
            self.txs.setdefault(d["block_height"], set()).add(h)
        elif topic == "dkg":
            self.dkg += 1
        else:
            self.on_episode(topic, d)

    def done(self):
        return self.forks >= 1 and self.reapplies >= 1 and self.dkg >= 1 and \
            min(self.states.values()) >= 1 and all(self.count.values())


def tx_status_ok(st):
    """event.rs TransactionEvent.status is a Status (serde: {"type": "processed"} /
    {"type": "failed", "message"}); events.ts: "Processed" or {"Failed": message}."""
    if SHAPE is RUST:
        return isinstance(st, dict) and (st == {"type": "processed"} or (
            set(st) == {"type", "message"} and st["type"] == "failed" and
            isinstance(st["message"], str)))
    return st == "Processed" or (isinstance(st, dict) and list(st) == ["Failed"] and
                                 isinstance(st["Failed"], str))


def subscribed(node):
    """A connection subscribed to every topic with the index of its first episode event: the
    episode count when no episode came while it subscribed (else it tries again)."""
    for _ in range(10):
        e0 = node.stats()["episodes"]
        ws, early = Ws(node.port(0)), []
        ids = subscribe_all(ws, early)
        if node.stats()["episodes"] == e0:
            return ws, ids, early, e0
        ws.s.close()
    fail("an episode came during every one of 10 subscriptions")


def check_ws(node):
    ws, ids, early, e0 = subscribed(node)
    ev = Events(node, e0)
    for msg in early:
        ev.on(msg)
    end = time.monotonic() + HANG
    while not ev.done():
        if time.monotonic() > end:
            fail(f"timed out waiting for events: {ev.count}, forks {ev.forks}")
        ev.on(ws.message(timeout=max(0.1, end - time.monotonic())))
    ws.send({"method": "unsubscribe", "params": {"topic": "block",
                                                 "subscription_id": ids["block"]}})
    while True:
        a = ws.message()
        if "topic" not in a or "subscription_id" in a:
            break
    if a.get("status") != "Unsubscribed" or a.get("subscription_id") != ids["block"]:
        fail(f"unsubscribe: {a}")
    print(f"ws: events {ev.count}, forks {ev.forks}, rollbacks {ev.rollbacks}, "
          f"re-applies {ev.reapplies}, rollback states checked {ev.states}")


def check_drop(port):
    ws = Ws(port)
    ws.send({"method": "subscribe", "params": {"topic": "block", "request_id": "r"}})
    end = time.monotonic() + HANG
    while time.monotonic() < end:
        op, _ = ws.frame(timeout=HANG)
        if op is None:
            print("ws: ep2 dropped its connection (ws_drop_every=1)")
            return
    fail("ep2's WebSocket was never dropped")


def run(shape):
    global SHAPE
    SHAPE = shape
    name = "rust" if shape is RUST else "ts"
    print(f"--arch-shape {name}")
    node = Simnode(BLOCKPIPE, ["--chain-type", "arch", "--arch-shape", name, "--block-time", "0.2",
                               "--start-head", "30", "--txs-per-block", "1-4", "--reorg-every",
                               "2", "--reorg-depth", "3", "--rollback-every", "1.5", "--faults",
                               "ep2:error_rate=1,ws_drop_every=1"], endpoints=2)
    try:
        check_http(node.urls[0], node.urls[1])
        check_ws(node)
        check_drop(node.port(1))
        st = node.stop()
        if st.get("chain_type") != "arch" or st["episodes"] < 2 or st["reorgs"] < 1:
            fail(f"simnode counters: {st}")
        print(f"simnode: head {st['head']}, reorgs {st['reorgs']}, episodes {st['episodes']}")
    finally:
        node.kill()


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE is not set")
    run(RUST)
    run(TS)
    print("ok")


if __name__ == "__main__":
    main()
