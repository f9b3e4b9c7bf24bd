"""tlsproxy.py - TLS in front of a plain TCP server (simnode), for tests of a private node's
CA bundle and client certificates. Python 3 standard library only.

    python3 tlsproxy.py UPSTREAM_PORT CERT KEY [CLIENT_CA]    # prints "PORT n" once listening

Listens on 127.0.0.1 (a free port) with the server certificate CERT/KEY and forwards every
connection, once its handshake is done, to 127.0.0.1:UPSTREAM_PORT (HTTP keep-alive and
WebSocket alike: bytes both ways). With CLIENT_CA a client must present a certificate signed
by it, else the handshake fails. Prints "HANDSHAKE ok" or "HANDSHAKE failed: why" per
connection. Runs until it is killed (SIGTERM / SIGINT).
"""

import select
import socket
import ssl
import sys
import threading


def pump(tls, up):
    """One thread per connection moves bytes both ways: an SSL object is never used by two
    threads at once."""
    try:
        while True:
            ready = [tls] if tls.pending() else select.select([tls, up], [], [], 1.0)[0]
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (up if s is tls else tls).sendall(data)
    except (OSError, ssl.SSLError):
        pass
    finally:
        for s in (tls, up):
            try:
                s.close()
            except OSError:
                pass


def serve(raw, ctx, upstream_port):
    try:
        raw.settimeout(10)
        tls = ctx.wrap_socket(raw, server_side=True)
        tls.settimeout(None)
    except (OSError, ssl.SSLError) as e:
        print(f"HANDSHAKE failed: {e}", flush=True)
        raw.close()
        return
    print("HANDSHAKE ok", flush=True)
    try:
        up = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        tls.close()
        return
    pump(tls, up)


def main():
    upstream_port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if len(sys.argv) > 4:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[4])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(f"PORT {srv.getsockname()[1]}", flush=True)
    while True:
        raw, _ = srv.accept()
        threading.Thread(target=serve, args=(raw, ctx, upstream_port), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
