"""api_bench.py - the API under wrk, and push latency with 1,000 WebSocket clients.

    python3 bench/api_bench.py [--build build] [--blocks 2000] [--duration 8] [--clients 1000]

1. REST: `blockpipe simnode` makes a chain (50 txs per block); `blockpipe backfill` indexes it
   into SQLite (with the API's lookup indexes) and into a private PostgreSQL (then ANALYZE,
   as autovacuum would); `blockpipe
   serve` serves each. wrk (Debian `wrk`, -t2 -c32) measures requests/s and p99 of
   GET /api/blocks/latest and GET /api/transactions?address=A (an address with transactions),
   and of bench_http_lib_choice (libwebsockets, the API's library) answering a static body of
   the same size: the ratio is what the API's work (database read, JSON) costs.
2. Push: anvil mines a block a second (with a few transactions); `blockpipe run --api`
   follows it over its WebSocket; N WebSocket clients (bench_ws_fanout: one epoll thread in
   C) subscribe to blocks; each block message carries committed_ms (when every output had
   it): the client's receive time minus it is the commit-to-client latency (p50, p99, max
   over every client and block).
3. The library choice: bench_http_lib_choice answers the same static 1 KiB from
   libmicrohttpd (thread pool of 2, epoll) and from libwebsockets; wrk on each.
Writes its section of docs/PERFORMANCE.md (--out) through bench/perfdoc.py.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from apiclient import Api, wait_http  # noqa: E402
from pg import Postgres, free_port  # noqa: E402
from simnode import Simnode  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
import perfdoc  # noqa: E402


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def stop_rss(p, sig=signal.SIGINT, timeout=60):
    """Stops process p (sig, then SIGKILL after timeout s) and returns its peak RSS in MiB
    (wait4 on that process: its own high-water mark, not the driver's)."""
    p.send_signal(sig)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return ru.ru_maxrss / 1024.0
        if time.monotonic() > deadline:
            p.kill()
            deadline = float("inf")
        time.sleep(0.05)


def wrk(url, duration, conns=32):
    out = run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    if "Non-2xx" in out:
        raise SystemExit(f"wrk {url}: non-2xx answers:\n{out}")
    return rps, p99


def rest(args, tmp):
    bp = os.path.join(args.build, "blockpipe")
    static = os.path.join(args.build, "bench_http_lib_choice")
    rows = []
    node = Simnode(bp, ["--length", str(args.blocks + 1), "--block-time", "0",
                        "--txs-per-block", "50"])
    pg = Postgres()
    try:
        outs = {"SQLite": f"sqlite:{tmp}/bench.db", "PostgreSQL": pg.url()}
        for name, out in outs.items():
            t = time.monotonic()
            run([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", str(args.blocks),
                 "--output", out, "--sqlite-indexes", "on", "--log-level", "warn"])
            print(f"{name}: backfilled {args.blocks + 1} blocks in {time.monotonic() - t:.0f} s",
                  flush=True)
        # what autovacuum does soon after a bulk load: without statistics PostgreSQL ANDs the
        # address index with a scan of the whole chain's primary key (50x slower here)
        pg.sql("ANALYZE")
        for name, out in outs.items():
            port = free_port()
            srv = subprocess.Popen([bp, "serve", "--output", out, "--api", f"127.0.0.1:{port}",
                                    "--api-rate-limit", "0", "--log-level", "warn"])
            try:
                wait_http(port, 60, srv)
                api = Api(port)
                addr = api.ok("/api/transactions?limit=1")["data"][0]["from_address"]
                paths = ["/api/blocks/latest", f"/api/transactions?address={addr}"]
                for path in paths:
                    size = len(run(["curl", "-s", f"http://127.0.0.1:{port}{path}"]).encode())
                    rps, p99 = wrk(f"http://127.0.0.1:{port}{path}", args.duration)
                    sport = free_port()
                    st = subprocess.Popen([static, "lws", str(sport), str(size)])
                    try:
                        wait_until(lambda: subprocess.run(
                            ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{sport}/"]
                        ).returncode == 0, 30, "the static server")
                        srps, sp99 = wrk(f"http://127.0.0.1:{sport}/", args.duration)
                    finally:
                        srss = stop_rss(st, signal.SIGKILL)
                    rows.append([name, path.split("?")[0] + ("?address=" if "?" in path else ""),
                                 size, rps, p99, srps, sp99, srss])
                    print(rows[-1], flush=True)
            finally:
                rss = stop_rss(srv)
            for r in rows:  # the server's high-water mark over both endpoints' runs
                if r[0] == name:
                    r.append(rss)
    finally:
        pg.stop()
        node.stop()
    return rows


def push(args, tmp):
    """bench_ws_fanout: N clients on one epoll thread in C, so its own delay stays small."""
    bp = os.path.join(args.build, "blockpipe")
    fanout = os.path.join(args.build, "bench_ws_fanout")
    node = Anvil(["--block-time", "1"])
    proc, reader = None, None
    try:
        wl = Workload(node, seed=5)
        wl.setup()
        port = free_port()
        proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--ws",
                                 "ws://" + node.url.split("://")[1], "--output",
                                 f"sqlite:{tmp}/push.db", "--api", f"127.0.0.1:{port}",
                                 "--api-rate-limit", "0", "--api-push-clients", "5000",
                                 "--log-level", "warn"])
        wait_http(port, 60, proc)
        reader = subprocess.Popen([fanout, str(port), str(args.clients), str(args.push_blocks),
                                   str(args.push_blocks * 2 + 60)], stdout=subprocess.PIPE,
                                  text=True)
        if not reader.stdout.readline().startswith("ready"):
            raise SystemExit("bench_ws_fanout did not connect its clients")
        while reader.poll() is None:
            wl.random_tx()  # blocks with transactions
            time.sleep(0.3)
        out = reader.stdout.read().split()
        if reader.returncode != 0 or len(out) != 5:
            raise SystemExit(f"bench_ws_fanout: {reader.returncode} {out}")
        p50, p99, mx, count = float(out[1]), float(out[2]), float(out[3]), int(out[4])
        rss = stop_rss(proc)
        proc = None
        return args.clients, count, p50, p99, mx, rss
    finally:
        if reader and reader.poll() is None:
            reader.kill()
        if proc:
            stop_rss(proc)
        node.stop()


