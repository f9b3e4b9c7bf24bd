"""What `make run` runs (scripts/run.sh, after the build) prints the dashboard URL, and the
dashboard there shows the chain moving (issue 12, "done when").

scripts/run.sh is started as `make run` starts it, with BLOCKPIPE (the build under test),
API_LISTEN (a free loopback port) and OUTPUT (a temp SQLite file): it starts anvil (a block
a second), the traffic generator and `blockpipe run --api`.
- its banner names the dashboard: "dashboard: http://HOST:PORT/";
- a browser's request there (Accept: text/html) gets the dashboard page, which follows the
  `status` topic over SSE: what it reads there, /api/sync-status, shows the head and the
  committed block rising with transactions committed (the chart and head rendering in a real
  browser is test_api_dashboard's);
- Ctrl-C (SIGINT to the script) stops blockpipe (exit 0), then the helpers: the script exits 0.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import Api  # noqa: E402
from pgcheck import Fail, blockpipe_bin, wait_for  # noqa: E402
from server import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANG = 90  # a hang guard only


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-makerun-")
    port = free_port()
    env = dict(os.environ, BLOCKPIPE=blockpipe_bin(), API_LISTEN=f"127.0.0.1:{port}",
               OUTPUT=f"sqlite:{tmp.name}/bp.db", STATS_INTERVAL="5")
    env.pop("RPC_URL", None)
    out = []
    proc = subprocess.Popen(["bash", os.path.join(ROOT, "scripts", "run.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp.name)
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    api = Api(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: any(f"dashboard: {url}" in line for line in out), HANG,
                 f"the banner naming the dashboard {url}")
        print(f"check: the banner says 'dashboard: {url}'", flush=True)

        def page():
            req = urllib.request.Request(url, headers={"Accept": "text/html"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.headers.get("Content-Type", ""), r.read().decode()
            except OSError:
                return "", ""
        wait_for(lambda: page()[0].startswith("text/html"), HANG, "the dashboard page")
        ctype, html = page()
        for needle in ("<canvas", "EventSource", "status"):
            if needle not in html:
                raise Fail(f"the page at {url} ({ctype}) has no {needle!r}: not the dashboard")

        def chain():
            chains = api.ok("/api/sync-status").get("chains") or [{}]
            return chains[0]
        wait_for(lambda: (chain().get("committed") or 0) >= 2, HANG, "blocks committed")
        first = chain()
        wait_for(lambda: (chain().get("committed") or 0) >= first["committed"] + 3, HANG,
                 "the committed block rising (anvil makes one a second)")
        last = chain()
        if not last.get("head") or last["head"] <= first["head"]:
            raise Fail(f"the head did not rise: {first} then {last}")
        wait_for(lambda: int(api.get("/api/transactions?limit=1")[2].get("count") or 0) > 0,
                 HANG, "transactions from the traffic generator committed")
        print(f"check: the dashboard at {url}; the chain moving: head {first['head']} -> "
              f"{last['head']}, committed {first['committed']} -> {last['committed']}",
              flush=True)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(HANG)
        reader.join(10)
        if rc != 0 or not any("blockpipe stopped (exit 0)" in line for line in out):
            raise Fail(f"run.sh exited {rc} after Ctrl-C:\n{''.join(out[-30:])}")
        print("check: Ctrl-C: blockpipe exit 0, run.sh exit 0", flush=True)
    except (Fail, AssertionError, TimeoutError, OSError, KeyError,
            subprocess.TimeoutExpired) as e:
        print("".join(out[-60:]))
        sys.exit(f"FAIL: {e}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # its EXIT trap stops anvil and the traffic by PID
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()
    print(f"OK: make run's dashboard URL shows the chain moving ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
