"""Provider credentials reach the node, and a key is never shown.

A simnode of the test's own requires `Authorization: Basic ...` (basic auth from the URL) and
`X-Api-Key: ...` (a header) on every JSON-RPC request and WebSocket upgrade, and answers
HTTP 401 quoting the header it got and the path otherwise (as some providers do). In front of
it tlsproxy.py serves TLS with a certificate of a test CA and requires a client certificate
of that CA. Keys are planted in the URL path, a query value, the URL's password, a header
value (read from the environment with ${NAME}) and the WebSocket URL.

(a) backfill over https with --ca-file, --cert-file, --key-file and --rpc-header: every block
    stored (the headers, basic auth, CA bundle and client certificate reached the node);
    the state file's saved command has the keys masked and says so (argv_masked).
(b) run with --ws wss://user:pass@.../ws/KEY?token=KEY and --ws-header: subscribed (the
    WebSocket's basic auth, header, CA and client certificate reached the node), stats lines.
(c) failures: a wrong header value (401 quoting it), no client certificate, no CA bundle, a
    closed port, a wrong WebSocket header: each fails as expected (the test checks why).
(d) `run --help`.
(e) blocks that fail (HTTP 500 from faultproxy.py in front of a second simnode) with keys on
    the command line: the state file lists them with the command masked, and `retry-failed`
    refuses to run it, saying how to give the keys.
Then every log, stats line, state file and API page (/metrics and the status endpoints of a
run with --api and an alert webhook whose path is a key) is grepped for every planted key.
"""

import base64
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import API_ANY, api_port  # noqa: E402
from simnode import Simnode  # noqa: E402

HANG = 120  # seconds: a guard against a hang, never a measure
PATH_KEY = "PATHKEY7f3a9c2e1d"
QUERY_KEY = "QUERYKEY55b1x"
PASSWORD = "PASSWD9x8y7z"
HDR_KEY = "HDRKEY42q8w3e"
WRONG_KEY = "WRONGKEY6t5r4"
WS_PATH_KEY = "WSPATHKEY9a8b7c6d"
WS_QUERY_KEY = "WSQUERY1234zz"
PLANTED = [PATH_KEY, QUERY_KEY, PASSWORD, HDR_KEY, WRONG_KEY, WS_PATH_KEY, WS_QUERY_KEY]


# the pages of the API that name an endpoint (or its state)
API_PAGES = ["/metrics", "/api/sync-status", "/api/realtime/status", "/api/websocket/stats",
             "/api/streaming/stats", "/api/realtime/events"]
SHOW_ENDPOINT = {"/metrics", "/api/realtime/status", "/api/websocket/stats"}


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(d):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    ca_key, ca = f"{d}/ca.key", f"{d}/ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=blockpipe test CA")
    ext = f"{d}/san.ext"
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/{name}.key", "-out",
                f"{d}/{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", ca, "-CAkey", ca_key,
                "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
                *(["-extfile", ext] if name == "server" else []))
    return ca


def start_proxy(upstream_port, d, ca):
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                          "tools", "tlsproxy.py"),
                             str(upstream_port), f"{d}/server.pem", f"{d}/server.key", ca],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        fail(f"tlsproxy did not start: {line!r}")
    return proc, int(line.split()[1])


class Run:
    """A blockpipe command with its stderr in a file (grepped at the end)."""

    def __init__(self, bp, d, name, args, env):
        self.log = f"{d}/{name}.log"
        self.name = name
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen([bp, *args], stdout=f, stderr=subprocess.STDOUT,
                                         env=env)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait_for(self, needle):
        deadline = time.time() + HANG
        while time.time() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                fail(f"{self.name} exited {self.proc.returncode} before '{needle}':\n"
                     f"{self.text()[-3000:]}")
            time.sleep(0.2)
        fail(f"{self.name}: no '{needle}' within {HANG} s:\n{self.text()[-3000:]}")

    def finish(self):
        try:
            return self.proc.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"{self.name} did not end:\n{self.text()[-3000:]}")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        return self.finish()


def expect_failure(run, *needles):
    rc = run.finish()
    text = run.text()
    if rc == 0:
        fail(f"{run.name}: exit 0, expected a failure:\n{text[-3000:]}")
    for n in needles:
        if n not in text:
            fail(f"{run.name}: the log lacks '{n}':\n{text[-3000:]}")
    last = [ln for ln in text.splitlines() if " error " in ln or " warn " in ln][-1]
    print(f"check: {run.name} failed as expected (exit {rc}): {last[25:300]}", flush=True)


