"""--alert rules fire and resolve once each, to the log and to a webhook of the test's own.

anvil (mining only when told) is reached over HTTP through tests/tools/tcpproxy.py (its new
heads come straight over its WebSocket); `blockpipe run` has --alert stalled>3, --alert endpoint_down, --alert lag>1000000 and --alert-webhook pointing
at an HTTP receiver in this test.
- nothing is mined: stalled>3 fires; a block is mined: it resolves;
- the proxy cuts every connection and a block is mined (announced over the socket, its fetch
  fails): the endpoint is ejected and endpoint_down fires; the proxy lets connections through
  again: it resolves;
- every webhook call is Slack-compatible JSON ({"text": ...} plus a "blockpipe" object with
  rule, state, value); each rule has exactly the firing / resolved calls above, in order, and
  lag>1000000 none; the log says the same;
- an unknown rule is refused at start (exit 2) naming it.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, wait_until  # noqa: E402

HANG = 120
CALLS = []


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        CALLS.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def fail(msg):
    raise AssertionError(msg)


def events(rule):
    out = []
    for _, _, body in CALLS:
        b = json.loads(body)["blockpipe"]
        if b["rule"] == rule:
            out.append(b["state"])
    return out


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-apialerts-")
    node = Anvil()
    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    proxy, proc = None, None
    bp = os.environ["BLOCKPIPE"]
    try:
        r = subprocess.run([bp, "run", "--rpc", node.url, "--alert", "lagg>3"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 2 or "lagg>3" not in r.stderr:
            fail(f"an unknown rule: want exit 2 naming it, got {r.returncode} {r.stderr!r}")
        host, port = node.url.split("://")[1].split(":")
        proxy = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                               "tools", "tcpproxy.py"), host,
                                  port], stdout=subprocess.PIPE, text=True)
        pport = int(proxy.stdout.readline().split()[1])
        node.mine()
        cmd = [bp, "run", "--rpc", f"http://127.0.0.1:{pport}", "--ws",
               "ws://" + node.url.split("://")[1], "--start-block", "0", "--output",
               f"sqlite:{tmp.name}/bp.db", "--poll-interval", "0.2", "--alert", "stalled>3",
               "--alert", "endpoint_down", "--alert", "lag>1000000", "--alert-webhook",
               f"http://127.0.0.1:{hook.server_port}/hook"]
        print("running:", " ".join(cmd), flush=True)
        log = os.path.join(tmp.name, "bp.log")
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_until(lambda: events("stalled>3") == ["firing"], HANG, "stalled>3 firing")
        node.mine()
        wait_until(lambda: events("stalled>3") == ["firing", "resolved"], HANG,
                   "stalled>3 resolved after a block")
        print("check: stalled>3 fired with no new head and resolved on the next block",
              flush=True)
        proxy.send_signal(signal.SIGUSR1)
        node.mine()
        wait_until(lambda: events("endpoint_down") == ["firing"], HANG, "endpoint_down firing")
        proxy.send_signal(signal.SIGUSR2)
        node.mine()
        wait_until(lambda: events("endpoint_down") == ["firing", "resolved"], HANG,
                   "endpoint_down resolved once connections go through")
        wait_until(lambda: events("stalled>3")[-1:] == ["resolved"], HANG, "stalled resolved")
        print("check: endpoint_down fired while the proxy cut connections and resolved after",
              flush=True)
        time.sleep(2)  # nothing more may come
        for rule, want in (("endpoint_down", ["firing", "resolved"]), ("lag>1000000", [])):
            if events(rule) != want:
                fail(f"{rule}: webhook calls {events(rule)}, want {want}")
        st = events("stalled>3")  # it fires again whenever 3 s pass without a block
        if len(st) < 2 or st != (["firing", "resolved"] * len(st))[:len(st)]:
            fail(f"stalled>3: webhook calls {st}: not alternating firing / resolved")
        for path, ctype, body in CALLS:
            b = json.loads(body)
            if path != "/hook" or ctype != "application/json" or "FIRING" not in b["text"] and \
                    "resolved" not in b["text"] or "value" not in b["blockpipe"]:
                fail(f"a webhook call is not Slack-compatible JSON: {path} {ctype} {body!r}")
        text = open(log, errors="replace").read()
        for needle in ("FIRING: stalled>3", "resolved: stalled>3", "FIRING: endpoint_down",
                       "resolved: endpoint_down"):
            if needle not in text:
                fail(f"the log does not say {needle!r}")
        print(f"check: {len(CALLS)} webhook calls, each rule firing and resolving once per "
              f"episode, lag>1000000 never; the log says the same", flush=True)
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            fail(f"blockpipe exited with {proc.returncode} after SIGINT")
    except (AssertionError, TimeoutError, OSError) as e:
        if proc:
            print(open(os.path.join(tmp.name, "bp.log"), errors="replace").read()[-3000:])
        print("webhook calls:", [json.loads(b)["blockpipe"] for _, _, b in CALLS])
        sys.exit(f"FAIL: {e}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        if proxy:
            proxy.kill()
            proxy.wait()
        hook.shutdown()
        node.stop()
        tmp.cleanup()
    print(f"OK: alerts fire and resolve once each, log and webhook "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