def lib_choice(args):
    """Requests/s and p99 of the same static 1 KiB from each library."""
    static = os.path.join(args.build, "bench_http_lib_choice")
    out = []
    for lib in ("mhd", "lws"):
        port = free_port()
        p = subprocess.Popen([static, lib, str(port), "1024", "2"])
        try:
            wait_until(lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null",
                                               f"http://127.0.0.1:{port}/"]).returncode == 0,
                       30, lib)
            res = wrk(f"http://127.0.0.1:{port}/", args.duration)
        finally:
            rss = stop_rss(p, signal.SIGKILL)
        out.append((lib, *res, rss))
    return out


def report(args, rows, pushed, libs):
    lines = [f"Measured by `make bench` (bench/api_bench.py) on {os.cpu_count()} cores; wrk "
             f"-t2 -c32 for {args.duration} s per row; the chain: {args.blocks + 1} simnode "
             f"blocks of 50 transactions; `blockpipe serve --api-threads 2` (release build).",
             "", "| output | endpoint | answer bytes | API req/s | API p99 ms | static req/s | "
             "static p99 ms | ratio (target ≥ 0.5) | serve peak RSS MiB | static peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, path, size, rps, p99, srps, sp99, srss, rss in rows:
        lines.append(f"| {name} | `{path}` | {size} | {rps:.0f} | {p99:.2f} | {srps:.0f} | "
                     f"{sp99:.2f} | {rps / srps:.2f} | {rss:.0f} | {srss:.0f} |")
    lines += ["", "The PostgreSQL rows pay a round trip per request to a PostgreSQL server on the same "
              "cores (statements are prepared once per connection); SQLite is read in process."]
    n, samples, p50, p99, mx, prss = pushed
    lines += ["", f"Push: {n} WebSocket clients (topic blocks; bench_ws_fanout, one epoll thread "
              f"in C) while anvil mines a block a second: {samples} block messages, "
              f"commit-to-client latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms "
              f"(target p99 < 50 ms); `blockpipe run` peak RSS {prss:.0f} MiB.", "",
              "The server library (static 1 KiB answer, the same wrk):", "",
              "| library | req/s | p99 ms | peak RSS MiB |", "|---|---|---|---|"]
    for lib, rps, p99, rss in libs:
        name = {"mhd": "libmicrohttpd 0.9.75 (pool of 2, epoll)",
                "lws": "libwebsockets 4.1.6 (one service thread)"}[lib]
        lines.append(f"| {name} | {rps:.0f} | {p99:.2f} | {rss:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=None, help="docs/PERFORMANCE.md: write the section")
    ap.add_argument("--blocks", type=int, default=200 if perfdoc.quick() else 2000)
    ap.add_argument("--duration", type=int, default=2 if perfdoc.quick() else 8)
    ap.add_argument("--clients", type=int, default=20 if perfdoc.quick() else 1000)
    ap.add_argument("--push-blocks", type=int, default=3 if perfdoc.quick() else 20)
    args = ap.parse_args()

    def run_all():
        with tempfile.TemporaryDirectory(prefix="bp-apibench-") as tmp:
            rows = rest(args, tmp)
            pushed = push(args, tmp)
        body = report(args, rows, pushed, lib_choice(args))
        print(body)
        if args.out:
            perfdoc.publish(args.out, "api", body)
    if args.out:
        perfdoc.guarded(args.out, "api", run_all)
    else:
        run_all()


if __name__ == "__main__":
    main()
