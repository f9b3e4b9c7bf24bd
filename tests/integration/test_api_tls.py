"""The API over TLS (--api-tls-cert / --api-tls-key) and WebSocket permessage-deflate.

A self-signed certificate is made with the openssl command. `blockpipe serve` with it must
answer HTTPS (GET /health, /api/blocks), refuse plain HTTP on the same port, and upgrade a
WebSocket over TLS (WSS) whose subscription is acknowledged. Without TLS, a WebSocket client
that offers permessage-deflate must get it in the handshake and its messages compressed
(RSV1 frames that inflate to the JSON acknowledgement). A certificate without its key is
refused at start (exit 2).
"""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import wait_until  # noqa: E402
from apiclient import API_ANY, WS, api_port  # noqa: E402

HANG = 60


def fail(msg):
    raise AssertionError(msg)


def https_get(port, path, ctx):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def wss_subscribe(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"GET /api/ws?topics=status HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head:
        fail(f"WSS handshake: {head!r}")
    data, mask = b'{"subscribe": "blocks"}', os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask +
              bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7f):
        buf += s.recv(4096)
    msg = json.loads(buf[2:2 + (buf[1] & 0x7f)])
    s.close()
    return msg


def deflate_ack(port):
    ws = WS(port, "/api/ws?topics=status", deflate=True)
    if "permessage-deflate" not in ws.headers:
        fail(f"permessage-deflate offered but not agreed: {ws.headers!r}")
    ws.send('{"subscribe": ["blocks"]}')  # uncompressed frames stay allowed
    ws.sock.settimeout(20)
    b0, b1 = ws._exact(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", ws._exact(2))[0]
    payload = ws._exact(n)
    if not b0 & 0x40:
        fail("the server's message is not compressed (RSV1 unset) under permessage-deflate")
    msg = json.loads(zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff"))
    ws.sock.close()
    return msg


def serve(tmp, name, extra):
    cmd = [os.environ["BLOCKPIPE"], "serve", "--output", f"sqlite:{tmp}/bp.db", "--api",
           API_ANY, *extra]
    print("running:", " ".join(cmd), flush=True)
    # serve reads an existing database: an empty one, its schema made by `migrate`
    subprocess.run([os.environ["BLOCKPIPE"], "migrate", f"sqlite:{tmp}/bp.db"], check=True,
                   capture_output=True, timeout=HANG)
    p = subprocess.Popen(cmd, stdout=open(f"{tmp}/{name}.log", "w"), stderr=subprocess.STDOUT)
    try:
        return p, api_port(f"{tmp}/{name}.log", HANG, p)
    except AssertionError:
        p.kill()
        raise


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    if not shutil.which("openssl"):
        sys.exit("FAIL: openssl not found (scripts/install-deps.sh --test)")
    tmp = tempfile.TemporaryDirectory(prefix="bp-apitls-")
    cert, key = f"{tmp.name}/cert.pem", f"{tmp.name}/key.pem"
    procs = []
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        r = subprocess.run([os.environ["BLOCKPIPE"], "serve", "--output",
                            f"sqlite:{tmp.name}/x.db", "--api-tls-cert", cert],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 2 or "--api-tls-key" not in r.stderr:
            fail(f"a certificate without its key: want exit 2 naming --api-tls-key, got "
                 f"{r.returncode} {r.stderr!r}")
        p, port = serve(tmp.name, "tls", ["--api-tls-cert", cert, "--api-tls-key", key])
        procs.append(p)
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False

        def up():
            if p.poll() is not None:
                fail(f"serve exited with {p.returncode}")
            try:
                return https_get(port, "/health", ctx)[0] == 200
            except OSError:
                return False
        wait_until(up, HANG, "HTTPS /health")
        st, body = https_get(port, "/api/blocks?limit=1", ctx)
        if st != 200 or json.loads(body)["count"] != 0:
            fail(f"HTTPS /api/blocks: {st} {body[:200]!r}")
        plain = socket.create_connection(("127.0.0.1", port), timeout=10)
        plain.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = plain.recv(4096)
        except (ConnectionResetError, socket.timeout):
            answer = b""
        plain.close()
        if b" 200 " in answer.split(b"\r\n", 1)[0]:
            fail("plain HTTP was answered 200 on the TLS port")
        ack = wss_subscribe(port, ctx)
        if ack.get("type") != "subscribed":
            fail(f"WSS subscription: {ack}")
        print("check: HTTPS /health and /api/blocks, plain HTTP refused, WSS subscription "
              "acknowledged (certificate verified against the test's own CA)", flush=True)
        p.send_signal(signal.SIGINT)
        if p.wait(30) != 0:
            fail(f"serve (TLS) exited with {p.returncode}")
        p, port = serve(tmp.name, "plain", [])
        procs.append(p)
        wait_until(lambda: p.poll() is None and os.path.getsize(f"{tmp.name}/plain.log") > 0 and
                   "listening" in open(f"{tmp.name}/plain.log").read(), HANG, "serve")
        ack = deflate_ack(port)
        if ack.get("type") != "subscribed":
            fail(f"the inflated message is not the acknowledgement: {ack}")
        print("check: permessage-deflate agreed, the server's message compressed (RSV1) and "
              "inflates to the acknowledgement", flush=True)
        p.send_signal(signal.SIGINT)
        if p.wait(30) != 0:
            fail(f"serve exited with {p.returncode}")
    except (AssertionError, TimeoutError, OSError, subprocess.CalledProcessError) as e:
        for name in ("tls.log", "plain.log"):
            path = os.path.join(tmp.name, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path, errors="replace").read()[-2000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        tmp.cleanup()
    print(f"OK: HTTPS, WSS and permessage-deflate ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
