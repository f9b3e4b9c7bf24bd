#!/usr/bin/env python3
"""keyed_http.py - the API's keyed-stream endpoints under wrk: POST /api/v1/streaming/{key}
(publish) and GET /api/v1/streaming/{key}/latest, `blockpipe serve` with a Redis stream store,
for one or more builds in interleaved rounds (a before/after comparison; not part of make
bench). Prints requests/s, p99 and the server's peak RSS per build and endpoint, and the
medians. Starts its own redis-server (tests/tools/redis.py).
usage: keyed_http.py --build NAME=BLOCKPIPE [--build NAME=BLOCKPIPE ...] [--rounds 3]
       [--duration 8] [--conns 32] [--api-threads 2]"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from apiclient import wait_http  # noqa: E402
from redis import Redis  # noqa: E402
from server import free_port  # noqa: E402

TOKEN = "bench-token"
POST_LUA = """wrk.method = "POST"
wrk.body = '{"seq":1,"price":"3120.01","pair":"ETH/USD"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
""" % TOKEN


def wrk(url, a, script=None):
    cmd = ["wrk", "-t2", f"-c{a.conns}", f"-d{a.duration}s", "--latency"]
    cmd += ["-s", script] if script else []
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        sys.exit(f"wrk {url}: non-2xx answers:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return rps, p99


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def one(a, binary, r, tmp, tag, script):
    port = free_port()
    store = f"redis://127.0.0.1:{r.port}/0?prefix=h{tag}:"
    srv = subprocess.Popen([binary, "serve", "--output", f"sqlite:{tmp}/{tag}.db", "--api",
                            f"127.0.0.1:{port}", "--stream-store", store, "--api-token", TOKEN,
                            "--api-rate-limit", "0", "--api-threads", str(a.api_threads)],
                           stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/{tag}.log", "w"))
    try:
        wait_http(port, 60, srv)
        base = f"http://127.0.0.1:{port}/api/v1/streaming/bench:eth-usd"
        rows = {"publish": wrk(base, a, script)}
        rows["latest"] = wrk(base + "/latest", a)
        peak = rss_mib(srv.pid)
    finally:
        srv.terminate()
        srv.wait(30)
    return rows, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="append", required=True, help="NAME=BLOCKPIPE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--api-threads", type=int, default=2)
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.build]
    res = {}
    with Redis(settings={"appendonly": "no", "save": ""}) as r, \
            tempfile.TemporaryDirectory(prefix="bp-keyed-http-") as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write(POST_LUA)
        for rnd in range(a.rounds):
            order = builds if rnd % 2 == 0 else builds[::-1]
            for name, binary in order:
                rows, peak = one(a, binary, r, tmp, f"{rnd}{name}", script)
                for ep, (rps, p99) in rows.items():
                    res.setdefault((name, ep), []).append((rps, p99, peak))
                    print(f"round {rnd + 1} {name} {ep}: {rps:,.0f}/s p99 {p99:.2f} ms "
                          f"peak RSS {peak:.0f} MiB", flush=True)
                time.sleep(1)
    print(f"\nmedians of {a.rounds} rounds, wrk -t2 -c{a.conns} -d{a.duration}s, "
          f"--api-threads {a.api_threads}:")
    for (name, ep), v in res.items():
        print(f"{name} {ep}: {statistics.median(x[0] for x in v):,.0f}/s "
              f"p99 {statistics.median(x[1] for x in v):.2f} ms "
              f"peak RSS {max(x[2] for x in v):.0f} MiB  rounds "
              + ", ".join(f"{x[0]:,.0f}" for x in v))


if __name__ == "__main__":
    main()
