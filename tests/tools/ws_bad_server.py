"""ws_bad_server.py - a WebSocket JSON-RPC server that misbehaves on purpose, for the
WebSocket head client's tests. Python 3 standard library only: the RFC 6455 handshake and
framing are done by hand.

    python3 ws_bad_server.py MODE [--tls CERT KEY]   # prints "PORT n" once listening

MODE is one of
    garbage    answers eth_subscribe with text frames that are not JSON
    oversized  answers eth_subscribe, then sends one 2 MiB text frame
    silent     never answers eth_subscribe
    close      closes the TCP connection right after the handshake
    stale      answers eth_subscribe, then sends no head at all
    badhead    answers eth_subscribe, sends a head without a hash, then good heads
               0x10, 0x11, ... every 200 ms
    fragmented answers eth_subscribe in 3 continuation frames, then sends good heads, each
               split into 3 frames

With --tls it speaks wss:// (TLS with the given PEM certificate and key) instead of ws://.

Every connection is served on its own thread until the client leaves; the process runs until
it is killed.
"""

import base64
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUB_ID = "0xcafe"
SEND_LOCK = threading.Lock()  # pongs (reader thread) and heads must not interleave


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def handshake(conn):
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("no handshake")
        request += chunk
    key = ""
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())


def send_frame(conn, payload, opcode=0x1, fin=True):
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    with SEND_LOCK:
        conn.sendall(head + payload)


def read_message(conn):
    """Next text message from the client; answers pings and closes on the way."""
    while True:
        b0, b1 = recv_exact(conn, 2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(conn, 8))[0]
        mask = recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(recv_exact(conn, n)))
        if opcode == 0x9:
            send_frame(conn, data, opcode=0xA)
        elif opcode == 0x8:
            send_frame(conn, data[:2], opcode=0x8)
            raise ConnectionError("client closed")
        elif opcode in (0x1, 0x2, 0x0):
            return json.loads(data)


def answer(req, result):
    return json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": result})


def head(number, hash_ok=True):
    h = {"number": hex(number), "parentHash": "0x" + f"{number - 1:064x}",
         "timestamp": hex(1_700_000_000 + number), "miner": "0x" + "00" * 20}
    if hash_ok:
        h["hash"] = "0x" + f"{number:064x}"
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": SUB_ID, "result": h}})


def drain(conn):
    """Keep reading (pings get pongs) until the client leaves."""
    while True:
        req = read_message(conn)
        if req.get("method") == "eth_unsubscribe":
            send_frame(conn, answer(req, True))


def send_fragmented(conn, text):
    third = len(text) // 3
    send_frame(conn, text[:third], opcode=0x1, fin=False)
    send_frame(conn, text[third:2 * third], opcode=0x0, fin=False)
    send_frame(conn, text[2 * third:], opcode=0x0, fin=True)


def serve_heads(conn, first_bad, fragmented):
    if first_bad:
        send_frame(conn, head(0x0F, hash_ok=False))
    reader = threading.Thread(target=lambda: _ignore(drain, conn), daemon=True)
    reader.start()
    n = 0x10
    while reader.is_alive():
        (send_fragmented if fragmented else send_frame)(conn, head(n))
        n += 1
        time.sleep(0.2)


def _ignore(fn, *args):
    try:
        fn(*args)
    except (OSError, ConnectionError, ValueError):
        pass


def serve(conn, mode):
    handshake(conn)
    if mode == "close":
        conn.close()
        return
    req = read_message(conn)
    if mode == "silent":
        drain(conn)
    elif mode == "garbage":
        for i in range(3):
            send_frame(conn, f"this is not JSON {{ {i}")
        drain(conn)
    elif mode == "fragmented":
        send_fragmented(conn, answer(req, SUB_ID))
        serve_heads(conn, first_bad=False, fragmented=True)
    else:
        send_frame(conn, answer(req, SUB_ID))
        if mode == "oversized":
            send_frame(conn, "x" * (2 << 20))
            drain(conn)
        elif mode == "stale":
            drain(conn)
        elif mode == "badhead":
            serve_heads(conn, first_bad=True, fragmented=False)
        elif mode == "deep":
            # 500,000 arrays in one another: 1,000,000 bytes, under the client's 1 MiB cap
            send_frame(conn, "[" * 500_000 + "]" * 500_000)
            serve_heads(conn, first_bad=False, fragmented=False)


def handle(conn, mode, tls):
    try:
        if tls:
            conn = tls.wrap_socket(conn, server_side=True)
    except (OSError, ValueError):
        conn.close()
        return
    with conn:
        _ignore(serve, conn, mode)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "garbage"
    tls = None
    if len(sys.argv) == 5 and sys.argv[2] == "--tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, mode, tls), daemon=True).start()


if __name__ == "__main__":
    main()
