"""An ejected endpoint that hangs when it is probed does not hold the coordinator (issue 12).

A simnode chain makes a block every 0.3 s. `blockpipe run` has two endpoints: rpc[0] the node
(preferred), rpc[1] a backup in front of the same node through a switchable proxy
(tests/tools/rpcgate.py), which no block request reaches while rpc[0] is healthy. The
--rpc-timeout is 120 s, longer than this test waits for anything.

1. The proxy goes down (connections closed unanswered): rpc[1] is ejected (the log says so).
2. It comes back hanging: it answers eth_chainId (the recheck after its backoff), but the head
   request that follows (the coordinator's probe) is accepted and never answered.
   While that request is still held by the proxy (it cannot have timed out: 120 s), the chain
   must follow its head from rpc[0]: blocks made after the probe arrived are committed. A
   coordinator that waited for its probe would commit nothing until the RPC timeout.
3. SIGINT ends blockpipe (exit 0) at once, the probe still held: it is aborted, not waited for.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import API_ANY, Api, api_port, wait_http  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from rpcgate import RpcGate  # noqa: E402
from simnode import Simnode  # noqa: E402

HANG = 60  # a hang guard only: half the RPC timeout, so a held probe is still held after it
FOLLOW = 5  # blocks made after the probe arrived that must be committed while it is held


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-poolhang-")
    node = Simnode(bp, ["--block-time", "0.3", "--chain-id", "775", "--txs-per-block", "2"])
    gate = RpcGate(node.urls[0])
    log = os.path.join(tmp.name, "bp.log")
    proc = None
    try:
        cmd = [bp, "run", "--rpc", json.dumps({"url": node.urls[0], "priority": 0}),
               "--rpc", json.dumps({"url": gate.url, "priority": 9, "max_workers": 1}),
               "--rpc-timeout", "120", "--start-block", "0", "--poll-interval", "0.2",
               "--output", f"sqlite:{tmp.name}/bp.db", "--api", API_ANY]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        port = api_port(log, HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)

        def committed():
            chains = api.ok("/api/sync-status").get("chains") or [{}]
            return chains[0].get("committed") or 0

        def logged(needle):
            return needle in open(log, errors="replace").read()

        wait_for(lambda: committed() >= 5, HANG, "the first blocks committed")
        gate.down = True
        wait_for(lambda: logged(f"rpc {gate.url} ejected for"), HANG, "rpc[1] ejected")
        print("check: the backup endpoint is ejected while its proxy is down", flush=True)

        gate.hang_except = {"eth_chainId"}
        gate.hang = True
        mark = gate.switch(down=False)
        wait_for(lambda: gate.holding > 0, HANG,
                 "the coordinator's probe of rpc[1] (a head request) held by the proxy")
        head = int(node.rpc_batch([("eth_blockNumber", [])])[0], 16)
        print(f"check: the probe arrived ({gate.held_log}) with the node at block {head}",
              flush=True)
        wait_for(lambda: committed() >= head + FOLLOW, HANG,
                 f"block {head + FOLLOW} committed while the probe of rpc[1] is held (a "
                 f"coordinator waiting for its probe commits nothing until the RPC timeout)")
        if gate.holding < 1:
            raise Fail("the probe is no longer held: the test proves nothing")
        methods = [m for _, m in gate.held_log]
        if any(m != "eth_getBlockByNumber" for m in methods):
            raise Fail(f"held requests {methods}: want only the head request (the probe)")
        probe = gate.held_log[0][0]
        if not any(mark <= a < probe and m == "eth_chainId" for a, m, _ in list(gate.log)):
            raise Fail(f"rpc[1] was not asked eth_chainId (its recheck) before the probe: "
                       f"{gate.log[-10:]}")
        print(f"check: block {committed()} committed while the probe of rpc[1] is still "
              f"held: the chain followed its head from rpc[0]", flush=True)

        proc.send_signal(signal.SIGINT)
        if proc.wait(HANG) != 0:
            raise Fail(f"blockpipe exited with {proc.returncode} after SIGINT:\n{tail(log)}")
        print("check: SIGINT ends blockpipe with the probe still held (it is aborted)",
              flush=True)
    except (Fail, AssertionError, TimeoutError, OSError, KeyError,
            subprocess.TimeoutExpired) as e:
        print(tail(log, 60))
        sys.exit(f"FAIL: {e}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        gate.close()
        node.kill()
        tmp.cleanup()
    print(f"OK: a hanging probe does not hold the coordinator ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
