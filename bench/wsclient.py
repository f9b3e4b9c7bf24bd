"""wsclient.py - a minimal RFC 6455 WebSocket client (stdlib) for the benchmarks that talk
JSON-RPC to anvil over its WebSocket: handshake (accept key checked), masked sends, whole
messages back (continuation frames joined, pings answered)."""
import base64
import hashlib
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSClient:
    """One WebSocket connection to ws://127.0.0.1:port."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("anvil closed the WebSocket handshake")
            resp += chunk
        head, self.buf = resp.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise RuntimeError(f"WebSocket handshake refused: {lines[0]!r}")
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        got = next((l.split(":", 1)[1].strip() for l in lines[1:]
                    if l.lower().startswith("sec-websocket-accept:")), None)
        if got != want:
            raise RuntimeError(f"bad Sec-WebSocket-Accept {got!r} (want {want!r})")
        self.frames = 0      # data frames read (continuations included)
        self.max_frame = 0   # largest single frame payload

    def send(self, data, opcode=0x1):
        if isinstance(data, str):
            data = data.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        # XOR the payload with the repeated 4-byte mask, as one big-integer operation
        m = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        self.sock.sendall(head + mask + masked)

    def _exact(self, n):
        if len(self.buf) >= n:
            out, self.buf = self.buf[:n], self.buf[n:]
            return out
        parts, have = [self.buf], len(self.buf)
        while have < n:
            chunk = self.sock.recv(max(65536, n - have))
            if not chunk:
                raise ConnectionError("anvil closed the WebSocket")
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        out, self.buf = data[:n], data[n:]
        return out

    def recv(self):
        """Next whole text/binary message (continuation frames joined)."""
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else None
            data = self._exact(n)
            if mask:  # servers must not mask, but undo it if one does
                m = (mask * (n // 4 + 1))[:n]
                data = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
            op = b0 & 0x0F
            if op == 0x9:
                self.send(data, 0xA)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                raise ConnectionError("anvil sent a close frame")
            self.frames += 1
            self.max_frame = max(self.max_frame, n)
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts)

    def close(self):
        try:
            self.send(struct.pack("!H", 1000), 0x8)
            self.sock.close()
        except OSError:
            pass
