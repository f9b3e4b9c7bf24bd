"""Two processes on one chain whose only output is Redis (issue 13 part 6; docs/ARCHITECTURE.md
"Chains over several hosts"): the chain's writer lease blockpipe:lock:redis:{chain}.

A simnode chain (a block every 0.2 s) is followed into Redis with a 3 s lease (lock_ttl=3).
1. A lease planted by hand for a process of another host: A waits for it, naming it, and
   takes the chain once it expires.
2. B, a second process on the chain, waits for the lease, naming A; C, with --lock-wait 0, is
   refused at once, naming A.
3. A is paused (SIGSTOP) past its lease: B takes the chain over once it expires, from A's
   checkpoint. A is let go (SIGCONT): it must commit nothing more (its batch is fenced by the
   lease), say that B has the lease and wait for it again, naming B.
4. B is killed (kill -9): A sees that B's process is gone from this host and takes the chain
   over without waiting for the lease to expire.
5. The lease is given to another holder under A (as if it had expired and been taken): A
   must commit nothing after that (no stream entry with a later server time), say so and
   wait; stopped (SIGTERM), it leaves that lease alone.
6. That lease deleted, D takes the chain, writes, and gives the lease up when stopped (the key
   is gone).
A consumer reading the blocks and transactions streams from the start must hold exactly the
node's blocks 0..checkpoint, as the node has them, each delivered once.
"""

import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, node_chain, run, tail, wait_for  # noqa: E402
from pgcheck import RunProc as Proc  # noqa: E402
from redis import Redis  # noqa: E402
from simnode import Simnode  # noqa: E402
from streamcheck import RedisConsumer, redis_checkpoint  # noqa: E402

CHAIN = "5001"
KEY = f"blockpipe:lock:redis:{CHAIN}"
HANG = 90


class Node:
    """node_chain's view of the simnode (block, receipts) over its JSON-RPC."""

    def __init__(self, sim):
        self.sim = sim

    def block(self, n, full):
        return self.sim.rpc_batch([("eth_getBlockByNumber", [hex(n), full])])[0]

    def receipts(self, n):
        b = self.block(n, False)
        return self.sim.rpc_batch([("eth_getTransactionReceipt", [h]) for h in
                                   b["transactions"]]) if b["transactions"] else []


def cp(r):
    got = redis_checkpoint(r, CHAIN)
    return got[0] if got else -1


