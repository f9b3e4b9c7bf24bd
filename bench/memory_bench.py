#!/usr/bin/env python3
"""memory_bench.py - memory per chain, at the head and in a full-speed backfill.

    python3 bench/memory_bench.py --blockpipe build/blockpipe [--chains 10] [--head-seconds 90]
                                  [--rounds 3] [--out docs/PERFORMANCE.md]

The per-chain budget: at most 20 MB at the head, at most 100 MB in a full-speed backfill.

- Backfill: `blockpipe simnode` chains of 200-tx blocks (600 blocks 12 s apart) and 2,000-tx
  blocks (150 blocks), backfilled into SQLite with the derived tables on (the default), 8
  workers, with the default budget (96 MiB for one chain) and with --max-memory 256MiB (the
  default before), rounds interleaved, medians; peak RSS is wait4's ru_maxrss of blockpipe's
  PID. The ratio is blocks/s under the default over blocks/s under 256 MiB.
- Head: simnodes making a 200-tx block every 2 s; `blockpipe run` follows them into SQLite
  with the derived tables and the API on: one chain alone, then --chains chains in one process
  (a `chains:` config). The resident set (VmRSS) and its anonymous part (RssAnon: what the
  process itself allocated; the rest is the binary and shared libraries, mapped once however
  many chains run), read every 2 s over the last third of --head-seconds: the medians (and
  the highest VmRSS). Per chain: the one-chain process's RSS, and the
  marginal cost of each further chain, (RSS of N chains - RSS of one) / (N - 1).
Writes section "memory".
"""
import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perfdoc  # noqa: E402

sys.path.insert(0, os.path.join(perfdoc.ROOT, "tests", "tools"))
from simnode import Simnode  # noqa: E402

BUDGETS = (("default (96 MiB)", []), ("256 MiB", ["--max-memory", "256MiB"]))


