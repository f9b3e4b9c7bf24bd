"""The dashboard in headless Chromium while anvil makes blocks.

anvil mines a block every second (with transactions); `blockpipe run --api` follows it. Debian's
Chromium opens http://HOST:PORT/ as a browser does (Accept: text/html: the dashboard page,
embedded in the binary; no CDN), and over the DevTools protocol the test reads what the page
shows:
- the page connects its EventSource (status "live") and receives metrics messages;
- the head number it shows rises (two readings, the second higher) and equals what
  /api/sync-status says at about that time (within a few blocks);
- its charts drew points, and its endpoint and output tables have a row each; their axes'
  labels are round and distinct (window.bpAxis over some ranges);
- the new-blocks list fills from the blocks topic;
- the minute and hour charts (chain_metrics_1m / _1h from /api/analytics, then the minutes the
  metrics topic pushes) show the newest minute as the API has it, and every hour.
A screenshot is kept as a test artifact: $BP_BUILD_DIR/artifacts/dashboard.png.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from apiclient import API_ANY, Api, api_port, wait_http  # noqa: E402
from browser import Browser  # noqa: E402

HANG = 180


def fail(msg):
    raise AssertionError(msg)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-apidash-")
    art = os.path.join(os.environ.get("BP_BUILD_DIR", tmp.name), "artifacts")
    os.makedirs(art, exist_ok=True)
    node = Anvil(["--block-time", "1"])
    proc, browser = None, None
    try:
        wl = Workload(node, seed=9)
        wl.setup()
        cmd = [os.environ["BLOCKPIPE"], "run", "--rpc", node.url, "--ws",
               "ws://" + node.url.split("://", 1)[1], "--output", f"sqlite:{tmp.name}/bp.db",
               "--api", API_ANY, "--poll-interval", "0.5"]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdout=open(f"{tmp.name}/bp.log", "w"),
                                stderr=subprocess.STDOUT)
        port = api_port(f"{tmp.name}/bp.log", HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)
        st, hdrs, body = api.get("/", headers={"Accept": "text/html"})
        if st != 200 or not hdrs["content-type"].startswith("text/html") or "<canvas" not in body:
            fail(f"GET / as a browser: {st} {hdrs.get('content-type')}")
        if not isinstance(api.ok("/"), dict):
            fail("GET / without Accept: text/html is not the JSON index")
        browser = Browser(f"http://127.0.0.1:{port}/")

        def dash():
            wl.random_tx()  # blocks with transactions while the page watches
            return json.loads(browser.evaluate("JSON.stringify(window.bpDashboard || null)")
                              or "null") or {"head": None}
        wait_until(lambda: dash()["head"] is not None, HANG, "the page's first metrics message")
        first = dash()["head"]
        wait_until(lambda: dash()["head"] >= first + 2, HANG,
                   f"the page's head to rise above {first + 1}")
        d = dash()
        shown = int(browser.evaluate("document.getElementById('head').textContent"))
        api_head = api.ok("/api/sync-status")["chains"][0]["head"]
        if abs(shown - api_head) > 3:
            fail(f"the page shows head {shown}, /api/sync-status says {api_head}")
        conn = browser.evaluate("document.getElementById('conn').textContent")
        if conn != "live":
            fail(f"the page's stream is {conn!r}, want live")
        if d["drawn"] <= 0 or d["messages"] < 2:
            fail(f"the charts drew nothing: {d}")
        # the minute and hour charts: /api/analytics, then the minutes the metrics topic pushes
        def newest_minute():
            node.rpc("evm_increaseTime", [20])  # the next blocks in later minutes
            page = dash()
            rows = api.ok("/api/analytics?grain=1m&limit=1&top=0")["data"]["chain_metrics"]
            want = {k: rows[0][k] for k in ("window_start", "txcount", "block_count")} \
                if rows else None
            return page["minuteMessages"] >= 3 and page["minutes"] >= 3 and want and \
                page["lastMinute"] == want
        wait_until(newest_minute, HANG, "the page's minute chart to show the newest "
                   "chain_metrics_1m row (pushed over the metrics topic)")
        # The page reads the hours again at most every 10 s while minutes arrive, and the
        # minutes pushed above may have crossed an hour since its last reading: wait for it.
        def same_hours():
            page = dash()
            api_hours = len(api.ok("/api/analytics?grain=1h&limit=48&top=0")["data"]
                            ["chain_metrics"])
            same_hours.last = (page["minutes"], page["hours"], api_hours)
            return page["hours"] == api_hours and page["hours"] >= 1
        same_hours.last = None
        try:
            wait_until(same_hours, 60, "the page's hour chart to match /api/analytics",
                       interval=0.5)
        except TimeoutError:
            m, h, hours = same_hours.last or (None, None, None)
            fail(f"the page has {m} minutes, {h} hours; the API {hours} hours")
        d = dash()
        print(f"check: the minute chart shows {d['minutes']} minutes ({d['minuteMessages']} "
              f"pushed), the newest equal to /api/analytics; the hour chart {d['hours']}",
              flush=True)
        rows = browser.evaluate("[document.querySelectorAll('#eps tr').length, "
                                "document.querySelectorAll('#outs tr').length, "
                                "document.querySelectorAll('#newblocks li').length]")
        if rows[0] < 1 or rows[1] < 1 or rows[2] < 1:
            fail(f"endpoint / output / new-block rows: {rows}")
        # the charts' axes: five distinct round labels over the range (106..109, the head
        # chart of a make run, was labelled 109, 108, 108, 107, 106)
        ranges = [[106, 109], [10, 178], [0.9, 3.2], [5, 5], [47.7, 47.8], [1796489763, 1796489770]]
        axes = json.loads(browser.evaluate(
            f"JSON.stringify({json.dumps(ranges)}.map((r) => window.bpAxis(r[0], r[1])))"))
        for (lo, hi), ax in zip(ranges, axes):
            labels = ax["labels"]
            if len(set(labels)) != 5 or not ax["lo"] <= lo <= hi <= ax["hi"] or \
                    float(labels[0]) < hi or float(labels[-1]) > lo:
                fail(f"the axis of {lo}..{hi}: {ax}: not five distinct labels over the range")
        print(f"check: chart axes: {[a['labels'] for a in axes[:2]]} ...", flush=True)
        shot = os.path.join(art, "dashboard.png")
        browser.screenshot(shot)
        if os.path.getsize(shot) < 10000:
            fail(f"the screenshot is only {os.path.getsize(shot)} bytes")
        print(f"check: the page went live; head rose from {first} to {d['head']} (shown "
              f"{shown}, API {api_head}); charts drew {d['drawn']} points from "
              f"{d['messages']} messages; {rows[0]} endpoint, {rows[1]} output, {rows[2]} block "
              f"rows; screenshot {shot}", flush=True)
        browser.close()
        browser = None
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            fail(f"blockpipe exited with {proc.returncode} after SIGINT")
    except (AssertionError, TimeoutError, OSError) as e:
        print(open(f"{tmp.name}/bp.log", errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        if browser:
            browser.close()
        if proc and proc.poll() is None:
            proc.kill()
        node.stop()
        tmp.cleanup()
    print(f"OK: the dashboard shows the chain moving ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
