"""rpcgate.py - an in-process JSON-RPC HTTP proxy whose behaviour a test switches while
blockpipe runs (stdlib only, a thread per connection).

    g = RpcGate(upstream_url)     # listens on 127.0.0.1, a free port: g.url
    g.hold_from = N               # requests naming a block >= N wait until g.release()
    g.hold_at = {N, ...}          # requests naming one of these blocks wait until g.release()
    g.held, g.held_min            # how many were held, the lowest block any of them named
    g.fail_block = N              # requests naming block N answer HTTP 500 (None: healed)
    g.down = True                 # every request: the connection is closed, no answer
    g.hang = True                 # requests naming no block (eth_chainId, the head) are
                                  # accepted and never answered (held until g.close());
                                  # requests naming a block are refused at once (so that a
                                  # worker's request is not held with its blocks)
    g.hang_except = {"eth_chainId"}   # with hang: these methods are answered
    g.holding                     # requests held by hang right now; g.held_log: their
                                  # (arrival, method) in arrival order
    g.upstream = other_url        # forward to another node from now on
    mark = g.switch(upstream=other_url, down=False)   # both at once: the arrival number
                                  # of the first request that sees the change
    g.calls["eth_chainId"]        # calls of a method answered so far (batches counted per
                                  # call); g.blocks(): block requests answered
    g.txids                       # Arch: the transactions get_processed_transaction was
                                  # answered for (their state as the node had it then)
    g.log                         # every call answered: (arrival, method, block number
                                  # named or None); arrival numbers the requests as they
                                  # came in (g.arrivals: how many so far), so that a test
                                  # can tell what came after a switch
    g.close()

"A block named" is the first parameter of eth_getBlockByNumber / eth_getBlockReceipts when
it is a hex number (not "latest"), or an Arch get_block_hash's height (a bare number or [n]).
"""

import collections
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK_METHODS = ("eth_getBlockByNumber", "eth_getBlockReceipts")


class RpcGate:
    def __init__(self, upstream):
        self.upstream = upstream
        self.hold_from = None
        self.hold_at = set()
        self.txids = set()
        self.fail_block = None
        self.down = False
        self.hang = False
        self.hang_except = set()
        self.holding = 0
        self.held_log = []
        self._closed = threading.Event()
        self.held = 0
        self.held_min = None
        self.failed = 0
        self.calls = collections.Counter()
        self.log = []
        self.arrivals = 0
        self._open = threading.Event()
        self._lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gate.answer(self, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def switch(self, upstream=None, down=None):
        """Changes upstream and/or down at once; returns the arrival number of the first
        request that sees the change."""
        with self._lock:
            if upstream is not None:
                self.upstream = upstream
            if down is not None:
                self.down = down
            return self.arrivals

    def blocks(self):
        return sum(self.calls[m] for m in BLOCK_METHODS)

    def release(self):
        self._open.set()

    def close(self):
        self._open.set()
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _named_blocks(calls):
        out = []
        for c in calls:
            p = c.get("params") or []
            if c.get("method") in BLOCK_METHODS and p and isinstance(p[0], str) and \
                    p[0].startswith("0x"):
                out.append(int(p[0], 16))
            elif c.get("method") == "get_block_hash":
                p = p[0] if isinstance(p, list) and p else p
                if isinstance(p, int) and not isinstance(p, bool):
                    out.append(p)
        return out

    def answer(self, h, body):
        with self._lock:  # what the proxy was when the request came in
            arrival, upstream, down = self.arrivals, self.upstream, self.down
            hang, hang_except = self.hang, set(self.hang_except)
            self.arrivals += 1
        if down:
            h.close_connection = True
            h.connection.close()
            return
        try:
            calls = json.loads(body)
        except ValueError:
            calls = []
        calls = calls if isinstance(calls, list) else [calls]
        named = self._named_blocks(calls)
        methods = [c.get("method") for c in calls]
        if hang and named:
            h.close_connection = True
            h.connection.close()
            return
        if hang and any(m not in hang_except for m in methods):
            with self._lock:
                self.holding += 1
                self.held_log.append((arrival, ",".join(map(str, methods))))
            self._closed.wait()  # accepted, never answered
            with self._lock:
                self.holding -= 1
            h.close_connection = True
            return
        if self.hold_from is not None and not self._open.is_set() and \
                any(n >= self.hold_from for n in named):
            with self._lock:
                self.held += 1
                low = min(named)
                self.held_min = low if self.held_min is None else min(self.held_min, low)
            self._open.wait(120)
        if self.hold_at and not self._open.is_set() and self.hold_at & set(named):
            with self._lock:
                self.held += 1
            self._open.wait(120)
        if self.fail_block is not None and self.fail_block in named:
            with self._lock:
                self.failed += 1
            return self._reply(h, 500, b"internal server error (injected by rpcgate)")
        req = urllib.request.Request(upstream, data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        except OSError:
            h.close_connection = True
            h.connection.close()
            return
        with self._lock:
            for c in calls:
                self.calls[c.get("method")] += 1
                if c.get("method") == "get_processed_transaction" and status == 200:
                    p = c.get("params")
                    p = p[0] if isinstance(p, list) and p else p
                    if isinstance(p, str):
                        self.txids.add(p)
                n = self._named_blocks([c])
                self.log.append((arrival, c.get("method"), n[0] if n else None))
        self._reply(h, status, data)

    @staticmethod
    def _reply(h, status, data):
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
