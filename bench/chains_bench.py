#!/usr/bin/env python3
"""chains_bench.py - many chains in one process vs one chain alone (issue 13).

    python3 bench/chains_bench.py --blockpipe build/blockpipe [--chains 30] [--blocks 300]
                                  [--txs 50] [--rounds 1] [--out docs/PERFORMANCE.md]

One chain alone: one simnode serving chains x blocks blocks of --txs transactions, one
`blockpipe backfill --rpc` of all of them into SQLite. Many chains: as many simnodes (chain
ids and seeds of their own) serving --blocks blocks each, one `blockpipe backfill --config`
with a `chains:` list of all of them into one SQLite file. The same blocks in total, the same
output, the same max_memory (256 MiB for the whole process; the default would give 30 chains
30 x 96 MiB) and the derived tables
off in both (the multi-chain machinery is what is measured, not the analytics). Reports
blocks/s in total, the ratio (target: within 0.8 of the single chain) and peak RSS (of the
blockpipe process: wait4 on its PID) in total and per chain. Writes section "chains".
"""
import argparse
import json
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perfdoc  # noqa: E402

sys.path.insert(0, os.path.join(perfdoc.ROOT, "tests", "tools"))
from simnode import Simnode  # noqa: E402


def stored(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT count(*) FROM blocks").fetchone()[0]
    finally:
        c.close()


def one_chain(a, tmp, total):
    node = Simnode(a.blockpipe, ["--block-time", "0", "--length", str(total),
                                 "--txs-per-block", str(a.txs), "--seed", "1"])
    try:
        db = os.path.join(tmp, "one.db")
        r = perfdoc.timed([a.blockpipe, "backfill", "--rpc", node.urls[0], "--from", "0", "--to",
                           str(total - 1), "--output", f"sqlite:{db}?metrics=off",
                           "--log-level", "warn", "--max-memory", "256MiB"])
        if stored(db) != total:
            sys.exit(f"one chain: {stored(db)} blocks stored, want {total}")
        return r
    finally:
        node.kill()


def many_chains(a, tmp):
    nodes = []
    try:
        for i in range(a.chains):
            nodes.append(Simnode(a.blockpipe, ["--block-time", "0", "--length", str(a.blocks),
                                               "--txs-per-block", str(a.txs), "--chain-id",
                                               str(3000 + i), "--seed", str(10 + i)]))
        db = os.path.join(tmp, "many.db")
        cfg = {"output": f"sqlite:{db}?metrics=off", "log_level": "warn", "max_memory": "256MiB",
               "chains": [{"name": f"c{i:02d}", "chain_id": 3000 + i, "rpc": n.urls[0]}
                          for i, n in enumerate(nodes)]}
        path = os.path.join(tmp, "chains.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = perfdoc.timed([a.blockpipe, "backfill", "--config", path, "--from", "0", "--to",
                           str(a.blocks - 1)])
        if stored(db) != a.chains * a.blocks:
            sys.exit(f"{a.chains} chains: {stored(db)} blocks stored, want "
                     f"{a.chains * a.blocks}")
        return r
    finally:
        for n in nodes:
            n.kill()


def run(a):
    total = a.chains * a.blocks
    ones, manys = [], []
    with tempfile.TemporaryDirectory(prefix="bp-chains-bench-") as tmp:
        for r in range(a.rounds):  # interleaved: the machine's load changes over time
            ones.append(one_chain(a, tmp, total))
            manys.append(many_chains(a, tmp))
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            print(f"round {r + 1}: one chain {total / ones[-1].seconds:.0f} blocks/s, "
                  f"{a.chains} chains {total / manys[-1].seconds:.0f} blocks/s")
    one = sorted(ones, key=lambda r: r.seconds)[len(ones) // 2]
    many = sorted(manys, key=lambda r: r.seconds)[len(manys) // 2]
    ratio = one.seconds / many.seconds
    lines = [
        f"Measured by `make bench` (bench/chains_bench.py) on 2 cores **shared with other "
        f"work** (other sessions' builds and tests ran meanwhile: read the ratio, not the "
        f"absolute figures): {total} blocks of {a.txs} transactions (with receipts and logs) "
        f"from `blockpipe simnode` into one SQLite file (derived tables off), the same "
        f"max_memory (256 MiB for the process) and the default worker cap; median of {a.rounds} "
        f"interleaved round(s). One chain: one simnode, `backfill --rpc`. {a.chains} chains: "
        f"{a.chains} simnodes of {a.blocks} blocks each (chain ids of their own), one "
        f"`backfill --config` with a `chains:` list, every chain writing to the same SQLite "
        f"file (one writer, the chains' batches in FIFO order). The simnodes run on the same "
        f"2 cores.",
        "",
        "| what | seconds | blocks/s in total | ratio | target | peak RSS MiB | per chain |",
        "|---|---|---|---|---|---|---|",
        f"| one chain alone | {one.seconds:.2f} | {total / one.seconds:.0f} | 1.00 | | "
        f"{one.rss_mib:.0f} | {one.rss_mib:.0f} |",
        f"| {a.chains} chains in one process | {many.seconds:.2f} | {total / many.seconds:.0f} "
        f"| **{ratio:.2f}** | ≥ 0.8 | {many.rss_mib:.0f} | {many.rss_mib / a.chains:.1f} |",
    ]
    print("\n".join(lines))
    perfdoc.publish(a.out, "chains", "\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--chains", type=int, default=4 if perfdoc.quick() else 30)
    ap.add_argument("--blocks", type=int, default=20 if perfdoc.quick() else 300)
    ap.add_argument("--txs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1 if perfdoc.quick() else 3)
    ap.add_argument("--out", default=os.path.join(perfdoc.ROOT, "docs", "PERFORMANCE.md"))
    a = ap.parse_args()
    perfdoc.guarded(a.out, "chains", lambda: run(a))


if __name__ == "__main__":
    main()
