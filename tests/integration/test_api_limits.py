"""The API's security and limits, against `blockpipe serve` (no node needed):
- --api-token: writes need it (401 with WWW-Authenticate, then 405 for a read-only path);
  with --api-token-reads every request but /health needs it, from the Authorization header or
  ?token= (SSE and WebSocket clients); a wrong token is 401, a WebSocket without it is closed
  4401 with the reason;
- --api-rate-limit: a burst over the bucket gets 429 with Retry-After, a WebSocket upgrade
  then is closed 4429 with the reason; after waiting that long the next request is answered;
- --api-cors: an allowed Origin is echoed (and preflights answered 204), another is not
  (preflight 403);
- limits: headers over 8 KiB, a body over --api-max-body (413; a chunked one is closed unanswered), a client
  that sends its headers a byte at a time (closed by --api-request-timeout while others are
  served), a WebSocket message over 64 KiB (close 1009), an unmasked frame (an error, no crash),
  invalid UTF-8 (1007), a subscription that is not JSON (an error message, the connection
  stays), invalid UTF-8 in a filter (400 naming it);
and after all of it the server still answers and exits 0 on SIGINT.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import wait_until  # noqa: E402
from apiclient import API_ANY, SSE, WS, Api, Closed, api_port, wait_http  # noqa: E402

HANG = 60
TOKEN = "s3cret-token"


def fail(msg):
    raise AssertionError(msg)


def serve(tmp, name, args):
    cmd = [os.environ["BLOCKPIPE"], "serve", "--output", f"sqlite:{tmp}/bp.db", "--api",
           API_ANY, *args]
    print("running:", " ".join(cmd), flush=True)
    # serve reads an existing database: an empty one, its schema made by `migrate`
    subprocess.run([os.environ["BLOCKPIPE"], "migrate", f"sqlite:{tmp}/bp.db"], check=True,
                   capture_output=True, timeout=HANG)
    log = os.path.join(tmp, f"{name}.log")
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    try:
        port = api_port(log, HANG, p)
    except AssertionError:
        p.kill()
        raise
    wait_http(port, HANG, p)
    return p, port


def stop(p, what):
    p.send_signal(signal.SIGINT)
    if p.wait(30) != 0:
        fail(f"{what} exited with {p.returncode} after SIGINT")


def want(got, status, what):
    if got[0] != status:
        fail(f"{what}: want {status}, got {got[0]} {got[2]}")
    return got


def raw(port, data: bytes, timeout=10.0) -> bytes:
    """Sends data on a new connection and reads until the server closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b'"status"' in out:
                break
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out


def check_auth_writes(port):
    api = Api(port)
    want(api.get("/api/blocks"), 200, "a read without the token (reads open)")
    st, hdrs, body = want(api.request("POST", "/api/blocks", body=b"{}"), 401, "a write without")
    if "bearer" not in hdrs.get("www-authenticate", "").lower() or "token" not in body["error"]:
        fail(f"401 without WWW-Authenticate: Bearer or a reason: {hdrs} {body}")
    want(Api(port, token=TOKEN).request("POST", "/api/blocks", body=b"{}"), 405,
         "a write with the token to a read-only path")
    want(Api(port, token="wrong").request("POST", "/api/blocks", body=b"{}"), 401,
         "a write with a wrong token")
    print("check: writes need the token (401 + WWW-Authenticate; 405 once authorized), reads "
          "do not", flush=True)


def check_cors(port):
    api = Api(port)
    _, h, _ = api.get("/api/blocks", headers={"Origin": "http://a.example"})
    if h.get("access-control-allow-origin") != "http://a.example":
        fail(f"allowed origin not echoed: {h}")
    _, h, _ = api.get("/api/blocks", headers={"Origin": "http://evil.example"})
    if "access-control-allow-origin" in h:
        fail(f"a foreign origin got CORS headers: {h}")
    st, h, _ = api.request("OPTIONS", "/api/blocks", headers={
        "Origin": "http://a.example", "Access-Control-Request-Method": "GET"})
    if st != 204 or "GET" not in h.get("access-control-allow-methods", ""):
        fail(f"preflight of an allowed origin: {st} {h}")
    want(api.request("OPTIONS", "/api/blocks", headers={"Origin": "http://evil.example"}), 403,
         "preflight of a foreign origin")
    print("check: CORS: allowed origin echoed and preflight 204; foreign origin none, 403",
          flush=True)


