#!/usr/bin/env python3
"""Arch Network ingestion: `blockpipe backfill --chain-type arch` from `blockpipe simnode
--chain-type arch` into SQLite vs the raw transport of the same requests (the EVM ingest
section's method, bench/ingest_bench.py), every figure a ratio measured in the same run.

- raw transport: bench_curl_loop --replay, a plain libcurl loop sending exactly the requests
  blockpipe's Arch fetch sends for each chunk of blocks (get_block_hash x heights, get_block x
  those hashes, get_processed_transaction x the txids the blocks list, at most 512 per
  request), one after another per chunk as blockpipe's fetch does, the same chunk size (what an
  unmeasured warm-up backfill settled at) and concurrency, bytes dropped. Its request bodies
  are built beforehand from the node's answers (the chain has no forks here).
- blockpipe backfill -> SQLite, end to end (fetch, decode, arch_* rows, commits).
- blockpipe backfill -> PostgreSQL (COPY), end to end, when a PostgreSQL server is installed.
Peak RSS of every process from wait4 on its own PID. Median of ROUNDS interleaved rounds.
Writes its section of docs/PERFORMANCE.md between <!-- arch:begin --> and <!-- arch:end -->;
BENCH_QUICK=1 runs it small.
"""
import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import urllib.request

import perfdoc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
RPC_STATS = re.compile(r"stats rpc\[0\] .* batch=(\d+) .*requests=(\d+) .* blocks=(\d+)")
TX_PER_REQUEST = 512  # src/arch/arch_source.c


def start_simnode(bp, blocks, txs):
    p = subprocess.Popen([bp, "simnode", "--chain-type", "arch", "--listen", "127.0.0.1:0",
                          "--block-time", "0", "--length", str(blocks), "--txs-per-block",
                          str(txs)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p, p.stdout.readline().split()[-1]


def rpc(url, method, params):
    body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p}
            for i, p in enumerate(params)]
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        answers = sorted(json.loads(r.read()), key=lambda a: a["id"])
    if any("error" in a for a in answers):
        sys.exit(f"{method}: the node answered an error: {answers[:2]}")
    return [a["result"] for a in answers]


def batch_body(method, params):
    """A batch as blockpipe's arch_source.c sends it: a single parameter bare."""
    return "[" + ",".join(f'{{"jsonrpc":"2.0","id":{i},"method":"{method}","params":'
                          f'{json.dumps(p, separators=(",", ":"))}}}'
                          for i, p in enumerate(params)) + "]"


def make_jobs(url, last, chunk, path):
    """The replay file: per chunk of blocks its three kinds of requests. Returns txids."""
    hashes, txids = [], []
    for lo in range(0, last + 1, 500):
        hashes += rpc(url, "get_block_hash", list(range(lo, min(lo + 500, last + 1))))
    lists = []
    for lo in range(0, len(hashes), 200):
        lists += [[t if isinstance(t, str) else bytes(t).hex() for t in b["transactions"]]
                  for b in rpc(url, "get_block", hashes[lo:lo + 200])]
    with open(path, "w") as f:
        for lo in range(0, last + 1, chunk):
            hi = min(lo + chunk, last + 1)
            ids = [t for txs in lists[lo:hi] for t in txs]
            txids += ids
            bodies = [batch_body("get_block_hash", list(range(lo, hi))),
                      batch_body("get_block", hashes[lo:hi])]
            bodies += [batch_body("get_processed_transaction", ids[k:k + TX_PER_REQUEST])
                       for k in range(0, len(ids), TX_PER_REQUEST)]
            f.write(f"{hi - lo}\t" + "\x1e".join(bodies) + "\n")
    return len(txids)


def per_request(out):
    m = RPC_STATS.findall(out)
    if not m:
        sys.exit(f"no `stats rpc[0] ... batch=` line in blockpipe's output:\n{out[-2000:]}")
    return int(m[-1][0])


