"""Push over WebSocket and Server-Sent Events through reorgs: every client ends with exactly
the canonical chain, reconnecting clients included.

`blockpipe run --api` follows anvil (heads over anvil's WebSocket). Before new blocks come,
these clients subscribe to blocks, transactions, logs and reorgs:
- a WebSocket client and an SSE client that stay connected;
- a WebSocket client that drops its connection three times and comes back with
  ?since=<its last cursor>, and an SSE client that does the same with Last-Event-ID;
- a WebSocket client that subscribes by message to transactions of one address only;
- an SSE client of the status and metrics topics;
- an SSE client of transactions with min_value=2^64 wei (a 256-bit comparison), and a
  WebSocket client of the logs one contract emits (address filter on the logs topic).
Then anvil mines blocks of every transaction type and reorgs the chain (anvil_reorg, depth 1
to 3, with and without a block after), 6 times. When blockpipe has the node's head, each
replica (apply adds, revert drops the block and all of it) must equal the node's canonical
chain from its first block: blocks by number and hash, transactions in index order, logs. The
reconnecting clients' cursors must strictly increase across reconnects (nothing twice) and
their replicas are exact too (nothing missed). The filtered client must hold exactly the
address's transactions, the min_value client exactly the transactions of at least 2^64 wei,
the emitter client exactly that contract's logs; the status client must see the head. A cursor of another run, and one
that is malformed, are refused with the reason.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, log_calldata, wait_until  # noqa: E402
from apiclient import API_ANY, SSE, WS, Api, Closed, Replica, api_port, wait_http  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "777"))
HANG = 180
TOPICS = "blocks,transactions,logs,reorgs"
MIN_VALUE = 2 ** 64  # wei: only the workload's big transfers reach it


def check_reorg_events(api):
    """/api/realtime/events lists each reorg with the blocks it reverted (from the lowest,
    `block`, up) and the new branch's blocks applied after them in the same batch
    (from that lowest number up)."""
    ev = api.ok("/api/realtime/events")
    reorgs = [e for e in ev["events"] if e["type"] == "reorg"]
    if ev["counts"]["reorg"] < 6 or len(reorgs) < 6:
        fail(f"/api/realtime/events: want the 6 reorgs: {ev['counts']} {reorgs}")
    applied = 0
    for e in reorgs:
        rv, ap = e["reverted"], e["applied"]
        if rv["from"] != e["block"] or rv["to"] - rv["from"] + 1 != rv["count"] or \
                not 1 <= rv["count"] <= 3:
            fail(f"/api/realtime/events: reorg {e}: reverted is not the blocks from-to")
        if ap["count"] and (ap["from"] != e["block"] or ap["to"] - ap["from"] + 1 != ap["count"]):
            fail(f"/api/realtime/events: reorg {e}: applied is not the new branch from "
                 f"{e['block']}")
        applied += ap["count"] > 0
    if not applied:
        fail(f"/api/realtime/events: no reorg lists the blocks applied after it: {reorgs}")
    print(f"check: /api/realtime/events lists the {len(reorgs)} reorgs with their reverted "
          f"blocks ({applied} with the new branch's applied in the same batch), e.g. "
          f"{reorgs[0]}", flush=True)


def check_value_and_emitter(node, first, head, value, emitter_client, emitter):
    """The min_value client holds exactly the canonical transactions of at least MIN_VALUE wei,
    the emitter client exactly the canonical logs of `emitter` (reverted blocks dropped)."""
    want_tx, want_logs, below, others = {}, {}, 0, 0
    for n in range(first, head + 1):
        b = node.block(n, True)
        hs = {i: t["hash"] for i, t in enumerate(b["transactions"])
              if int(t["value"], 16) >= MIN_VALUE}
        below += len(b["transactions"]) - len(hs)
        if hs:
            want_tx[b["hash"]] = hs
        lg = {}
        for rc in node.receipts(n):
            for x in rc["logs"]:
                if x["address"].lower() == emitter:
                    lg[int(x["logIndex"], 16)] = (emitter, x["topics"][0] if x["topics"] else None)
                else:
                    others += 1
        if lg:
            want_logs[b["hash"]] = lg
    if not want_tx or not below:
        fail(f"the workload must make transactions on both sides of min_value: "
             f"{len(want_tx)} blocks above, {below} below")
    got = {h: t for h, t in value.rep.txs.items() if t}
    if got != want_tx:
        fail(f"sse-value: transactions {got} != the node's of >= {MIN_VALUE} wei: {want_tx}")
    if not want_logs:
        fail(f"the workload made no log of {emitter} (want some to check the filter)")
    got = {h: {i: (a.lower(), t0) for i, (a, t0) in lg.items()}
           for h, lg in emitter_client.rep.logs.items() if lg}
    if got != want_logs:
        fail(f"ws-emitter: logs {got} != the node's of {emitter}: {want_logs}")
    print(f"check: sse-value: exactly the {sum(len(v) for v in want_tx.values())} transactions "
          f"of >= 2^64 wei ({below} below it not sent); ws-emitter: exactly the "
          f"{sum(len(v) for v in want_logs.values())} logs of {emitter[:10]}… ({others} of "
          f"other emitters not sent)", flush=True)


def fail(msg):
    raise AssertionError(msg)


def cursor_key(c):
    epoch, seq, ord_ = c.split("-")
    return (int(seq), int(ord_))


class Client(threading.Thread):
    """Reads one push connection (and its reconnections) into a Replica."""

    def __init__(self, name, port, kind, path, reconnects=0, subscribe=None):
        super().__init__(daemon=True)
        self.name, self.port, self.kind, self.path = name, port, kind, path
        self.reconnects_left, self.subscribe = reconnects, subscribe
        self.rep, self.cursors, self.error = Replica(), [], None
        self.status_heads = []
        self.stop = False
        self.conn = None
        self.ready = threading.Event()
        self.reconnected = 0
        self.start()

    def connect(self, since):
        if self.kind == "ws":
            path = self.path + (f"&since={since}" if since else "")
            self.conn = WS(self.port, path)
            if self.subscribe:
                self.conn.send(self.subscribe)
                ack = self.conn.recv_json(30)
                if ack.get("type") != "subscribed":
                    fail(f"{self.name}: subscribe answered {ack}")
        else:
            hdrs = {"Last-Event-ID": since} if since else None
            self.conn = SSE(self.port, self.path, headers=hdrs)
            if self.conn.status != 200:
                fail(f"{self.name}: {self.conn.status_line} {self.conn.body()}")

    def next_msg(self):
        if self.kind == "ws":
            return self.conn.recv_json(HANG)
        ev = self.conn.next_event(HANG)
        if ev is None:
            raise Closed(None, "SSE stream ended")
        if ev["id"] is not None and ev["data"].get("cursor") != ev["id"]:
            fail(f"{self.name}: SSE id {ev['id']} != message cursor {ev['data'].get('cursor')}")
        return ev["data"]

    def run(self):
        try:
            self.connect(None)
            self.ready.set()
            since = None
            rng = random.Random(hash(self.name) & 0xffff)
            budget = rng.randrange(15, 40)
            while not self.stop:
                try:
                    m = self.next_msg()
                except (Closed, OSError) as e:
                    if self.stop:
                        return
                    raise AssertionError(f"{self.name}: connection lost: {e}")
                if m["topic"] in ("status", "metrics"):
                    if m["data"].get("chains"):
                        self.status_heads.append(m["data"]["chains"][0]["indexed"])
                    elif "indexed" in m["data"]:
                        self.status_heads.append(m["data"]["indexed"])
                    continue
                if m.get("cursor"):
                    if self.cursors and cursor_key(m["cursor"]) <= cursor_key(self.cursors[-1]):
                        fail(f"{self.name}: cursor {m['cursor']} after {self.cursors[-1]}: a "
                             f"message twice or out of order")
                    self.cursors.append(m["cursor"])
                    since = m["cursor"]
                self.rep.apply(m)
                budget -= 1
                if self.reconnects_left and budget <= 0:
                    self.conn.close()
                    time.sleep(0.3)  # messages committed meanwhile must come on reconnect
                    self.connect(since)
                    self.reconnects_left -= 1
                    self.reconnected += 1
                    budget = rng.randrange(15, 40)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
            self.ready.set()

    def close(self):
        self.stop = True
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


def reorg_txs(rng, wl, depth):
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    for _ in range(rng.randrange(0, 3)):
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(1, 5))}, rng.randrange(depth)])
    return pairs


def check_refusals(port, api):
    try:
        WS(port, f"/api/ws?topics=blocks&since=deadbeef-1-0").recv(30)
        fail("a WebSocket with a cursor of another run was not refused")
    except Closed as e:
        if e.code != 4400 or "another run" not in e.reason:
            fail(f"cursor of another run: want close 4400 'another run', got {e.code} {e.reason}")
    s = SSE(port, "/api/events?topics=blocks", headers={"Last-Event-ID": "garbage"})
    body = s.body()
    if s.status != 400 or "since" not in body:
        fail(f"SSE with Last-Event-ID garbage: want 400 naming since, got {s.status} {body}")
    s.close()
    try:
        WS(port, "/api/ws?topics=planets").recv(30)
        fail("a WebSocket with an unknown topic was not refused")
    except Closed as e:
        if e.code != 4400 or "planets" not in e.reason:
            fail(f"unknown topic: want close 4400 naming it, got {e.code} {e.reason}")
    print("check: cursors of another run / malformed, unknown topics: refused with the reason",
          flush=True)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-apipush-")
    node = Anvil()
    proc, clients = None, []
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(3):
            wl.mine_batch(rng.randrange(1, 4))
        cmd = [os.environ["BLOCKPIPE"], "run", "--rpc", node.url, "--ws",
               "ws://" + node.url.split("://", 1)[1], "--start-block", "0", "--output",
               f"sqlite:{tmp.name}/bp.db", "--api", API_ANY, "--poll-interval",
               "0.2", "--api-rate-limit", "0"]
        print("running:", " ".join(cmd), flush=True)
        log = os.path.join(tmp.name, "bp.log")
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        port = api_port(log, HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)
        head0 = node.block_number()
        wait_until(lambda: api.ok("/api/sync-status")["chains"] and
                   api.ok("/api/sync-status")["chains"][0]["indexed"] == head0, HANG,
                   "initial sync")
        addr = wl.accounts[1].lower()
        emitter = wl.contracts[0].lower()  # the logger setup() deployed; later deploys add others
        clients = [
            Client("ws", port, "ws", f"/api/ws?topics={TOPICS}"),
            Client("sse", port, "sse", f"/api/events?topics={TOPICS}"),
            Client("ws-reconnect", port, "ws", f"/api/ws?topics={TOPICS}", reconnects=3),
            Client("sse-reconnect", port, "sse", f"/api/events?topics={TOPICS}", reconnects=3),
            Client("ws-address", port, "ws", "/api/ws?topics=blocks",
                   subscribe=f'{{"subscribe": ["blocks", "transactions"], "address": "{addr.upper()}"}}'
                   .replace("0X", "0x")),
            Client("sse-status", port, "sse", "/api/events?topics=status,metrics"),
            Client("sse-value", port, "sse",
                   f"/api/events?topics=blocks,transactions&min_value={MIN_VALUE}"),
            Client("ws-emitter", port, "ws", f"/api/ws?topics=blocks,logs&address={emitter}"),
        ]
        for c in clients:
            c.ready.wait(HANG)
            if c.error:
                raise c.error
        time.sleep(0.5)  # every client is attached before the first new block
        check_refusals(port, api)
        for _ in range(4):
            wl.mine_batch(rng.randrange(1, 5))
            time.sleep(0.2)
        for depth in (1, 2, 3):
            for extra in (0, 1):
                before = node.block_number()
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                for _ in range(extra):
                    wl.mine_batch(rng.randrange(1, 4))
                # let blockpipe see each reorg on its own (several at once are fine too)
                want = node.block(node.block_number(), False)["hash"]
                wait_until(lambda: api.ok("/api/blocks/latest")["data"]["hash"] == want, HANG,
                           f"reorg depth {depth} +{extra} committed")
                print(f"reorg depth {depth} (+{extra}) at {before}: committed", flush=True)
        for _ in range(3):
            wl.mine_batch(rng.randrange(1, 5))
            time.sleep(0.2)
        head = node.block_number()
        head_hash = node.block(head, False)["hash"]
        wait_until(lambda: api.ok("/api/blocks/latest")["data"]["hash"] == head_hash, HANG,
                   "blockpipe at the node's head")

        def caught_up():
            for c in clients:
                if c.error:
                    raise c.error
            return all(c.rep.blocks.get(head) == head_hash for c in clients
                       if c.name not in ("sse-status",))
        try:
            wait_until(caught_up, HANG, "every client at the head")
        except TimeoutError as e:
            fail(f"{e}: " + ", ".join(f"{c.name} at {max(c.rep.blocks, default=None)}"
                                      for c in clients))
        # the head's transactions and logs follow its block message: wait until every client
        # holds at least what it will be checked for of the head (the checks below are exact)
        hb = node.block(head, True)
        head_logs = [lg for r in node.receipts(head) or [] for lg in r["logs"]]
        head_want = {n: (len(hb["transactions"]), len(head_logs))
                     for n in ("ws", "sse", "ws-reconnect", "sse-reconnect")}
        head_want["ws-address"] = (sum(addr in (t["from"].lower(), (t.get("to") or "").lower())
                                       for t in hb["transactions"]), 0)
        head_want["sse-value"] = (sum(int(t["value"], 16) >= MIN_VALUE
                                      for t in hb["transactions"]), 0)
        head_want["ws-emitter"] = (0, sum(lg["address"].lower() == emitter for lg in head_logs))

        def head_complete():
            for c in clients:
                if c.error:
                    raise c.error
                if c.name == "sse-status":
                    if not c.status_heads or max(c.status_heads) < head:
                        return False
                    continue
                txs, logs = head_want[c.name]
                if len(c.rep.txs.get(head_hash, {})) < txs or \
                        len(c.rep.logs.get(head_hash, {})) < logs:
                    return False
            return True
        try:
            wait_until(head_complete, HANG, "every client to hold the head's transactions, "
                       "logs and status")
        except TimeoutError as e:
            fail(f"{e}: " + ", ".join(f"{c.name} {len(c.rep.txs.get(head_hash, {}))} txs "
                                      f"{len(c.rep.logs.get(head_hash, {}))} logs"
                                      for c in clients) + f"; want {head_want}")
        first = head0 + 1
        for c in clients[:4]:
            c.rep.check(node, head, first, c.name)
            if c.rep.reorgs < 6:
                fail(f"{c.name}: {c.rep.reorgs} reorg messages, want at least 6")
        for c in clients[2:4]:
            if c.reconnected != 3:
                fail(f"{c.name}: reconnected {c.reconnected} times, want 3")
        print("check: the reconnecting clients came back 3 times each with their cursor; "
              "cursors strictly increase (nothing twice), replicas exact (nothing missed)",
              flush=True)
        want = {}
        for n in range(first, head + 1):
            b = node.block(n, True)
            hs = {i: t["hash"] for i, t in enumerate(b["transactions"])
                  if addr in (t["from"].lower(), (t.get("to") or "").lower())}
            if hs:
                want[b["hash"]] = hs
        got = {h: t for h, t in clients[4].rep.txs.items() if t}
        if got != want:
            fail(f"ws-address: transactions {got} != the node's for {addr}: {want}")
        print(f"check: ws-address: exactly the {sum(len(v) for v in want.values())} "
              f"transactions of {addr[:10]}… (subscribed by message)", flush=True)
        if not clients[5].status_heads or max(clients[5].status_heads) != head:
            fail(f"sse-status: status/metrics messages said {clients[5].status_heads[-5:]}, "
                 f"want the head {head}")
        print(f"check: sse-status: {len(clients[5].status_heads)} status/metrics messages, "
              f"the last at head {head}", flush=True)
        check_value_and_emitter(node, first, head, clients[6], clients[7], emitter)
        check_reorg_events(api)
        for c in clients:
            c.close()
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            fail(f"blockpipe exited with {proc.returncode} after SIGINT")
    except (AssertionError, TimeoutError) as e:
        print(open(os.path.join(tmp.name, "bp.log"), errors="replace").read()[-4000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for c in clients:
            c.close()
        if proc and proc.poll() is None:
            proc.kill()
        node.stop()
        tmp.cleanup()
    print(f"OK: WebSocket and SSE clients, reconnecting ones included, hold exactly the "
          f"canonical chain after 6 reorgs ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