def check_request_limits(port):
    api = Api(port)
    big = "x" * 20000
    out = raw(port, f"GET /api/blocks HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode())
    if b" 200 " in out.split(b"\r\n", 1)[0]:
        fail(f"20 KB of headers were answered 200: {out[:200]!r}")
    st, _, body = Api(port, token=TOKEN).request("POST", "/api/blocks", body=b"y" * 10000)
    if st != 413 or "limit" not in body["error"]:
        fail(f"a declared body over the limit: want 413, got {st} {body}")
    chunks = b"".join(b"%x\r\n%s\r\n" % (1000, b"z" * 1000) for _ in range(10)) + b"0\r\n\r\n"
    out = raw(port, b"POST /api/blocks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n" + chunks)
    # libwebsockets 4.1 takes no chunked request body: the connection is closed unanswered
    if out and b" 413 " not in out.split(b"\r\n", 1)[0] + b" ":
        fail(f"a chunked body over the limit: want 413 or a closed connection, got {out[:200]!r}")
    # slowloris: the headers a byte at a time; the server must close it, others are served
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /api/blocks HTTP/1.1\r\n")
    closed, sent, served = False, 0, 0
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline and not closed:
        try:
            s.sendall(b"X-Slow-%d: y\r\n" % sent)
            sent += 1
            s.settimeout(0.5)
            if s.recv(4096) == b"":
                closed = True
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        if api.get("/health")[0] == 200:
            served += 1
    s.close()
    if not closed:
        fail(f"a client sending its headers a byte at a time was never closed ({sent} lines)")
    if served == 0:
        fail("/health was not answered while a slow client was connected")
    want(api.get("/health"), 200, "health after the limits")
    print(f"check: 20 KB headers refused; body over the limit 413 (chunked: closed); a "
          f"slowloris client closed after {sent} header lines while /health answered {served} "
          f"times", flush=True)


def ws_close_code(port, send, what):
    ws = WS(port, "/api/ws?topics=blocks")
    send(ws)
    try:
        for _ in range(100):
            ws.recv(20)
        fail(f"{what}: the server kept the WebSocket open")
    except Closed as e:
        return e.code, e.reason
    finally:
        ws.sock.close()


def check_websocket_limits(port):
    code, why = ws_close_code(port, lambda ws: ws.send("{" + " " * 100000 + "}"), "100 KB message")
    if code != 1009:
        fail(f"a 100 KB message: want close 1009, got {code} {why!r}")

    # libwebsockets 4.1 reads an unmasked client frame as data (RFC 6455 says close): the
    # frame must get the same answer as any bad subscription, and nothing worse
    ws = WS(port, "/api/ws?topics=blocks")
    ws.sock.sendall(bytes([0x81, 5]) + b"hello")
    try:
        m = ws.recv_json(20)
        if m.get("type") != "error":
            fail(f"an unmasked frame: want an error message or a close, got {m}")
    except Closed as e:
        if e.code not in (1002, None):
            fail(f"an unmasked frame: want a protocol error close (1002), got {e.code}")
    ws.sock.close()
    code, why = ws_close_code(port, lambda ws: ws.send(b"\xff\xfe\xfd"), "invalid UTF-8")
    if code not in (1007, 1002):
        fail(f"invalid UTF-8 in a text frame: want close 1007, got {code} {why!r}")
    ws = WS(port, "/api/ws?topics=blocks")
    ws.send("this is not json")
    m = ws.recv_json(20)
    if m.get("type") != "error" or "not JSON" not in m.get("error", ""):
        fail(f"a subscription that is not JSON: want an error message, got {m}")
    ws.send('{"subscribe": ["blocks"], "topic0": "0x' + "ab" * 32 + '"}')
    m = ws.recv_json(20)
    if m.get("type") != "subscribed":
        fail(f"a good subscription after a bad one: {m}")
    ws.close()
    s = SSE(port, "/api/events?address=%ff%fe")
    body = s.body()
    if s.status != 400 or "address" not in body:
        fail(f"invalid UTF-8 in a filter: want 400 naming address, got {s.status} {body}")
    s.close()
    print("check: WebSocket: 100 KB message 1009, invalid UTF-8 closed, an unmasked frame and a "
          "non-JSON subscription answered with an error (connection kept); SSE filter with "
          "invalid UTF-8: 400", flush=True)


def check_token_reads(port):
    want(Api(port).get("/api/blocks"), 401, "a read without the token (--api-token-reads)")
    want(Api(port, token="nope").get("/api/blocks"), 401, "a read with a wrong token")
    want(Api(port, token=TOKEN).get("/api/blocks"), 200, "a read with the token")
    want(Api(port).get("/health"), 200, "/health without the token")
    want(Api(port).get(f"/api/blocks?token={TOKEN}"), 200, "?token=")
    s = SSE(port, f"/api/events?topics=blocks&token={TOKEN}")
    if s.status != 200:
        fail(f"SSE with ?token=: {s.status_line}")
    s.close()
    s = SSE(port, "/api/events?topics=blocks")
    if s.status != 401:
        fail(f"SSE without the token: {s.status_line}")
    s.close()
    try:
        WS(port, "/api/ws?topics=blocks").recv(20)
        fail("a WebSocket without the token was not closed")
    except Closed as e:
        if e.code != 4401 or "token" not in e.reason:
            fail(f"a WebSocket without the token: want close 4401, got {e.code} {e.reason!r}")
    ws = WS(port, "/api/ws?topics=status", headers={"Authorization": f"Bearer {TOKEN}"})
    ws.send('{"subscribe": "blocks"}')
    if ws.recv_json(20).get("type") != "subscribed":
        fail("a WebSocket with the Bearer token was not served")
    ws.close()
    print("check: --api-token-reads: 401 without or with a wrong token, header and ?token= "
          "accepted (REST, SSE, WebSocket), /health open", flush=True)


RATE = 0.5  # --api-rate-limit of server c: a bucket of 1 (2R), one token back every 2 s


def rate_limit_burst(api, port):
    """From a full bucket: requests until a 429, then a WebSocket upgrade. Returns (codes,
    Retry-After, the Closed the upgrade got), or None when the upgrade was answered so late that
    the bucket may have refilled meanwhile (the server decides when the upgrade is established,
    so only an upgrade done within half the refill time is sure to be over the bucket)."""
    codes, retry = [], None
    t0 = time.monotonic()
    for _ in range(40):
        st, h, body = api.get("/api/blocks?limit=1")
        codes.append(st)
        if st == 429:
            retry = h.get("retry-after")
            if "rate limited" not in body["error"]:
                fail(f"429 without a reason: {body}")
            break
    if 429 not in codes:
        fail(f"40 requests at once against --api-rate-limit {RATE} were never refused: {codes}")
    if not retry or not retry.isdigit() or int(retry) < 1:
        fail(f"429 without a Retry-After of whole seconds: {retry!r}")
    ws = WS(port, f"/api/ws?topics=blocks&token={TOKEN}")  # still over the bucket: upgrades too
    try:
        if codes != [200, 429] or time.monotonic() - t0 >= 0.5 / RATE:
            return None
        for _ in range(100):
            ws.recv(20)
        fail("a WebSocket upgrade over the rate limit was kept open")
    except Closed as e:
        return codes, retry, e
    finally:
        ws.sock.close()


def check_rate_limit(port):
    api = Api(port, token=TOKEN)
    for attempt in range(5):
        time.sleep(1 / RATE)  # nothing else asks this server: the bucket is full again
        got = rate_limit_burst(api, port)
        if got:
            break
        print(f"note: attempt {attempt + 1} too slow to be sure the upgrade was over the "
              "bucket; again", flush=True)
    else:
        fail("5 attempts at 2 requests and a WebSocket upgrade each took over "
             f"{0.5 / RATE:.0f} s: the rate limit could not be checked")
    codes, retry, e = got
    if e.code != 4429 or "rate limited" not in e.reason:
        fail(f"a WebSocket upgrade over the rate limit: want close 4429, got {e.code} "
             f"{e.reason!r}")
    time.sleep(int(retry))
    want(api.get("/api/blocks?limit=1"), 200, f"a request after Retry-After {retry}")
    print(f"check: rate limit: 429 after {codes.count(200)} requests, Retry-After {retry} s, "
          f"a WebSocket upgrade meanwhile closed 4429, then answered again", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-apilimits-")
    procs = []
    try:
        p, port = serve(tmp.name, "a", ["--api-token", TOKEN, "--api-rate-limit", "0",
                                        "--api-cors", "http://a.example, http://b.example",
                                        "--api-max-body", "4096", "--api-request-timeout", "2"])
        procs.append(p)
        check_auth_writes(port)
        check_cors(port)
        check_request_limits(port)
        check_websocket_limits(port)
        if p.poll() is not None:
            fail(f"serve died: {p.returncode}")
        stop(p, "serve (limits)")
        p, port = serve(tmp.name, "b", ["--api-token", TOKEN, "--api-token-reads", "on",
                                        "--api-rate-limit", "0"])
        procs.append(p)
        check_token_reads(port)
        stop(p, "serve (token reads)")
        # a server of its own, so that no other check's requests share the bucket
        p, port = serve(tmp.name, "c", ["--api-token", TOKEN, "--api-token-reads", "on",
                                        "--api-rate-limit", str(RATE)])
        procs.append(p)
        check_rate_limit(port)
        stop(p, "serve (rate limit)")
    except (AssertionError, TimeoutError, OSError) as e:
        for name in ("a.log", "b.log", "c.log"):
            path = os.path.join(tmp.name, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path, errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        tmp.cleanup()
    print(f"OK: token, rate limit, CORS, request and WebSocket limits "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