def main():
    bp = os.environ["BLOCKPIPE"]
    tmp = tempfile.TemporaryDirectory(prefix="bp_creds_")
    d = tmp.name
    ca = make_certs(d)
    # the password ends in '!', written %21 in the URLs: libcurl and the WebSocket decode it
    basic = base64.b64encode(f"user:{PASSWORD}!".encode()).decode()
    node = Simnode(bp, ["--length", "100000", "--block-time", "0.3", "--start-head", "40",
                        "--txs-per-block", "2", "--require-header", f"Authorization: Basic {basic}",
                        "--require-header", f"X-Api-Key: {HDR_KEY}"])
    proxy, port = None, None
    runs = []
    try:
        proxy, port = start_proxy(node.port(), d, ca)
        env = dict(os.environ, HDR_KEY=HDR_KEY)
        url = f"https://user:{PASSWORD}%21@localhost:{port}/v2/{PATH_KEY}?apikey={QUERY_KEY}"
        tls = ["--ca-file", ca, "--cert-file", f"{d}/client.pem", "--key-file", f"{d}/client.key"]
        common = ["--rpc", url, "--rpc-header", "X-Api-Key: ${HDR_KEY}", "--stats-interval", "1",
                  "--rpc-timeout", "10"]

        print("== (a) backfill over https: headers, basic auth, CA bundle, client certificate",
              flush=True)
        a = Run(bp, d, "backfill", ["backfill", *common, *tls, "--from", "0", "--to", "20",
                                    "--output", f"jsonl:{d}/out_a", "--state-dir", f"{d}/state"],
                env)
        runs.append(a)
        if a.finish() != 0:
            fail(f"backfill failed:\n{a.text()[-3000:]}")
        rows = sum(1 for _ in open(glob.glob(f"{d}/out_a/blocks*")[0]))
        if rows != 21:
            fail(f"backfill stored {rows} blocks, expected 21")
        states = glob.glob(f"{d}/state/*.json")
        if not states:
            fail("no state file was written")
        saved = json.load(open(states[0]))
        if not saved.get("argv_masked") or not any("***" in w for w in saved["argv"]):
            fail(f"the saved command is not masked: {saved['argv']}")
        print(f"check: 21 blocks through TLS + client certificate + headers; saved command "
              f"{saved['argv'][:3]}", flush=True)

        print("== (b) run with wss:// (basic auth, header, CA, client certificate)", flush=True)
        ws = f"wss://user:{PASSWORD}%21@localhost:{port}/ws/{WS_PATH_KEY}?token={WS_QUERY_KEY}"
        b = Run(bp, d, "run", ["run", *common, *tls, "--ws", ws, "--ws-header",
                               "X-Api-Key: ${HDR_KEY}", "--start-block", "30", "--output",
                               f"jsonl:{d}/out_b", "--api", API_ANY, "--alert", "lag>100000",
                               "--alert-webhook", f"http://127.0.0.1:9/hooks/{WS_PATH_KEY}"],
                env)
        runs.append(b)
        b.wait_for("ws=subscribed")
        b.wait_for("stats rpc[0]")
        api = f"127.0.0.1:{api_port(b.log, 60, b.proc)}"
        # what the API shows of the endpoints (status pages, /metrics labels), saved beside
        # the logs for the grep at the end
        for page in API_PAGES:
            body = urllib.request.urlopen(f"http://{api}{page}", timeout=30).read().decode()
            if "***" not in body and page in SHOW_ENDPOINT:
                fail(f"{page} shows no masked endpoint:\n{body[:2000]}")
            with open(f"{d}/api{page.replace('/', '_')}.txt", "w") as f:
                f.write(body)
        if b.stop() != 0:
            fail(f"run did not stop cleanly:\n{b.text()[-3000:]}")
        print("check: subscribed over wss:// with the WebSocket's credentials", flush=True)

        print("== (c) failures", flush=True)
        wrong = Run(bp, d, "wrong-header", ["backfill", "--rpc", url, "--rpc-header",
                                            f"X-Api-Key: {WRONG_KEY}", *tls, "--from", "0",
                                            "--to", "3", "--output", f"jsonl:{d}/out_c1"], env)
        no_cert = Run(bp, d, "no-client-cert", ["backfill", *common, "--ca-file", ca, "--from",
                                                "0", "--to", "3", "--output",
                                                f"jsonl:{d}/out_c2"], env)
        no_ca = Run(bp, d, "no-ca", ["backfill", *common, "--cert-file", f"{d}/client.pem",
                                     "--key-file", f"{d}/client.key", "--from", "0", "--to", "3",
                                     "--output", f"jsonl:{d}/out_c3"], env)
        closed = Run(bp, d, "closed-port", ["backfill", "--rpc", url.replace(f":{port}/", ":1/"),
                                            "--rpc-header", "X-Api-Key: ${HDR_KEY}", "--from",
                                            "0", "--to", "3", "--output", f"jsonl:{d}/out_c4"],
                     env)
        ws_wrong = Run(bp, d, "ws-wrong-header",
                       ["run", *common, *tls, "--ws", ws, "--ws-header", f"X-Api-Key: {WRONG_KEY}",
                        "--output", f"jsonl:{d}/out_c5"], env)
        runs += [wrong, no_cert, no_ca, closed, ws_wrong]
        expect_failure(wrong, "HTTP 401", "unauthorized (simnode)")
        expect_failure(no_cert, "reading eth_chainId", "SSL")
        expect_failure(no_ca, "reading eth_chainId", "certificate problem")
        expect_failure(closed, "reading eth_chainId", "connect")
        ws_wrong.wait_for("websocket wss://")
        ws_wrong.wait_for("unauthorized")
        ws_wrong.stop()
        last = [ln for ln in ws_wrong.text().splitlines() if "cannot connect" in ln][-1]
        print(f"check: ws-wrong-header refused: {last[25:300]}", flush=True)

        print("== (d) --help", flush=True)
        h = Run(bp, d, "help", ["run", "--help", *common], env)
        runs.append(h)
        if h.finish() != 0 or "--rpc-header" not in h.text():
            fail("run --help failed or lacks --rpc-header")

        print("== (e) failed blocks: the state file and retry-failed", flush=True)
        plain = Simnode(bp, ["--length", "1000", "--block-time", "0", "--txs-per-block", "2"])
        fp = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                                            "tools", "faultproxy.py"),
                               "--upstream", plain.urls[0], "--faults", "http500", "--every", "1",
                               "--only-methods", "eth_getBlockReceipts", "--lifetime", "300"],
                              stdout=subprocess.PIPE, text=True)
        try:
            fp_port = int(fp.stdout.readline().split()[1])
            e = Run(bp, d, "failed-blocks",
                    ["backfill", "--rpc", f"http://user:{PASSWORD}%21@127.0.0.1:{fp_port}/v2/"
                     f"{PATH_KEY}?apikey={QUERY_KEY}", "--rpc-header", f"X-Api-Key: {HDR_KEY}",
                     "--from", "0", "--to", "3", "--max-retries", "1", "--state-dir",
                     f"{d}/state_e", "--output", f"jsonl:{d}/out_e"], env)
            runs.append(e)
            expect_failure(e, "HTTP 500", "failed after 2 attempts")
        finally:
            fp.terminate()
            fp.wait()
            plain.kill()
        saved = json.load(open(glob.glob(f"{d}/state_e/*.json")[0]))
        if not saved["failed_count"] or not saved.get("argv_masked"):
            fail(f"the state file lacks the failed blocks or the mask: {saved}")
        r = Run(bp, d, "retry-failed", ["retry-failed", "--state-dir", f"{d}/state_e"], env)
        runs.append(r)
        expect_failure(r, "keys are never saved", "${NAME}")

        print("== every log, stats line and state file, grepped for the planted keys",
              flush=True)
        texts = {r.log: r.text() for r in runs}
        for path in glob.glob(f"{d}/state*/*") + glob.glob(f"{d}/api_*.txt"):
            texts[path] = open(path).read()
        for path, text in texts.items():
            for key in PLANTED:
                if key in text:
                    line = next(ln for ln in text.splitlines() if key in ln)
                    fail(f"{os.path.basename(path)} shows the key {key}: {line[:400]}")
        if "***" not in texts[a.log] or f"/v2/***?apikey=***" not in texts[a.log]:
            fail("the backfill log does not show the endpoint masked")
        print(f"check: {len(PLANTED)} planted keys in none of {len(texts)} files "
              f"({sum(len(t) for t in texts.values())} bytes)", flush=True)
    finally:
        for r in runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        if proxy:
            proxy.kill()
            proxy.wait()
        node.kill()
        tmp.cleanup()
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
