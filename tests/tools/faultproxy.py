#!/usr/bin/env python3
"""faultproxy.py - HTTP proxy in front of a JSON-RPC URL that injects faults on a schedule.

  faultproxy.py --upstream http://127.0.0.1:8545 --faults garbage,truncate,http500,hang,429,reset,ok --every 3

Every --every-th request (3rd, 6th, ...) gets the next fault of the list, cycling; the other
requests are forwarded unchanged. Fault kinds:
  garbage   HTTP 200 with a body that is not JSON
  truncate  the upstream answer cut in half (HTTP 200, consistent Content-Length)
  http500   HTTP 500 with a short text body
  hang      no answer for --hang-seconds (default 40, bounded), then the connection closes
  429       HTTP 429 with "Retry-After: 1"
  reset     the TCP connection is reset (RST) without an answer
  ok        forwarded unchanged (a slot in the schedule without a fault)
Counts per kind (and "requests", "forwarded") are written as JSON to --stats-file on every
change (atomically, via rename).

Listens on 127.0.0.1 port 0 and prints "PORT <n>" as the first stdout line. Threaded, so a
hang does not block other requests. Exits on SIGTERM/SIGINT or after --lifetime seconds.
Stdlib only.
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("garbage", "truncate", "http500", "hang", "429", "reset", "ok")


class Schedule:
    def __init__(self, faults, every, stats_file):
        self.faults = faults
        self.every = every
        self.stats_file = stats_file
        self.lock = threading.Lock()
        self.count = 0
        self.stats = {k: 0 for k in KINDS}
        self.stats.update(requests=0, forwarded=0)
        self._write()

    def next_fault(self):
        """The fault for the request arriving now ("ok" for an unscheduled one)."""
        with self.lock:
            self.count += 1
            self.stats["requests"] += 1
            fault = "ok"
            if self.faults and self.count % self.every == 0:
                fault = self.faults[(self.count // self.every - 1) % len(self.faults)]
                self.stats[fault] += 1
            self._write()
            return fault

    def note_forwarded(self):
        with self.lock:
            self.stats["forwarded"] += 1
            self._write()

    def _write(self):
        if not self.stats_file:
            return
        tmp = self.stats_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.stats, f, sort_keys=True)
        os.replace(tmp, self.stats_file)


def make_handler(upstream, schedule, hang_seconds, only_methods=(), pass_latest=False):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self, body):
            req = urllib.request.Request(upstream, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            schedule.note_forwarded()
            return status, data

        def reply(self, status, body, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def reset(self):
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            spared = pass_latest and b'"latest"' in body
            if spared or (only_methods and not any(m.encode() in body for m in only_methods)):
                status, data = self.forward(body)  # not a request the faults are meant for
                self.reply(status, data)
                return
            fault = schedule.next_fault()
            if fault == "garbage":
                self.reply(200, b"<html>502 proxy garbage \x00\xff not json</html>")
            elif fault == "http500":
                self.reply(500, b"internal server error (injected by faultproxy)")
            elif fault == "429":
                self.reply(429, b'{"error":"too many requests (injected)"}',
                           [("Retry-After", "1")])
            elif fault == "hang":
                time.sleep(hang_seconds)
                self.close_connection = True
            elif fault == "reset":
                self.reset()
            elif fault == "truncate":
                status, data = self.forward(body)
                self.reply(status, data[: len(data) // 2])
            else:
                self.reply(*self.forward(body))

        def log_message(self, fmt, *args):
            pass

    return Handler


def parse_faults(text):
    faults = [f.strip() for f in text.split(",") if f.strip()]
    for f in faults:
        if f not in KINDS:
            sys.exit(f"faultproxy: unknown fault '{f}' (known: {', '.join(KINDS)})")
    return faults


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="JSON-RPC URL to forward to")
    ap.add_argument("--faults", default="", help="comma-separated schedule: " + ",".join(KINDS))
    ap.add_argument("--every", type=int, default=1, help="every N-th request gets a fault")
    ap.add_argument("--stats-file", help="JSON counts per fault kind, rewritten on change")
    ap.add_argument("--hang-seconds", type=float, default=40.0)
    ap.add_argument("--lifetime", type=float, default=900.0, help="exit after this many s")
    ap.add_argument("--port", type=int, default=0, help="listen port (0: a free one)")
    ap.add_argument("--only-methods", default="",
                    help="comma-separated JSON-RPC methods: only requests naming one of them "
                         "get faults (default: every request)")
    ap.add_argument("--pass-latest", action="store_true",
                    help="forward requests naming the \"latest\" block (head polls) unharmed")
    args = ap.parse_args()
    if args.every < 1:
        sys.exit("faultproxy: --every must be >= 1")
    schedule = Schedule(parse_faults(args.faults), args.every, args.stats_file)
    only = tuple(m for m in args.only_methods.split(",") if m)
    handler = make_handler(args.upstream, schedule, min(args.hang_seconds, 40.0), only,
                           args.pass_latest)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True  # a hanging handler must not keep the process alive

    def stop(*_):
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
