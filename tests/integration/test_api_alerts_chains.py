"""--alert rules watch every chain of a `chains:` config on its own (issue 12 item 6).

Two simnode chains, `one` and `two` (each its own `blockpipe simnode`, a block every 0.5 s, over
HTTP and WebSocket), are followed by one `blockpipe run --config FILE --alert endpoint_down
--alert-webhook URL` (a receiver in this test). Once both are followed, `two`'s simnode is
killed by PID: endpoint_down must fire for `two` only (webhook "chain": "two", the log line
names it); a simnode on the same port brings it back: it must resolve for `two`, and `one`
must never have an endpoint_down call.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402
from webhook import WebhookReceiver  # noqa: E402

HANG = 120  # a hang guard only
START = 20



def events(hook, chain):
    return [c["state"] for c in hook.calls if c["rule"] == "endpoint_down" and c["chain"] == chain]


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-alertchains-")
    hook = WebhookReceiver()
    nodes, proc = [], None
    log = os.path.join(tmp.name, "bp.log")
    try:
        common = ["--length", "100000", "--block-time", "0.5"]
        nodes = [Simnode(bp, common + ["--chain-id", "771", "--start-head", str(START)]),
                 Simnode(bp, common + ["--chain-id", "772", "--start-head", str(START)])]
        chains = [{"name": name, "chain_id": 771 + i, "rpc": nodes[i].urls[0],
                   "ws": nodes[i].urls[0].replace("http://", "ws://"), "start_block": 0}
                  for i, name in enumerate(("one", "two"))]
        cfg = os.path.join(tmp.name, "chains.json")
        with open(cfg, "w") as f:
            json.dump({"output": f"sqlite:{tmp.name}/bp.db", "confirmations": 0,
                       "poll_interval": 0.2, "chains": chains}, f)  # JSON is YAML
        cmd = [bp, "run", "--config", cfg, "--alert", "endpoint_down", "--alert-webhook",
               hook.url]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)

        def followed():
            if proc.poll() is not None:
                raise Fail(f"blockpipe exited {proc.returncode}:\n{tail(log)}")
            try:
                with sqlite3.connect(f"{tmp.name}/bp.db") as db:
                    cps = dict(db.execute("SELECT chain, number FROM checkpoints"))
            except sqlite3.Error:
                return False  # not made yet
            return cps.get("one", 0) >= START and cps.get("two", 0) >= START
        wait_for(followed, HANG, "both chains at their node's head", 0.3)
        time.sleep(2)  # no alert may fire while both nodes answer
        if hook.calls:
            raise Fail(f"webhook calls before anything went away: {hook.calls}")
        port = nodes[1].port()
        head = int(nodes[1].rpc_batch([("eth_blockNumber", [])])[0], 16)
        nodes[1].proc.kill()  # by PID
        nodes[1].proc.wait()
        wait_for(lambda: events(hook, "two") == ["firing"], HANG, "endpoint_down firing for two")
        print("check: endpoint_down fired for chain two once its simnode was killed", flush=True)
        # the same chain on the same port, a little further on (a later --listen wins over
        # the helper's): new heads make the ejected endpoint be probed again
        nodes[1] = Simnode(bp, common + ["--chain-id", "772", "--start-head", str(head + 2),
                                         "--listen", f"127.0.0.1:{port}"])
        wait_for(lambda: events(hook, "two") == ["firing", "resolved"], HANG,
                 "endpoint_down resolved for two once its simnode is back")
        print("check: it resolved once a simnode answered on that port again", flush=True)
        time.sleep(2)  # nothing more may come
        if events(hook, "one") or events(hook, "two") != ["firing", "resolved"]:
            raise Fail(f"webhook calls: one {events(hook, 'one')}, two {events(hook, 'two')}: "
                       f"want none for one, firing then resolved for two")
        text = open(log, errors="replace").read()
        for needle in ("[blockpipe two] FIRING: endpoint_down",
                       "[blockpipe two] resolved: endpoint_down"):
            if needle not in text:
                raise Fail(f"the log does not say {needle!r}")
        if "[blockpipe one] FIRING" in text:
            raise Fail("the log has an alert for chain one")
        print("check: the webhook and the log name chain two only", flush=True)
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            raise Fail(f"blockpipe exited with {proc.returncode} after SIGINT:\n{tail(log)}")
    except (Fail, AssertionError, TimeoutError, OSError) as e:
        print(tail(log, 60))
        print("webhook calls:", hook.calls)
        sys.exit(f"FAIL: {e}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        for n in nodes:
            n.kill()
        hook.close()
        tmp.cleanup()
    print(f"OK: alerts fire and resolve per chain ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
