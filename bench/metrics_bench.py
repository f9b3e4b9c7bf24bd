#!/usr/bin/env python3
"""What the derived analytics tables cost (issue 10, part 6), against `blockpipe simnode`:

- backfill throughput into SQLite with the derived tables on (`--metrics on`, the default;
  and with `--ml on`, ml_predictions too) vs off, the same chain, rounds interleaved,
  medians: the ratio is blocks/s with over blocks/s without (target >= 0.8); the same for
  PostgreSQL (a private server, tests/tools/pg.py). Two chains of 200-tx blocks: 12 s apart
  (Ethereum's pace, 17 tx/s) and 1 s apart (200 tx/s: every minute, hour and day set much
  fuller);
- the per-window address sets (active_addresses, contract_senders: hours and days) of a
  1,000-tx/s chain (1,000-tx blocks one second apart): rows and bytes per window measured on a
  stretch of the chain, projected to a day, and the peak RSS of blockpipe itself with and
  without them (the metrics module keeps the open hour's and day's members in memory, charged
  to --max-memory).
Writes its section of docs/PERFORMANCE.md between <!-- metrics:begin --> and
<!-- metrics:end -->; BENCH_QUICK=1 runs it small.
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile

import perfdoc

sys.path.insert(0, os.path.join(perfdoc.ROOT, "tests", "tools"))
from pg import Postgres  # noqa: E402

KEEP_ALL = ["--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
            "--retention-1h", "0"]
SET_TABLES = ("active_addresses", "contract_senders")


def start_simnode(bp, *args):
    p = subprocess.Popen([bp, "simnode", "--listen", "127.0.0.1:0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p, p.stdout.readline().split()[-1]


def chain_args(blocks, spacing, txs):
    """simnode flags of a chain of blocks 0..blocks-1 that all exist at once, spacing seconds
    apart (simnode stamps blocks 1 s apart at --block-time 0)."""
    if spacing == 1:
        return ["--block-time", "0", "--length", str(blocks), "--txs-per-block", str(txs)]
    return ["--block-time", str(spacing), "--start-head", str(blocks - 1), "--txs-per-block",
            str(txs)]


MODES = {"off": ["--metrics", "off"], "on": ["--metrics", "on"],
         "ml": ["--metrics", "on", "--ml", "on"]}


def backfill(a, url, last, output, mode, extra=()):
    return perfdoc.timed([a.blockpipe, "backfill", "--rpc", url, "--from", "0", "--to", str(last),
                          "--workers", str(a.workers), "--output", output, *MODES[mode],
                          "--log-level", "warn", *extra])


COUNTED = ("transactions", "logs", "chain_metrics_block", "chain_metrics_1m", "contract_metrics_1m",
           "contract_metrics_1h", "active_addresses", "contract_senders", "token_transfers",
           "ml_predictions")


def sqlite_counts(db):
    c = sqlite3.connect(db)
    try:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
    finally:
        c.close()


def throughput(a, tmp, pg, spacing):
    """Median seconds of backfills in each mode, per output."""
    sim, url = start_simnode(a.blockpipe, *chain_args(a.blocks, spacing, 200))
    last = a.blocks - 1
    res = {(o, m): [] for o in ("sqlite", "postgres") for m in MODES}
    rss = dict.fromkeys(res, 0.0)
    counts = None
    try:
        for r in range(a.rounds):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                db = os.path.join(tmp, f"t{r}{mode}.db")
                res_ = backfill(a, url, last, f"sqlite:{db}", mode)
                res[("sqlite", mode)].append(res_.seconds)
                rss[("sqlite", mode)] = max(rss[("sqlite", mode)], res_.rss_mib)
                if mode == "ml":
                    counts = sqlite_counts(db)
                os.remove(db)
                schema = f"r{r}{mode}"
                res_ = backfill(a, url, last, pg.url(query=f"schema={schema}"), mode)
                res[("postgres", mode)].append(res_.seconds)
                rss[("postgres", mode)] = max(rss[("postgres", mode)], res_.rss_mib)
                pg.sql(f"DROP SCHEMA {schema} CASCADE")
            print(f"{spacing}s blocks, round {r + 1}: " + ", ".join(
                f"{o}/{m} {v[-1]:.2f}s" for (o, m), v in res.items()), flush=True)
    finally:
        sim.terminate()
        sim.wait()
    if not counts or counts["chain_metrics_block"] != a.blocks:
        sys.exit(f"the backfill with the derived tables wrote {counts} (want {a.blocks} blocks)")
    return {k: statistics.median(v) for k, v in res.items()}, rss, counts


def set_sizes(a, tmp, pg):
    """Rows per window of each grain and bytes per row of the sets at 1,000 tx/s."""
    sim, url = start_simnode(a.blockpipe, *chain_args(a.set_blocks, 1, 1000))
    last = a.set_blocks - 1
    db = os.path.join(tmp, "sets.db")
    try:
        on = backfill(a, url, last, f"sqlite:{db}", "on", KEEP_ALL)
        off = backfill(a, url, last, f"sqlite:{os.path.join(tmp, 'nosets.db')}", "off")
        backfill(a, url, last, pg.url(query="schema=sets"), "on", KEEP_ALL)
        # PostgreSQL keeps an open window's set as its raw transactions (lazy_set_windows) until
        # something needs its rows: an output opened with metrics off stores them
        backfill(a, url, last, pg.url(query="schema=sets"), "off", KEEP_ALL)
    finally:
        sim.terminate()
        sim.wait()
    c = sqlite3.connect(db)
    out = {"rss_on": on.rss_mib, "rss_off": off.rss_mib, "seconds_on": on.seconds,
           "seconds_off": off.seconds}
    for t in SET_TABLES:
        per = {}  # PostgreSQL's: SQLite stores no set of a window it saw whole
        for grain, windows, rows in pg.sql(
                f"SELECT grain, count(DISTINCT window_start), count(*) FROM sets.{t} GROUP BY grain"):
            per[grain] = int(rows) / max(int(windows), 1)
        out[t] = per
        try:
            size = c.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (t,)).fetchone()[0]
        except sqlite3.OperationalError:
            size = None  # SQLite built without dbstat
        n = c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        out[t + "_sqlite_bpr"] = size / n if size and n else None
        pgb = pg.sql(f"SELECT pg_total_relation_size('sets.{t}'), (SELECT count(*) FROM sets.{t})")
        out[t + "_pg_bpr"] = int(pgb[0][0]) / max(int(pgb[0][1]), 1)
    c.close()
    return out


def mib(x):
    return f"{x / 2 ** 20:,.0f} MiB" if x >= 2 ** 20 else f"{x / 1024:,.0f} KiB"


def table_of(a, med, rss, counts, spacing):
    txs = counts["transactions"]
    derived = sum(counts[t] for t in COUNTED[2:])
    lines = [
        f"**{spacing} s between blocks**: {a.blocks} blocks of 200 transactions "
        f"({txs:,} transactions, {counts['logs']:,} logs); with the derived tables and "
        f"`--ml on` the database also held {derived:,} derived rows ({', '.join(f'{t} {counts[t]:,}' for t in COUNTED[2:])}).",
        "",
        "| output | without | with (the default) | with `--ml on` too | blocks/s with / "
        "without (target >= 0.8) | with `--ml on` / without | peak RSS without / with |",
        "|---|---|---|---|---|---|---|"]
    for o in ("sqlite", "postgres"):
        off, on, ml = med[(o, "off")], med[(o, "on")], med[(o, "ml")]
        lines.append(f"| {o} | {off:.2f} s | {on:.2f} s | {ml:.2f} s | **{off / on:.2f}** | "
                     f"{off / ml:.2f} | {rss[(o, 'off')]:.0f} / {rss[(o, 'on')]:.0f} MiB |")
    return lines


def run(a):
    with tempfile.TemporaryDirectory(prefix="bp-metrics-bench-") as tmp, Postgres() as pg:
        slow = throughput(a, tmp, pg, 12)
        fast = throughput(a, tmp, pg, 1)
        sets = set_sizes(a, tmp, pg)
    lines = [f"The same binary backfilling the same simnode chain with and without the derived "
             f"tables, {a.rounds} round(s) each way interleaved, medians; simnode draws senders "
             "from 4,096 addresses and calls from 256 contracts at random, so nearly every call "
             "is a new (contract, sender) pair of its hour: the worst case for contract_senders.",
             ""]
    lines += table_of(a, *slow, 12) + [""] + table_of(a, *fast, 1)

    def cost(rows, key):
        bpr = sets[key]
        return f"{rows:,.0f} rows ({mib(rows * bpr)})" if bpr else f"{rows:,.0f} rows"
    lines += [
        "",
        f"Address sets at 1,000 tx/s: {a.set_blocks} simnode blocks of 1,000 transactions one "
        f"second apart ({a.set_blocks / 60:.0f} minutes of chain), every set kept. Minutes keep "
        "no set (their distinct senders come from the minute itself: the metrics module's "
        "summary, or the minute's raw transactions). An hour's or a day's set stops growing here "
        "once simnode's 4,096 senders (x 256 contracts) have all appeared: a real chain's are "
        "larger, with fewer pairs per transaction. Rows: PostgreSQL's tables (it writes the "
        "rows of a window only once something needs them, docs/SCHEMA.md: here once the "
        "backfill is over, by an open with `metrics=off`). SQLite stores no "
        "set of a window blockpipe saw whole since its start (it counts the module's new "
        "members; the raw transactions in the same file hold the set), only the sets a count "
        "needed after a restart, a reorg or the sets given up for memory: none in this backfill. "
        "Sizes: SQLite dbstat (of such stored sets; '-': none), PostgreSQL "
        "pg_total_relation_size, both with the primary key; a day's cost at PostgreSQL's.",
        "",
        "| set | rows per 1h window | per 1d window | a day of windows (24 h + 1 d) | bytes/row "
        "SQLite / PostgreSQL |",
        "|---|---|---|---|---|",
    ]
    for t in SET_TABLES:
        h, d = sets[t].get("1h", 0), sets[t].get("1d", 0)
        lite = sets[t + "_sqlite_bpr"]
        lines.append(f"| {t} | {h:,.0f} | {d:,.0f} | {cost(24 * h + d, t + '_pg_bpr')} | "
                     f"{f'{lite:.0f}' if lite else '-'} / {sets[t + '_pg_bpr']:.0f} |")
    lines += [
        "",
        "In memory, blockpipe keeps the open minute's, hour's and day's members (the windows it "
        "saw begin) as interned 32-bit address ids in 64-bit key sets, so that only new set rows "
        "are written; they, the batch's derived rows and SQLite's page cache for the derived "
        "tables are charged to `--max-memory` (default 96 MiB for one chain): peak RSS for this backfill "
        f"{sets['rss_on']:.0f} MiB with the derived tables, {sets['rss_off']:.0f} MiB without "
        f"({sets['seconds_on']:.1f} s vs {sets['seconds_off']:.1f} s).",
    ]
    perfdoc.publish(a.out, "metrics", "\n".join(lines))
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--blocks", type=int, default=100 if perfdoc.quick() else 1000)
    ap.add_argument("--set-blocks", type=int, default=150 if perfdoc.quick() else 600)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1 if perfdoc.quick() else 3)
    a = ap.parse_args()
    perfdoc.guarded(a.out, "metrics", lambda: run(a))


if __name__ == "__main__":
    main()
