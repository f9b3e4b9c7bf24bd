"""tcpproxy.py - a small TCP proxy with a cut switch, for tests that drop a connection in the
middle of a run. Python 3 standard library only.

    python3 tcpproxy.py UPSTREAM_HOST UPSTREAM_PORT     # prints "PORT n" once listening

Listens on 127.0.0.1 (port 0: the kernel picks a free one) and forwards every connection to
the upstream, both directions, one thread per direction.
    SIGUSR1  closes every current connection (both sides) and refuses new ones: a connection
             is accepted and closed at once, without a byte read or written, until
    SIGUSR2  which lets connections through again.
Prints "CUT n" (n connections closed) and "OPEN" when it switches, and runs until it is
killed (SIGTERM / SIGINT).
"""

import signal
import socket
import sys
import threading

LOCK = threading.RLock()  # re-entrant: the signal handlers run on the main thread
LIVE = set()  # (client, upstream) pairs being forwarded
STATE = {"cut": False}


def close_pair(pair):
    for s in pair:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def pump(src, dst, pair):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    # one side finished: pass the half-close on, and close both once the other is done too
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    with LOCK:
        pair[2] += 1
        done = pair[2] == 2
        if done:
            LIVE.discard(pair[3])
    if done:
        close_pair(pair[:2])


def serve(client, upstream_addr):
    try:
        up = socket.create_connection(upstream_addr, timeout=10)
        up.settimeout(None)
    except OSError:
        client.close()
        return
    for s in (client, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = (client, up)
    pair = [client, up, 0, key]
    with LOCK:
        if STATE["cut"]:  # cut while we were connecting upstream
            close_pair(key)
            return
        LIVE.add(key)
    threading.Thread(target=pump, args=(client, up, pair), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, pair), daemon=True).start()


def on_cut(_sig, _frame):
    with LOCK:
        STATE["cut"] = True
        pairs = list(LIVE)
        LIVE.clear()
    for p in pairs:
        close_pair(p)
    print(f"CUT {len(pairs)}", flush=True)


def on_open(_sig, _frame):
    with LOCK:
        STATE["cut"] = False
    print("OPEN", flush=True)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tcpproxy.py UPSTREAM_HOST UPSTREAM_PORT")
    upstream = (sys.argv[1], int(sys.argv[2]))
    signal.signal(signal.SIGUSR1, on_cut)
    signal.signal(signal.SIGUSR2, on_open)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        with LOCK:
            refuse = STATE["cut"]
        if refuse:
            close_pair((client,))
            continue
        threading.Thread(target=serve, args=(client, upstream), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
