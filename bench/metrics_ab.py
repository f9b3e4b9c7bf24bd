#!/usr/bin/env python3
"""metrics_ab.py - the derived analytics tables' cost in PostgreSQL or SQLite, binary A against
binary B in one session (issue 10, part 6: backfill with the derived tables on >= 0.8 of off).

    python3 bench/metrics_ab.py --binary before=OLD/blockpipe --binary after=build/blockpipe
    python3 bench/metrics_ab.py --output sqlite --blocks 1000 --binary ...
    python3 bench/metrics_ab.py --output both --binary ...   (both outputs' ratios, one session)
    python3 bench/metrics_ab.py --output sqlite --busy --blocks 300 --binary ...
    python3 bench/metrics_ab.py --output both --fast --blocks 1000 --binary ...

Backfills bench/metrics_bench.py's 12 s chain (600 simnode blocks of 200 transactions by
default, 8 workers; `--fast`: its 1 s chain, whose hour and day hold 130,000 (contract, sender)
pairs by block 1,000) with `--metrics off` and `--metrics on`, every binary and mode in every
round, the order reversed every other round: into one private PostgreSQL server
(tests/tools/pg.py, autovacuum off, a CHECKPOINT before each run), each backfill into a schema
of its own, or into a new SQLite file in a temporary directory, or (`--output both`) each round into
both, one after the other, so that both outputs' ratios come from one session (run the whole
script under
`nice`: the server, simnode and blockpipe then share the same weight). Per run: wall seconds,
blockpipe's CPU (user + system, wait4), the server's CPU (PostgreSQL: the postmaster's own and
its children's, reaped or live, from /proc, 0.5 s after the run; SQLite: 0), peak RSS, the load
average. Prints each run and the medians; writes nothing (notes in docs/PERFORMANCE.md are
written by hand from its output).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "tools"))
from pg import Postgres  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid, children=True):
    """user + system seconds of pid (and of its reaped children)."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    n = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return n / TICK


def server_cpu(pm):
    """The postmaster's CPU, its reaped children's and its live children's."""
    total = cpu_of(pm)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pm:
                total += cpu_of(int(p), children=False)
    return total


def run(cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    out = p.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out[-3000:]}")
    return dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


class PgTarget:
    def __init__(self, pg):
        self.pg = pg

    def before(self, name):
        self.pg.sql("CHECKPOINT")
        self.schema = name
        return server_cpu(self.pg.proc.pid), self.pg.url(query=f"schema={name}")

    def after(self, s0):
        time.sleep(0.5)
        srv = server_cpu(self.pg.proc.pid) - s0
        self.pg.sql(f"DROP SCHEMA {self.schema} CASCADE")
        return srv


class SqliteTarget:
    def __init__(self, tmp):
        self.tmp = tmp

    def before(self, name):
        self.db = os.path.join(self.tmp, name + ".db")
        return 0.0, f"sqlite:{self.db}"

    def after(self, s0):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.db + suffix):
                os.remove(self.db + suffix)
        return 0.0


def rounds(a, bins, url, res, targets):
    for r in range(a.rounds):
        for out, target in targets:
            order = [(n, p, m) for n, p in bins for m in ("off", "on")]
            for name, path, mode in order if r % 2 == 0 else reversed(order):
                load = os.getloadavg()[0]
                s0, output = target.before(f"r{r}_{name}_{mode}".replace("-", "_"))
                wall, cpu, rss = run([path, "backfill", "--rpc", url, "--from", "0", "--to",
                                      str(a.blocks - 1), "--workers", str(a.workers), "--output",
                                      output, "--metrics", mode, "--log-level", "warn"])
                srv = target.after(s0)
                res.setdefault((out, name, mode), []).append((wall, cpu, srv, rss, load))
                print(f"round {r + 1} {out:>8} {name:>8} {mode:>3}: {wall:6.2f} s, blockpipe CPU "
                      f"{cpu:5.2f} s, server CPU {srv:5.2f} s, peak RSS {rss:4.0f} MiB, "
                      f"load {load:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=600)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--output", choices=("postgres", "sqlite", "both"), default="postgres")
    ap.add_argument("--busy", action="store_true",
                    help="the busy chain instead: blocks of 1,000 transactions 1 s apart from "
                    "--senders 100000000 --contracts 100000 --zipf 1 (the hour's and day's sets "
                    "outgrow the default budget and are given up to the output)")
    ap.add_argument("--fast", action="store_true",
                    help="bench/metrics_bench.py's 1 s chain instead: blocks of 200 transactions "
                    "1 s apart (the same 4,096 senders and 256 contracts)")
    a = ap.parse_args()
    bins = [b.split("=", 1) for b in a.binary]
    chain = (["--block-time", "1", "--txs-per-block", "1000", "--senders", "100000000",
              "--contracts", "100000", "--zipf", "1"] if a.busy
             else ["--block-time", "12", "--txs-per-block", "200"])
    # simnode stamps blocks 1 s apart at --block-time 0, all of them there at once
    head = (["--block-time", "0", "--length", str(a.blocks), "--txs-per-block", "200"] if a.fast
            else ["--start-head", str(a.blocks - 1)] + chain)
    sim = subprocess.Popen([bins[0][1], "simnode", "--listen", "127.0.0.1:0"] + head,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = sim.stdout.readline().split()[-1]
    res = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("sqlite", SqliteTarget(tmp))] if a.output != "postgres" else []
            if a.output == "sqlite":
                rounds(a, bins, url, res, targets)
            else:
                with Postgres(settings={"autovacuum": "off"}) as pg:
                    rounds(a, bins, url, res, [("postgres", PgTarget(pg))] + targets)
    finally:
        sim.terminate()
        sim.wait()
    print("\nmedians: output | binary | wall off / on | ratio | blockpipe CPU off / on | server CPU "
          "off / on | CPU ratio (both) | peak RSS off / on | load")
    for out in sorted({k[0] for k in res}):
        for name, _ in bins:
            off, on = res[(out, name, "off")], res[(out, name, "on")]

            def med(rows, i):
                return statistics.median(x[i] for x in rows)
            loads = [x[4] for x in off + on]
            print(f"{out} | {name} | {med(off, 0):.2f} / {med(on, 0):.2f} | "
                  f"**{med(off, 0) / med(on, 0):.2f}** | {med(off, 1):.2f} / {med(on, 1):.2f} | "
                  f"{med(off, 2):.2f} / {med(on, 2):.2f} | "
                  f"{(med(off, 1) + med(off, 2)) / (med(on, 1) + med(on, 2)):.2f} | "
                  f"{max(x[3] for x in off):.0f} / {max(x[3] for x in on):.0f} | "
                  f"{min(loads):.1f}-{max(loads):.1f}")
            print(f"{out} {name} per-round ratios: " + ", ".join(
                f"{o[0] / n[0]:.2f}" for o, n in zip(off, on)))

if __name__ == "__main__":
    main()
