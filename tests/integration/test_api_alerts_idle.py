"""An endpoint ejected on an idle chain is probed again and comes back (issue 12, alerts).

A simnode chain that exists whole at once (`--block-time 0`, 30 blocks) is indexed by `blockpipe
run --alert endpoint_down --alert-webhook URL --api` (a receiver in this test). Once every
block is in, nothing is left to fetch: the chain is idle. The simnode is killed by PID: the
head polls fail, the endpoint is ejected and endpoint_down fires. A simnode of the same chain
on the same port comes back, still with no new block: the ejected endpoint gets no block
request to probe it with, so the coordinator must probe it itself (a head request, with the
ejection's backoff): endpoint_down must resolve and /metrics say blockpipe_rpc_up 1, with no
block committed meanwhile (the chain really was idle).
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
from simnode import Simnode  # noqa: E402
from webhook import WebhookReceiver  # noqa: E402

HANG = 90  # a hang guard only
LENGTH = 30



def events(hook):
    return [c["state"] for c in hook.calls if c["rule"] == "endpoint_down"]


def metric(api, name):
    """The value of metric `name` (the chain's one endpoint), None when absent."""
    m = re.search(rf'^{name}\{{[^}}]*\}} (\S+)$', api.get("/metrics")[2], re.M)
    return m and m.group(1)


def rpc_up(api):
    return metric(api, "blockpipe_rpc_up")


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-alertidle-")
    hook = WebhookReceiver()
    chain = ["--length", str(LENGTH), "--block-time", "0", "--chain-id", "774"]
    node, proc = Simnode(bp, chain), None
    log = os.path.join(tmp.name, "bp.log")
    try:
        cmd = [bp, "run", "--rpc", node.urls[0], "--start-block", "0", "--output",
               f"sqlite:{tmp.name}/bp.db", "--poll-interval", "0.2", "--api",
               API_ANY, "--alert", "endpoint_down", "--alert-webhook",
               hook.url]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        port = api_port(log, HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)

        def chain_state():
            return (api.ok("/api/sync-status").get("chains") or [{}])[0]  # [] at first
        wait_for(lambda: chain_state().get("committed") == LENGTH - 1, HANG,
                 f"every block (0..{LENGTH - 1}) committed")
        done = metric(api, "blockpipe_blocks_total")
        print(f"check: {done} blocks committed, the chain is idle", flush=True)
        nport = node.port()
        node.proc.kill()  # by PID
        node.proc.wait()
        wait_for(lambda: events(hook) == ["firing"], HANG, "endpoint_down firing")
        if rpc_up(api) != "0":
            raise Fail(f"endpoint_down fired but /metrics says blockpipe_rpc_up {rpc_up(api)}")
        print("check: endpoint_down fired once the idle chain's node was killed", flush=True)
        node = Simnode(bp, chain + ["--listen", f"127.0.0.1:{nport}"])
        wait_for(lambda: events(hook) == ["firing", "resolved"], HANG,
                 "endpoint_down resolved once the node answers again (an idle chain sends "
                 "no block request: the coordinator must probe the ejected endpoint)")
        up, total = rpc_up(api), metric(api, "blockpipe_blocks_total")
        if up != "1":
            raise Fail(f"after endpoint_down resolved: blockpipe_rpc_up {up}, want 1")
        if total != done or chain_state()["committed"] != LENGTH - 1:
            raise Fail(f"blocks were committed meanwhile ({total} != {done}): the chain was "
                       f"not idle")
        text = open(log, errors="replace").read()
        for needle in ("ejected for", "is healthy again (it answered a probe",
                       "FIRING: endpoint_down", "resolved: endpoint_down"):
            if needle not in text:
                raise Fail(f"the log does not say {needle!r}")
        # the events come from the stats snapshots (every status interval), not the alert's
        # path: endpoint_up may show up to an interval after the alert resolved
        wait_for(lambda: api.ok("/api/realtime/events")["counts"]["endpoint_up"] >= 1, 30,
                 "endpoint_up in /api/realtime/events")
        ev = api.ok("/api/realtime/events")
        kinds = [e["type"] for e in ev["events"]]  # newest first
        if ev["counts"]["endpoint_down"] != 1 or ev["counts"]["endpoint_up"] != 1 or \
                kinds.index("endpoint_up") > kinds.index("endpoint_down"):
            raise Fail(f"/api/realtime/events: want one endpoint_down then one endpoint_up: "
                       f"{ev['counts']} {kinds[:10]}")
        print("check: the node back on its port, the idle chain's endpoint was probed and is "
              "healthy again: endpoint_down resolved, blockpipe_rpc_up 1, /api/realtime/events "
              "endpoint_down then endpoint_up", flush=True)
        time.sleep(1.5)  # nothing more may come
        if events(hook) != ["firing", "resolved"]:
            raise Fail(f"endpoint_down webhook calls {events(hook)}, want firing, resolved")
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            raise Fail(f"blockpipe exited with {proc.returncode} after SIGINT:\n{tail(log)}")
    except (Fail, AssertionError, TimeoutError, OSError, KeyError) as e:
        print(tail(log, 60))
        print("webhook calls:", hook.calls)
        sys.exit(f"FAIL: {e}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        node.kill()
        hook.close()
        tmp.cleanup()
    print(f"OK: an endpoint ejected on an idle chain comes back ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