def backfill_case(a, tmp, blocks, txs):
    """[(label, median seconds, max peak RSS MiB)] for each budget."""
    node = Simnode(a.blockpipe, ["--block-time", "12", "--start-head", str(blocks - 1),
                                 "--txs-per-block", str(txs)])
    runs = {label: [] for label, _ in BUDGETS}
    try:
        for r in range(a.rounds):
            for label, flags in BUDGETS:
                db = os.path.join(tmp, "b.db")
                res = perfdoc.timed([a.blockpipe, "backfill", "--rpc", node.urls[0], "--from", "0",
                                     "--to", str(blocks - 1), "--workers", "8", "--output",
                                     f"sqlite:{db}", "--log-level", "warn", *flags])
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
                runs[label].append(res)
                print(f"{txs}-tx blocks, round {r + 1}, {label}: {res.seconds:.2f} s, "
                      f"peak RSS {res.rss_mib:.0f} MiB", flush=True)
    finally:
        node.kill()
    return [(label, statistics.median(x.seconds for x in runs[label]),
             max(x.rss_mib for x in runs[label])) for label, _ in BUDGETS]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def head_case(a, tmp, chains):
    """(VmRSS MiB, RssAnon MiB, blocks stored, max VmRSS MiB) of `run` following `chains`
    simnodes: the medians of readings every 2 s over the last third of --head-seconds."""
    nodes = []
    try:
        for i in range(chains):
            nodes.append(Simnode(a.blockpipe, ["--block-time", "2", "--txs-per-block", "200",
                                               "--chain-id", str(4000 + i), "--seed", str(20 + i)]))
        db = os.path.join(tmp, "head.db")
        cfg = {"output": f"sqlite:{db}", "log_level": "warn", "api": "127.0.0.1:0",
               "chains": [{"name": f"h{i:02d}", "chain_id": 4000 + i, "rpc": n.urls[0]}
                          for i, n in enumerate(nodes)]}
        path = os.path.join(tmp, "head.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        with open(os.path.join(tmp, "head.log"), "w") as log:
            p = subprocess.Popen([a.blockpipe, "run", "--config", path], stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            # One reading caught whatever was in flight at that instant (a block being decoded,
            # a minute's rollups): sampled every 2 s over the last third, median and max.
            end = time.monotonic() + a.head_seconds
            time.sleep(a.head_seconds * 2 / 3)
            samples = []
            while True:
                if p.poll() is not None:
                    with open(os.path.join(tmp, "head.log")) as f:
                        sys.exit(f"run exited {p.returncode}: {f.read()[-3000:]}")
                samples.append((status_kib(p.pid, "VmRSS") / 1024,
                                status_kib(p.pid, "RssAnon") / 1024))
                if time.monotonic() >= end:
                    break
                time.sleep(min(2, max(end - time.monotonic(), 0)))
            rss = statistics.median(x[0] for x in samples)
            anon = statistics.median(x[1] for x in samples)
            top = max(x[0] for x in samples)
        finally:
            p.terminate()
            p.wait(60)
        c = sqlite3.connect(db)
        stored = c.execute("SELECT count(*) FROM blocks").fetchone()[0]
        c.close()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        return rss, anon, stored, top
    finally:
        for n in nodes:
            n.kill()


def run(a):
    lines = [
        f"Measured by `make bench` (bench/memory_bench.py) on 2 cores shared with other work "
        f"(read the ratios and the resident sizes, not the seconds). The per-chain budget: at "
        f"most 20 MB at the head, at most 100 MB in a full-speed backfill. `--max-memory` "
        f"defaults to 96 MiB per chain (N chains: N x 96 MiB); glibc's malloc is held to one "
        f"arena per core (at least 2) and a fixed mmap threshold (src/core/budget.c).",
        "",
        f"**Backfill** into SQLite, derived tables on, 8 workers, median of {a.rounds} "
        f"interleaved round(s), peak RSS from wait4 on blockpipe's PID:",
        "",
        "| blocks | budget | seconds | blocks/s | vs 256 MiB | peak RSS MiB | target |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bp-mem-bench-") as tmp:
        for blocks, txs in ((a.blocks, 200), (max(a.blocks // 4, 10), 2000)):
            res = backfill_case(a, tmp, blocks, txs)
            base = res[-1][1]
            for label, secs, rss in res:
                lines.append(f"| {blocks} x {txs} tx | {label} | {secs:.2f} | "
                             f"{blocks / secs:.1f} | {base / secs:.2f} | {rss:.0f} | "
                             f"{'≤ 95 MiB (100 MB)' if label.startswith('default') else ''} |")
        one = head_case(a, tmp, 1)
        print(f"head, one chain: {one}", flush=True)
        many = head_case(a, tmp, a.chains)
        print(f"head, {a.chains} chains: {many}", flush=True)
    marginal = (many[0] - one[0]) / (a.chains - 1)
    marginal_anon = (many[1] - one[1]) / (a.chains - 1)
    lines += [
        "",
        f"**At the head**: simnodes making a 200-tx block every 2 s, `run` into SQLite with the "
        f"derived tables and the API on for {a.head_seconds} s, the resident set read every 2 s "
        f"over the last third: medians, and the highest VmRSS (RssAnon: what the process "
        f"allocated; the rest is the binary and shared libraries, mapped once):",
        "",
        "| chains in the process | blocks stored | VmRSS MiB (max) | RssAnon MiB | per chain MiB | "
        "target |",
        "|---|---|---|---|---|---|",
        f"| 1 | {one[2]} | {one[0]:.1f} ({one[3]:.1f}) | {one[1]:.1f} | {one[0]:.1f} (all of it) | "
        f"≤ 19 MiB (20 MB) |",
        f"| {a.chains} | {many[2]} | {many[0]:.1f} ({many[3]:.1f}) | {many[1]:.1f} | "
        f"{marginal:.1f} each further chain (anon {marginal_anon:.1f}) | ≤ 19 MiB (20 MB) |",
    ]
    print("\n".join(lines))
    perfdoc.publish(a.out, "memory", "\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--chains", type=int, default=3 if perfdoc.quick() else 10)
    ap.add_argument("--blocks", type=int, default=60 if perfdoc.quick() else 600)
    ap.add_argument("--head-seconds", type=int, default=15 if perfdoc.quick() else 90)
    ap.add_argument("--rounds", type=int, default=1 if perfdoc.quick() else 3)
    ap.add_argument("--out", default=os.path.join(perfdoc.ROOT, "docs", "PERFORMANCE.md"))
    a = ap.parse_args()
    perfdoc.guarded(a.out, "memory", lambda: run(a))


if __name__ == "__main__":
    main()
