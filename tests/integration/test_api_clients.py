"""Many push clients at once, and one that does not read: the slow one is dropped with the
reason, the others get every block and the pipeline keeps going.

`blockpipe run --api --api-push-queue 16384 --api-push-stall 3` follows anvil. 100 WebSocket
and 50 SSE clients (and 1,000 more WebSocket clients) subscribe to blocks; one more WebSocket client subscribes to everything
with a 4 KiB receive buffer and never reads. anvil then mines 40 blocks of 5 transactions.
- the slow client is dropped: /api/websocket/stats counts it, and what it finally reads ends
  with a close frame 4408 giving the reason;
- every one of the 150 others holds exactly the node's blocks from the first new one to the
  head, each once (a replica that applies them; a block twice or missing fails);
- 1,000 more WebSocket clients (bench_ws_fanout: one epoll thread in C) each get the 40 new
  blocks' messages once, and none is closed - blockpipe started with Debian's default soft
  limit of 1,024 open files (it raises it within the hard limit for --api-max-connections);
- blockpipe reached the node's head, and exits 0 on SIGINT.
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from apiclient import API_ANY, SSE, WS, Api, Closed, api_port, wait_http  # noqa: E402

N_WS, N_SSE, BLOCKS = 100, 50, 40
N_FANOUT = 1000  # more WebSocket clients, on one epoll thread in C (bench_ws_fanout)
HANG = 300


def fail(msg):
    raise AssertionError(msg)


class Reader(threading.Thread):
    def __init__(self, conn, kind):
        super().__init__(daemon=True)
        self.conn, self.kind = conn, kind
        self.blocks, self.error, self.stop = {}, None, False
        self.start()

    def run(self):
        try:
            while not self.stop:
                if self.kind == "ws":
                    m = self.conn.recv_json(HANG)
                else:
                    ev = self.conn.next_event(HANG)
                    if ev is None:
                        raise Closed(None, "SSE ended")
                    m = ev["data"]
                if m["topic"] != "blocks":
                    continue
                n = m["block_number"]
                if m["type"] == "apply":
                    if n in self.blocks:
                        raise AssertionError(f"block {n} applied twice")
                    self.blocks[n] = m["block_hash"]
                elif m["type"] == "revert" and self.blocks.get(n) == m["block_hash"]:
                    del self.blocks[n]
        except Exception as e:  # noqa: BLE001
            if not self.stop:
                self.error = e


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-apiclients-")
    node = Anvil()
    proc, readers = None, []
    try:
        wl = Workload(node, seed=11)
        wl.setup()
        cmd = [os.environ["BLOCKPIPE"], "run", "--rpc", node.url, "--start-block", "0",
               "--output", f"sqlite:{tmp.name}/bp.db", "--api", API_ANY,
               "--poll-interval", "0.2", "--api-rate-limit", "0", "--api-push-queue", "16384",
               "--api-push-stall", "3"]
        print("running:", " ".join(cmd), flush=True)
        # Debian's default soft limit of open files: blockpipe must raise it for its clients
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        proc = subprocess.Popen(cmd, stdout=open(f"{tmp.name}/bp.log", "w"),
                                stderr=subprocess.STDOUT, preexec_fn=lambda: resource.setrlimit(
                                    resource.RLIMIT_NOFILE, (1024, hard)))
        port = api_port(f"{tmp.name}/bp.log", HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)
        start = node.block_number()
        wait_until(lambda: api.ok("/api/blocks/latest")["data"]["number"] == start, HANG,
                   "initial sync")
        for i in range(N_WS):
            readers.append(Reader(WS(port, "/api/ws?topics=blocks"), "ws"))
        for i in range(N_SSE):
            s = SSE(port, "/api/events?topics=blocks")
            if s.status != 200:
                fail(f"SSE client {i}: {s.status_line}")
            readers.append(Reader(s, "sse"))
        slow = WS(port, "/api/ws?topics=all", rcvbuf=4096)
        fanout = subprocess.Popen([os.path.join(os.path.dirname(os.environ["BLOCKPIPE"]),
                                                "bench_ws_fanout"), str(port), str(N_FANOUT),
                                   str(BLOCKS), str(HANG)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        if not fanout.stdout.readline().startswith("ready"):
            fail(f"bench_ws_fanout did not connect its clients: {fanout.stderr.read()}")
        clients = N_WS + N_SSE + 1 + N_FANOUT
        wait_until(lambda: api.ok("/api/websocket/stats")["server"]["subscriptions"]["clients"]
                   == clients, HANG, "every client attached")
        print(f"check: {N_WS} + {N_FANOUT} WebSocket + {N_SSE} SSE + 1 slow client attached",
              flush=True)
        for _ in range(BLOCKS):
            wl.mine_batch(5)
        head = node.block_number()
        head_hash = node.block(head, False)["hash"]
        wait_until(lambda: api.ok("/api/blocks/latest")["data"]["hash"] == head_hash, HANG,
                   "blockpipe at the head")
        wait_until(lambda: api.ok("/api/websocket/stats")["server"]["dropped_clients_total"] >= 1,
                   HANG, "the slow client dropped")
        code, reason = None, None
        slow.sock.settimeout(HANG)
        try:
            while True:
                slow.recv(HANG)
        except Closed as e:
            code, reason = e.code, e.reason
        if code != 4408 or not ("not reading" in reason or "too slow" in reason):
            fail(f"the slow client: want close 4408 with the reason, got {code} {reason!r}")
        print(f"check: the slow client was dropped: close {code} {reason!r}", flush=True)

        def all_at_head():
            for r in readers:
                if r.error:
                    raise r.error
            return all(r.blocks.get(head) == head_hash for r in readers)
        wait_until(all_at_head, HANG, "every client at the head")
        want = {n: node.block(n, False)["hash"] for n in range(start + 1, head + 1)}
        for i, r in enumerate(readers):
            got = {n: h for n, h in r.blocks.items() if n > start}
            if got != want:
                fail(f"client {i} ({r.kind}): blocks {sorted(got)} differ from the node's "
                     f"{start + 1}..{head}")
        print(f"check: all {len(readers)} clients hold exactly blocks {start + 1}..{head} "
              f"(each once)", flush=True)
        out, err = fanout.communicate(timeout=HANG)
        words = out.split()
        if fanout.returncode != 0 or len(words) != 5 or int(words[4]) != N_FANOUT * BLOCKS:
            fail(f"bench_ws_fanout: exit {fanout.returncode}, {out!r} {err!r}: want each of "
                 f"{N_FANOUT} clients to get the {BLOCKS} blocks once ({N_FANOUT * BLOCKS})")
        print(f"check: {N_FANOUT} more WebSocket clients got each of the {BLOCKS} blocks once "
              f"(commit-to-client p99 {words[2]} ms under ASan, not a target)", flush=True)
        wait_until(lambda: api.ok("/api/websocket/stats")["server"]["subscriptions"]["clients"]
                   == N_WS + N_SSE, HANG, f"{N_WS + N_SSE} clients left (the slow one dropped, "
                   f"the {N_FANOUT} gone)")
        for r in readers:
            r.stop = True
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            fail(f"blockpipe exited with {proc.returncode} after SIGINT")
    except (AssertionError, TimeoutError, OSError) as e:
        print(open(f"{tmp.name}/bp.log", errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for r in readers:
            r.stop = True
            try:
                r.conn.sock.close()
            except OSError:
                pass
        if proc and proc.poll() is None:
            proc.kill()
        node.stop()
        tmp.cleanup()
    print(f"OK: {N_WS + N_SSE + N_FANOUT} push clients got every block, the slow one was dropped with the "
          f"reason ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