def rows_sqlite(db):
    c = sqlite3.connect(db)
    n = [c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
         for t in ("arch_blocks", "arch_transactions", "arch_account_updates")]
    c.close()
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--curl-loop", required=True)
    ap.add_argument("--out", default="docs/PERFORMANCE.md")
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--txs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if perfdoc.quick():
        a.blocks, a.rounds = 200, 1
    last = a.blocks - 1
    sim, url = start_simnode(a.blockpipe, a.blocks, a.txs)
    res = {"curl": [], "sqlite": [], "pg": []}
    rss = {k: 0.0 for k in res}
    chunks = set()
    pg = None
    try:
        try:
            from pg import Postgres
            pg = Postgres()  # fsync off, as the tests run it
        except (RuntimeError, OSError, TimeoutError) as e:
            print(f"no PostgreSQL figure: {e}", flush=True)
            pg = None

        def backfill(output):
            r = perfdoc.timed([a.blockpipe, "backfill", "--chain-type", "arch", "--rpc", url,
                               "--from", "0", "--to", str(last), "--workers", str(a.workers),
                               "--output", output, "--log-level", "info"])
            return r.seconds, r.rss_mib, per_request(r.out)

        with tempfile.TemporaryDirectory(prefix="bp-arch-bench-") as tmp:
            _, _, chunk = backfill(f"sqlite:{tmp}/warm.db")  # unmeasured warm-up
            ntx = make_jobs(url, last, chunk, f"{tmp}/jobs")
            rows = None
            for r in range(a.rounds):
                t = perfdoc.timed([a.curl_loop, "--replay", f"{tmp}/jobs", url, str(a.workers)])
                res["curl"].append(t.seconds)
                rss["curl"] = max(rss["curl"], t.rss_mib)
                db = f"{tmp}/bp{r}.db"
                dt, m, c = backfill(f"sqlite:{db}")
                res["sqlite"].append(dt)
                rss["sqlite"] = max(rss["sqlite"], m)
                chunks.add(c)
                rows = rows_sqlite(db)
                if rows[0] != a.blocks or rows[1] != ntx:
                    sys.exit(f"the SQLite backfill stored {rows[0]} blocks, {rows[1]} "
                             f"transactions; the node has {a.blocks}, {ntx}")
                os.remove(db)
                if pg:
                    dt, m, c = backfill(pg.url(query=f"schema=arch{r}"))
                    res["pg"].append(dt)
                    rss["pg"] = max(rss["pg"], m)
                    n = pg.sql(f"SELECT count(*) FROM arch{r}.arch_transactions")[0][0]
                    if int(n) != ntx:
                        sys.exit(f"the PostgreSQL backfill stored {n} transactions, not {ntx}")
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in res.items()
                                                     if v), flush=True)
    finally:
        sim.terminate()
        sim.wait()
        if pg:
            pg.stop()
    med = {k: statistics.median(v) for k, v in res.items() if v}
    n = a.blocks
    lines = [
        f"Measured by `make bench` (bench/arch_bench.py) on {os.cpu_count()} cores: `blockpipe "
        f"simnode --chain-type arch` serving {n} blocks of {a.txs} transactions ({ntx} "
        f"transactions, {rows[2]} account updates), {a.workers} workers, median of {a.rounds} "
        "interleaved round(s); peak RSS is each process's own (wait4 on its PID). Blocks per "
        f"chunk: an unmeasured warm-up backfill settled at **{chunk}** (the pool's blocks per "
        "request); the plain loop sends each chunk's requests in that order, one after "
        "another, as blockpipe's Arch fetch does (get_block_hash × heights, get_block × "
        f"hashes, get_processed_transaction × txids, ≤ {TX_PER_REQUEST} per request), the "
        "bodies built beforehand from the node's answers.",
        "",
        "| what | seconds | blocks/s | tx/s | peak RSS MiB | ratio |",
        "|---|---|---|---|---|---|",
        f"| raw transport: plain libcurl loop replaying the same requests, same chunks and "
        f"concurrency, bytes dropped | {med['curl']:.2f} | {n / med['curl']:.0f} | "
        f"{ntx / med['curl']:.0f} | {rss['curl']:.0f} | 1.00 |",
        f"| **blockpipe backfill --chain-type arch → SQLite**, end to end (chunks "
        f"{'/'.join(map(str, sorted(chunks)))}) | {med['sqlite']:.2f} | "
        f"**{n / med['sqlite']:.0f}** | {ntx / med['sqlite']:.0f} | {rss['sqlite']:.0f} | "
        f"**{med['curl'] / med['sqlite']:.2f}** of transport |",
    ]
    if "pg" in med:
        lines.append(f"| blockpipe backfill --chain-type arch → PostgreSQL (binary COPY, fsync "
                     f"off), end to end | {med['pg']:.2f} | {n / med['pg']:.0f} | "
                     f"{ntx / med['pg']:.0f} | {rss['pg']:.0f} | "
                     f"{med['curl'] / med['pg']:.2f} of transport |")
    lines += ["", "The events/s figure of the issue (the WebSocket topics) is in the next "
              "section, \"Arch WebSocket events through blockpipe vs the raw transport\" "
              "(bench/arch_ws_bench.py)."]
    perfdoc.publish(a.out, "arch", "\n".join(lines))
    print(perfdoc.read_section(a.out, "arch"))


if __name__ == "__main__":
    main()
