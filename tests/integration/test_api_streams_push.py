"""The streams push topic: keyed-stream entries pushed over WebSocket and SSE as they are
published, by this process and by others, with nothing missed, doubled or out of order.

Four servers, each with three push clients (a WebSocket that asks for one key in its URL, a
WebSocket that first follows blocks and then subscribes to the key with a message, and an SSE
client of every key):
- `blockpipe serve` over an SQLite file (the default store, the output's own file);
- `blockpipe serve` with `--stream-store redis://` (a private redis-server);
- `blockpipe run` over a moving simnode chain into SQLite (its keyed streams in the output's
  file, which the pipeline commits to all the time) and the same with a Redis stream store.
Each client first gets {"type":"subscribed","after":ID}; then, while two threads POST to the
key and to another key (in-process publications) and four `blockpipe stream publish`
processes publish to both (publications of other processes), each client gets exactly the
store's entries after ID (the key's history, oldest first; for the every-key client each key's
history, in order per key, and the SQLite store's order over all keys) - each once, none
missing - and then the sentinel published last, with nothing in between.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import SSE, WS, Api, wait_http  # noqa: E402
from redis import Redis  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_api_rest import fail, start_api, stop  # noqa: E402

HANG = 120  # seconds: only a guard against a hang
TOKEN = "push-token"
KEY, OTHER = "pair:ETH/USD", "pair:BTC/USD"
POSTS, CLI_PROCS, CLI_EACH = 12, 4, 3


def post(api, key, value):
    got, _, body = api.request("POST", "/api/v1/streaming/" + key.replace("/", "%2F"),
                               body=json.dumps(value).encode(),
                               headers={"Content-Type": "application/json",
                                        "Authorization": f"Bearer {TOKEN}"})
    if got != 201:
        fail(f"POST {key}: {got} {body}")
    return body["data"]


def cli_publish(store, key, value):
    p = subprocess.run([os.environ["BLOCKPIPE"], "stream", "--store", store, "publish", key,
                        json.dumps(value)], capture_output=True, text=True, timeout=HANG)
    if p.returncode != 0:
        fail(f"blockpipe stream publish {key}: exit {p.returncode}: {p.stderr}")


def id_order(i):
    return tuple(int(x) for x in i.split("-"))


class Client:
    """A push client of the streams topic: its `after` and the entries it got, in order."""

    def __init__(self, name, port, key):
        self.name, self.key, self.got = name, key, []
        q = "&key=" + key.replace("/", "%2F") if key else ""
        if name == "ws-url":
            self.ws = WS(port, f"/api/ws?topics=streams{q}")
        elif name == "ws-message":  # blocks first, then the streams topic by a message
            self.ws = WS(port, "/api/ws?topics=blocks")
            self.ws.send(json.dumps({"subscribe": ["blocks", "streams"], "key": key}))
        else:
            self.sse = SSE(port, f"/api/events?topics=streams{q}")
            if self.sse.status != 200:
                fail(f"{name}: {self.sse.status_line}")
        self.after = self.started()

    def next(self):
        """The next streams message (other topics and the subscribe reply skipped)."""
        while True:
            m = (self.sse.next_event(timeout=HANG) or fail(f"{self.name}: closed"))["data"] \
                if hasattr(self, "sse") else self.ws.recv_json(timeout=HANG)
            if m.get("topic") == "streams":
                return m
            if m.get("type") == "error":
                fail(f"{self.name}: {m}")

    def started(self):
        m = self.next()
        if m["type"] != "subscribed" or m["key"] != self.key:
            fail(f"{self.name}: first streams message {m}, want subscribed to {self.key}")
        return m["after"]

    def entries(self, n):
        while len(self.got) < n:
            m = self.next()
            if m["type"] != "entry":
                fail(f"{self.name}: {m} among the entries")
            self.got.append(m["data"])
        return self.got

    def close(self):
        (self.sse if hasattr(self, "sse") else self.ws).close()


def history(api, key):
    data = api.ok(f"/api/v1/streaming/{key.replace('/', '%2F')}/history?count=1000")["data"]
    return data[::-1]


def check(api, store, label):
    port = api.port
    clients = [Client("ws-url", port, KEY), Client("ws-message", port, KEY),
               Client("sse-every", port, None)]
    sqlite = store.startswith("sqlite:")
    for c in clients:  # one position for every key in SQLite (its sequence), one per key in Redis
        if (c.after is None) != (c.key is None and not sqlite):
            fail(f"{label}: {c.name} subscribed after {c.after!r}")
    sent = {KEY: [], OTHER: []}

    def poster(t):
        for n in range(POSTS):
            key = OTHER if n % 4 == 3 else KEY
            v = {"by": f"post{t}", "n": n, "big": 10**30 + n}
            post(api, key, v)
            sent[key].append(v)

    def publisher(t):
        for n in range(CLI_EACH):
            key = OTHER if n == 1 else KEY
            v = {"by": f"cli{t}", "n": n}
            cli_publish(store, key, v)
            sent[key].append(v)

    threads = [threading.Thread(target=poster, args=(t,)) for t in range(2)]
    threads += [threading.Thread(target=publisher, args=(t,)) for t in range(CLI_PROCS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    kept = {k: history(api, k) for k in (KEY, OTHER)}
    for k in (KEY, OTHER):  # every publication is in the store once
        values = sorted(json.dumps(e["value"], sort_keys=True) for e in kept[k])
        if values != sorted(json.dumps(v, sort_keys=True) for v in sent[k]):
            fail(f"{label}: the history of {k} holds {len(values)} of the {len(sent[k])} entries")
    for c in clients:
        # SQLite: one position for every key (its sequence); Redis: the key's stream id, and
        # a key new to the every-key client is followed from its first entry
        want = {k: [(e["id"], e["value"]) for e in kept[k]
                    if (c.after is None and not sqlite) or id_order(e["id"]) > id_order(c.after)]
                for k in ((KEY, OTHER) if c.key is None else (KEY,))}
        got = c.entries(sum(len(w) for w in want.values()))
        for k, w in want.items():
            mine = [(e["id"], e["value"]) for e in got if e["key"] == k]
            if mine != w:
                fail(f"{label}: {c.name} got {[i for i, _ in mine]} of {k}, want "
                     f"{[i for i, _ in w]}")
        if sqlite and [e["id"] for e in got] != sorted((e["id"] for e in got), key=id_order):
            fail(f"{label}: {c.name}: not in the store's order: {[e['id'] for e in got]}")
        if len(want[KEY]) != len(sent[KEY]):
            fail(f"{label}: {c.name} started after {c.after}, {len(want[KEY])} of the "
                 f"{len(sent[KEY])} entries of {KEY} are after it")
    # nothing doubled or late: the next message of each is the sentinel
    cli_publish(store, KEY, {"sentinel": True})
    for c in clients:
        m = c.next()
        if m["type"] != "entry" or m["data"]["value"] != {"sentinel": True}:
            fail(f"{label}: {c.name}: after its entries {m}, want the sentinel")
        c.close()
    print(f"check: {label}: 2 WebSocket and 1 SSE clients got the {len(sent[KEY])} entries of "
          f"{KEY} ({len(sent[OTHER])} of {OTHER} for every key) after their position, once, in "
          f"order, from 2 POSTing threads and {CLI_PROCS} publishing processes", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = os.environ["BLOCKPIPE"]
    tmp = tempfile.mkdtemp(prefix="bp-streams-push-")
    redis, node, procs = Redis(), None, []
    try:
        node = Simnode(bp, ["--block-time", "0.3", "--start-head", "20", "--txs-per-block", "3"])
        for n, (label, cmd, store) in enumerate((
                ("serve/sqlite", "serve", None), ("serve/redis", "serve", redis.url(1)),
                ("run/sqlite", "run", None), ("run/redis", "run", redis.url(2)))):
            db = f"sqlite:{tmp}/bp{n}.db"
            if cmd == "serve":  # a file another process made: the store's table is created
                cli_publish(db, "seed", {"n": 0})
            args = [cmd, "--output", db, "--api-token", TOKEN, "--api-rate-limit", "0"]
            if cmd == "run":
                args += ["--rpc", node.urls[0], "--start-block", "0", "--poll-interval", "0.2"]
            if store:
                args += ["--stream-store", store]
            p, port = start_api(args, os.path.join(tmp, f"{n}.log"))
            procs.append(p)
            wait_http(port, HANG, p)
            api = Api(port)
            if cmd == "run":  # the pipeline commits while the entries come
                deadline = time.monotonic() + HANG
                while not (api.get("/api/sync-status")[2].get("outputs") or [{}])[0].get(
                        "checkpoint"):
                    if time.monotonic() > deadline:
                        fail(f"{label}: no block committed")
                    time.sleep(0.2)
            check(api, store or db, label)
            stop(p, label)
    except AssertionError as e:
        for n in range(4):
            path = os.path.join(tmp, f"{n}.log")
            if os.path.exists(path):
                print(f"--- {n}.log:\n" + open(path, errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if node:
            node.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"OK: the streams push topic over WebSocket and SSE, serve and run, SQLite and Redis "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
