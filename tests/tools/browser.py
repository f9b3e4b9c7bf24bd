"""browser.py - Debian's headless Chromium driven over the DevTools protocol (stdlib only):
open a page, evaluate JavaScript in it, take a screenshot.

    with Browser("http://127.0.0.1:8080/dashboard") as b:
        b.evaluate("document.title")          # -> the value (JSON-able)
        b.screenshot("/tmp/page.png")

Chromium runs with the flags this machine needs (no sandbox as root, no GPU, no background
networking: the network is closed) and a new --user-data-dir in a temp dir, on a free port
it chooses (DevToolsActivePort); it is stopped by PID and its temp dir removed in close().
A missing chromium is an error (Debian package chromium; scripts/install-deps.sh --test).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from apiclient import WS

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1100", "--remote-debugging-port=0"]


class Browser:
    def __init__(self, url: str, timeout: float = 60.0):
        exe = shutil.which("chromium")
        if not exe:
            raise AssertionError("chromium not found (Debian package chromium; "
                                 "scripts/install-deps.sh --test)")
        self.dir = tempfile.mkdtemp(prefix="bp-chromium-")
        self.log = open(os.path.join(self.dir, "chromium.log"), "w")
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.dir}/profile", url],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.dir, "profile", "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    self.port = int(f.readline())
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.port is None:
            raise AssertionError("chromium did not open its DevTools port")
        self.ws, self.next_id = None, 1
        while time.monotonic() < deadline and self.ws is None:
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list",
                                                     timeout=10))
            page = next((p for p in pages if p.get("type") == "page"), None)
            if page:
                path = "/" + page["webSocketDebuggerUrl"].split("/", 3)[3]
                self.ws = WS(self.port, path)
            else:
                time.sleep(0.1)
        if self.ws is None:
            raise AssertionError("chromium opened no page")

    def call(self, method: str, params=None, timeout: float = 60.0):
        i = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": i, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.ws.recv_json(timeout)
            if m.get("id") == i:
                if "error" in m:
                    raise AssertionError(f"{method}: {m['error']}")
                return m["result"]
        raise AssertionError(f"{method}: no answer within {timeout} s")

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: str):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            if self.ws:
                self.ws.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
