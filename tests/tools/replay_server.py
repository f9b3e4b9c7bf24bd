#!/usr/bin/env python3
"""replay_server.py - answers JSON-RPC from one ethereum-etl conformance case folder.

Each call (single or inside a batch) is answered with the recorded file named as in
conformance/README.md ("How a request maps to a recorded file name"), its "id" replaced by
the request's id. A call with no recording gets -32601 for eth_getBlockReceipts (which makes
the client fall back to eth_getTransactionReceipt, as ethereum-etl does) and -32000
"no recording for <name>" otherwise. eth_chainId and eth_blockNumber come from the options
unless a recording exists.

Answers a node would give that the recordings imply are derived rather than refused, so a
client may look at headers the way it likes: eth_getBlockByNumber(n, false) from the
recorded (n, true) answer (transactions replaced by their hashes), "latest" as the --head
block, and eth_getBlockByHash from whichever recorded block has that hash. These are
marked "derived" in the request log.

Listens on 127.0.0.1, port 0; the first stdout line is "PORT <n>". Exits on SIGTERM/SIGINT
or after --lifetime seconds (so a crashed test never leaves it behind).
Stdlib only.
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def flatten(value):
    """One params element as the ethereum-etl mock provider turns it into a name part."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list):
        return "_".join(flatten(v) for v in value)
    if isinstance(value, dict):
        return "_".join(f"{k}_{flatten(value[k])}" for k in sorted(value))
    return str(value).lower()


def recorded_name(method, params):
    params = params if isinstance(params, list) else ([] if params is None else [params])
    return f"web3_response.{method}_{'_'.join(flatten(p) for p in params)}.json"


def guess_head(folder):
    """Highest block number of the recorded blocks (used when --head is not given)."""
    best = 0
    for name in os.listdir(folder):
        m = re.match(r"web3_response\.eth_getBlockBy\w+_0x([0-9a-f]+)_", name)
        if m:
            best = max(best, int(m.group(1), 16))
    return best


class Replay:
    def __init__(self, folders, head, chain_id, request_log, reject_batch=False):
        self.reject_batch = reject_batch
        self.folders = folders
        self.head = head
        self.chain_id = chain_id
        self.request_log = request_log
        self.lock = threading.Lock()

    def find(self, name):
        for folder in self.folders:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
        return None

    def log(self, method, params, name, found):
        if not self.request_log:
            return
        with self.lock, open(self.request_log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": method, "params": params, "file": name,
                                "found": found}) + "\n")

    def load(self, name):
        path = self.find(name)
        if not path:
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def block_by_hash(self, block_hash):
        for folder in self.folders:
            for name in sorted(os.listdir(folder)):
                if name.startswith("web3_response.eth_getBlockByNumber_0x"):
                    resp = self.load(name)
                    result = resp.get("result") if resp else None
                    if result and str(result.get("hash", "")).lower() == block_hash:
                        return result
        return None

    def derive(self, method, params):
        """A block answer implied by the recordings (see the module comment), or None."""
        if method not in ("eth_getBlockByNumber", "eth_getBlockByHash") or len(params) != 2:
            return None
        key, full = str(params[0]).lower(), bool(params[1])
        if method == "eth_getBlockByHash":
            block = self.block_by_hash(key)
        else:
            if key == "latest":
                key = hex(self.head)
            resp = self.load(recorded_name(method, [key, True]))
            block = resp.get("result") if resp else None
        if block is None:
            return None
        block = dict(block)
        if not full:
            block["transactions"] = [t["hash"] if isinstance(t, dict) else t
                                     for t in block.get("transactions", [])]
        return {"result": block}

    def answer(self, call):
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": -32600, "message": "invalid request"}}
        rid, method, params = call.get("id"), call["method"], call.get("params", [])
        name = recorded_name(method, params)
        resp = self.load(name)
        found = resp is not None
        if resp is None and isinstance(params, list):
            resp = self.derive(method, params)
            found = "derived" if resp is not None else False
        self.log(method, params, name, found)
        if resp is not None:
            resp["jsonrpc"] = "2.0"
            resp["id"] = rid
            return resp
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(self.chain_id)}
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(self.head)}
        if method == "eth_getBlockReceipts":
            err = {"code": -32601, "message": "the method eth_getBlockReceipts does not exist"
                   "/is not available (method not found)"}
        else:
            err = {"code": -32000, "message": f"no recording for {name}"}
        return {"jsonrpc": "2.0", "id": rid, "error": err}


def make_handler(replay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                req = json.loads(raw)
            except ValueError:
                out = {"jsonrpc": "2.0", "id": None,
                       "error": {"code": -32700, "message": "parse error"}}
            else:
                if isinstance(req, list):
                    out = [replay.answer(c) for c in req]
                    missing = [a for a in out if a.get("error", {}).get("code") == -32601]
                    if replay.reject_batch and missing:
                        out = dict(missing[0], id=None)  # one error for the whole batch
                else:
                    out = replay.answer(req)
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # quiet: tests read stdout/stderr
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="case folder(s); the first with the file wins")
    ap.add_argument("--head", type=lambda s: int(s, 0), default=None,
                    help="eth_blockNumber answer (default: highest recorded block)")
    ap.add_argument("--chain-id", type=lambda s: int(s, 0), default=1)
    ap.add_argument("--request-log", help="append one JSON line per call here")
    ap.add_argument("--reject-batch", action="store_true",
                    help="answer a batch holding an unknown method with one error object, "
                         "as some gateways do")
    ap.add_argument("--lifetime", type=float, default=900.0, help="exit after this many s")
    args = ap.parse_args()
    for folder in args.folders:
        if not os.path.isdir(folder):
            sys.exit(f"replay_server: not a folder: {folder}")
    head = args.head if args.head is not None else max(guess_head(f) for f in args.folders)
    replay = Replay(args.folders, head, args.chain_id, args.request_log, args.reject_batch)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(replay))
    server.daemon_threads = True

    def stop(*_):
        # shutdown() waits for serve_forever, so it must run off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.lifetime, stop)
    timer.daemon = True
    timer.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