def said(p, what, count=1):
    return p.alive() and p.text().count(what) >= count


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-redis-lease-")
    procs = []
    sim = Simnode(bp, ["--chain-id", CHAIN, "--seed", "11", "--block-time", "0.2",
                       "--start-head", "10", "--txs-per-block", "1-3"])
    try:
        with Redis() as r:
            url = r.url(query="maxlen=0&lock_ttl=3&entities=blocks,transactions")
            args = ["--rpc", sim.urls[0], "--output", url, "--start-block", "0",
                    "--poll-interval", "0.2", "--stats-interval", "5"]

            # 1. a lease of another host's process: A waits for it to expire
            other = "blockpipe elsewhere pid 7 start 1 lease 1"
            r.call("SET", KEY, other, "PX", "4000")
            a = Proc(bp, tmp.name, "A", args)
            procs.append(a)
            wait_for(lambda: said(a, "waiting for it to let go"), HANG, "A waiting")
            wait = [ln for ln in a.text().splitlines() if "waiting for it to let go" in ln][0]
            if other not in wait:
                raise Fail(f"A must name the lease's holder ({other!r}):\n{wait}")
            wait_for(lambda: said(a, "this process writes the chain now") and cp(r) >= 10, HANG,
                     "A taking the chain once the lease expired")
            if f"pid {a.pid}" not in (r.call("GET", KEY) or ""):
                raise Fail(f"the lease is {r.call('GET', KEY)!r}, want A's (pid {a.pid})")
            print(f"1: A waited for {other!r}:\n   {wait[-160:]}\n   and took the chain "
                  f"when it expired")

            # 2. B waits, C is refused; both name A
            b = Proc(bp, tmp.name, "B", args)
            procs.append(b)
            wait_for(lambda: said(b, "waiting for it to let go"), HANG, "B waiting")
            wait = [ln for ln in b.text().splitlines() if "waiting for it to let go" in ln][0]
            rc, out = run([bp, "run", *args, "--lock-wait", "0"], timeout=HANG)
            refused = [ln for ln in out.splitlines() if "not writing it too" in ln]
            if f"pid {a.pid}" not in wait or rc == 0 or not refused \
                    or f"pid {a.pid}" not in refused[0]:
                raise Fail(f"B must wait and C be refused, both naming A (pid {a.pid}); B:\n"
                           f"{wait}\nC (exit {rc}):\n{out[-2000:]}")
            print(f"2: B waits: {wait[-150:]}\n   C refused (exit {rc}): {refused[0][-150:]}")

            # 3. A paused past its lease: B takes over; A, let go, is fenced and waits
            a.p.send_signal(signal.SIGSTOP)
            at = cp(r)
            wait_for(lambda: said(b, "this process writes the chain now") and cp(r) >= at + 10,
                     HANG, "B taking the chain over once A's lease expired")
            a.p.send_signal(signal.SIGCONT)
            wait_for(lambda: said(a, "waiting to take the chain's lock again")
                     and said(a, "waiting for it to let go", 2), HANG,
                     "A noticing it lost the lease")
            lost = [ln for ln in a.text().splitlines() if "waiting to take the chain's lock" in ln]
            waits = [ln for ln in a.text().splitlines() if "waiting for it to let go" in ln]
            if f"pid {b.pid}" not in lost[0] or f"pid {b.pid}" not in waits[-1]:
                raise Fail(f"A must say B (pid {b.pid}) has the lease and wait for it:\n"
                           f"{tail(a.path)}")
            if f"pid {b.pid}" not in (r.call("GET", KEY) or ""):
                raise Fail(f"the lease is {r.call('GET', KEY)!r}, want B's (pid {b.pid})")
            print(f"3: A paused; B took over at {at}; A, let go, says:\n   {lost[0][-200:]}")

            # 4. B killed: A takes over at once (B's process is gone from this host)
            b.kill()
            at = cp(r)
            wait_for(lambda: said(a, "a process of this host that is gone")
                     and said(a, "this process writes the chain now", 2) and cp(r) >= at + 5,
                     HANG, "A taking the chain over from the killed B")
            print(f"4: B killed at {at}; A took the lease over without waiting for it")

            # 5. the lease changes hands under A (as if it had expired and another took it):
            # nothing A commits may come after that (stream ids are the server's time in ms)
            taker = "blockpipe elsewhere pid 8 start 1 lease 1"
            r.call("SET", KEY, taker, "PX", "600000")
            tm = r.call("TIME")
            t0 = int(tm[0]) * 1000 + int(tm[1]) // 1000
            wait_for(lambda: said(a, "waiting for it to let go", 3), HANG,
                     "A noticing the lease changed hands")
            last = r.call("XREVRANGE", f"blockpipe:blocks:{CHAIN}", "+", "-", "COUNT", "1")
            last_ms = int(last[0][0].split("-")[0])
            if last_ms > t0:
                raise Fail(f"A committed an entry ({last[0][0]}) after its lease was taken at "
                           f"{t0} ms")
            a.stop()
            if r.call("GET", KEY) != taker:
                raise Fail(f"A, stopped, must leave the lease it lost alone: "
                           f"{r.call('GET', KEY)!r}")
            print(f"5: the lease taken from A: A committed nothing after it (last entry "
                  f"{last[0][0]}, taken at {t0} ms), waited, and left it alone when stopped")
            # 6. a clean stop gives the lease up
            r.call("DEL", KEY)
            d = Proc(bp, tmp.name, "D", args)
            procs.append(d)
            at = cp(r)
            wait_for(lambda: d.alive() and cp(r) >= at + 5, HANG, "D writing")
            d.stop()
            if r.call("GET", KEY) is not None:
                raise Fail(f"D stopped but the lease is still {r.call('GET', KEY)!r}")
            print("6: D took the free lease, wrote, and gave it up when stopped")
            top = cp(r)
            consumer = RedisConsumer(r, CHAIN, entities=("blocks", "transactions"))
            consumer.poll()
            consumer.view.check(node_chain(Node(sim), top), "after the takeovers",
                                ("blocks", "transactions"))
            v = consumer.view
            print(f"   the streams hold blocks 0..{top} once each "
                  f"({v.applies['blocks']} block entries, {v.applies['transactions']} "
                  f"transaction entries, {v.reverts} reverts)")
    finally:
        for p in procs:
            p.kill()
        sim.kill()
        tmp.cleanup()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
