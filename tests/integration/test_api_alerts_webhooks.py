"""Alert webhooks are sent side by side: one that hangs delays no other (issue 12, alerts).

`blockpipe run` over a simnode chain has two rules that hold from the first snapshot on
(`lag<1000000000`, `pending<1000000000`: two alerts fire at once) and two `--alert-webhook`s,
in this order: one whose receiver takes the request and never answers (its URL carries a
key-like path segment, a token), and one that answers at once. The answering one must get
both alerts while the hanging one still holds its first request (blockpipe has not given up
on it yet: its log has no webhook failure line, which it writes when the 5 s timeout passes),
so the order of events, not a stopwatch, shows that nothing waited on the hanging one. Then
the hanging one's failure is logged with its URL masked (the token never in the log), its
second alert is sent to it in order after the first, and SIGINT stops blockpipe (exit 0)
without waiting longer than the webhooks' timeout.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402

HANG = 60  # a hang guard only
TOKEN = "T0ken5ecret9Hook"  # key-like: masked in every log line
RULES = ["lag<1000000000", "pending<1000000000"]
GOOD, HUNG = [], []
LOG = {"path": None}
RELEASE = threading.Event()


def failure_logged():
    with open(LOG["path"], errors="replace") as f:
        return "alert webhook" in f.read()


class Good(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        # what was true when this call came: had the hanging one's first call come, and had
        # blockpipe given up on it (its timeout passed) yet?
        GOOD.append((body["blockpipe"], len(HUNG), failure_logged()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Hung(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        HUNG.append((self.path, body["blockpipe"]))
        RELEASE.wait(HANG)  # never answers while the test runs
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:
            pass  # blockpipe gave up on it long ago

    def log_message(self, *args):
        pass


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-alerthooks-")
    LOG["path"] = os.path.join(tmp.name, "bp.log")
    open(LOG["path"], "w").close()
    good = HTTPServer(("127.0.0.1", 0), Good)
    hung = ThreadingHTTPServer(("127.0.0.1", 0), Hung)
    hung.daemon_threads = True
    for srv in (good, hung):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    node, proc = Simnode(bp, ["--length", "20", "--block-time", "0", "--chain-id", "775"]), None
    hung_url = f"http://127.0.0.1:{hung.server_port}/hooks/{TOKEN}"
    try:
        cmd = [bp, "run", "--rpc", node.urls[0], "--start-block", "0", "--output",
               f"sqlite:{tmp.name}/bp.db", "--poll-interval", "0.2",
               "--alert-webhook", hung_url,
               "--alert-webhook", f"http://127.0.0.1:{good.server_port}/good"]
        for r in RULES:
            cmd += ["--alert", r]
        print("running:", " ".join(cmd).replace(TOKEN, "<token>"), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(LOG["path"], "w"), stderr=subprocess.STDOUT)

        def alive():
            if proc.poll() is not None:
                raise Fail(f"blockpipe exited {proc.returncode}:\n{tail(LOG['path'])}")
            return True
        wait_for(lambda: alive() and len(GOOD) >= 2, HANG, "both alerts at the answering webhook")
        got = sorted(c[0]["rule"] for c in GOOD[:2])
        if got != sorted(RULES) or any(c[0]["state"] != "firing" for c in GOOD[:2]):
            raise Fail(f"the answering webhook got {GOOD}, want both rules firing")
        if any(logged for _, _, logged in GOOD):
            raise Fail("the answering webhook got its alerts only after blockpipe had given up "
                       f"on the hanging one (serial sending): {GOOD}")
        wait_for(lambda: alive() and len(HUNG) >= 1, HANG, "the hanging webhook's first call")
        if failure_logged():
            raise Fail("blockpipe gave up on the hanging webhook before its first call was "
                       "even seen")
        print(f"check: the answering webhook got both alerts ({got}) while the hanging one "
              f"still held its first ({len(HUNG)} call(s) there, none given up)", flush=True)
        wait_for(lambda: alive() and failure_logged(), HANG,
                 "the hanging webhook's timeout in the log")
        wait_for(lambda: alive() and len(HUNG) >= 2, HANG,
                 "the hanging webhook's second alert, sent after the first gave up")
        order = [b["rule"] for _, b in HUNG[:2]]
        if order != [GOOD[0][0]["rule"], GOOD[1][0]["rule"]]:
            raise Fail(f"the hanging webhook got {order}, the answering one "
                       f"{[c[0]['rule'] for c in GOOD]}: not the same order")
        if any(path != f"/hooks/{TOKEN}" for path, _ in HUNG):
            raise Fail(f"the hanging webhook's calls went to {[p for p, _ in HUNG]}")
        proc.send_signal(signal.SIGINT)
        if proc.wait(HANG) != 0:
            raise Fail(f"blockpipe exited with {proc.returncode} after SIGINT:\n"
                       f"{tail(LOG['path'])}")
        text = open(LOG["path"], errors="replace").read()
        lines = [ln for ln in text.splitlines() if "alert webhook" in ln]
        if TOKEN in text:
            raise Fail("the webhook's token is in the log")
        want = f"alert webhook http://127.0.0.1:{hung.server_port}/hooks/***: "
        if not lines or not all(want in ln for ln in lines):
            raise Fail(f"the webhook failure lines do not name the masked URL {want!r}: {lines}")
        print(f"check: the hanging webhook's failure logged masked ({lines[0].strip()!r}), "
              f"its alerts in order, exit 0 on SIGINT", flush=True)
        if len(GOOD) != 2:
            raise Fail(f"the answering webhook got {len(GOOD)} calls, want 2: {GOOD}")
    except (Fail, AssertionError, TimeoutError, OSError) as e:
        print(tail(LOG["path"], 60).replace(TOKEN, "<token>"))
        print("answering webhook:", GOOD, "hanging webhook:", HUNG)
        sys.exit(f"FAIL: {e}")
    finally:
        RELEASE.set()
        if proc and proc.poll() is None:
            proc.kill()
        node.kill()
        good.shutdown()
        hung.shutdown()
        tmp.cleanup()
    print(f"OK: webhooks side by side, a hanging one delays no other "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
