"""/ready is 503 while the chain is more than --ready-lag blocks behind its head, 200 once it is
within it (issue 12 item 3).

A simnode chain exists whole at once (60 blocks, `--block-time 0`). `blockpipe run --ready-lag
5 --api` reads it through a proxy (tests/tools/rpcgate.py) that holds every request for block
20 or above until the test releases it: the pipeline is stuck below 20 with the head at 59.
- meanwhile /ready is 503 with "ready": false (the chain's lag in its answer above 5),
  /metrics blockpipe_ready 0 and /api/sync-status mode catching-up;
- released, the chain reaches its head: /ready 200, blockpipe_ready 1, mode following.
"""

import os
import re
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

HANG = 90  # a hang guard only
LENGTH, HOLD, LAG = 60, 20, 5


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-ready-")
    node = Simnode(bp, ["--length", str(LENGTH), "--block-time", "0", "--chain-id", "776"])
    gate = RpcGate(node.urls[0])
    gate.hold_from = HOLD
    log = os.path.join(tmp.name, "bp.log")
    proc = None
    try:
        cmd = [bp, "run", "--rpc", gate.url, "--start-block", "0", "--poll-interval", "0.2",
               "--ready-lag", str(LAG), "--output", f"sqlite:{tmp.name}/bp.db", "--api",
               API_ANY]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        port = api_port(log, HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)

        def state():
            st, _, body = api.get("/ready")
            m = re.search(r"^blockpipe_ready\{[^}]*\} (\S+)$", api.get("/metrics")[2], re.M)
            chains = api.ok("/api/sync-status").get("chains") or [{}]
            return st, body, m and m.group(1), chains[0]
        wait_for(lambda: gate.held > 0 and (state()[3].get("committed") or 0) >= HOLD - 1,
                 HANG, f"blocks below {HOLD} committed, block {HOLD} held by the proxy")
        st, body, gauge, chain = state()
        if st != 503 or body.get("ready") is not False or gauge != "0":
            raise Fail(f"{LENGTH - HOLD} blocks behind: /ready {st} {body}, blockpipe_ready "
                       f"{gauge}; want 503, ready false, 0")
        if chain.get("head") != LENGTH - 1 or chain.get("mode") != "catching-up":
            raise Fail(f"sync-status while held: {chain}")
        print(f"check: indexed {chain.get('indexed')} of head {chain['head']} (--ready-lag "
              f"{LAG}): /ready 503 ready=false, blockpipe_ready 0, mode catching-up", flush=True)
        gate.release()
        wait_for(lambda: state()[0] == 200, HANG, "/ready 200 once the chain is at its head")
        st, body, gauge, chain = state()
        if body.get("ready") is not True or gauge != "1" or chain.get("mode") != "following" \
                or chain.get("indexed", 0) < LENGTH - 1 - LAG:
            raise Fail(f"released: /ready {st} {body}, blockpipe_ready {gauge}, {chain}")
        print(f"check: released: indexed {chain['indexed']}, /ready 200 ready=true, "
              f"blockpipe_ready 1, mode following", flush=True)
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            raise Fail(f"blockpipe exited with {proc.returncode} after SIGINT:\n{tail(log)}")
    except (Fail, AssertionError, TimeoutError, OSError, KeyError) as e:
        print(tail(log, 60))
        sys.exit(f"FAIL: {e}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        gate.close()
        node.kill()
        tmp.cleanup()
    print(f"OK: /ready follows --ready-lag ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
