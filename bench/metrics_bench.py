#!/usr/bin/env python3
"""What the derived analytics tables cost (issue 10, part 6), against `blockpipe simnode`:

- backfill throughput into SQLite with the derived tables on (`--metrics on`, the default;
  and with `--ml on`, ml_predictions too) vs off, the same chain, rounds interleaved,
  medians: the ratio is blocks/s with over blocks/s without (target >= 0.8); the same for
  PostgreSQL (a private server, tests/tools/pg.py). Two chains of 200-tx blocks: 12 s apart
  (Ethereum's pace, 17 tx/s) and 1 s apart (200 tx/s: every minute, hour and day set much
  fuller);
- the per-window address sets (active_addresses, contract_senders: hours and days) of a
  1,000-tx/s chain (1,000-tx blocks one second apart) whose senders do not run out: simnode
  --senders 100000000 --contracts 100000 --zipf 1 (a few busy addresses, a long tail). On
  --set-blocks seconds of it: the distinct senders and (contract, sender) pairs as the window
  grows (from the raw transactions), what the metrics module's in-memory sets held per member
  and per interned address (its own accounting, logged at the end of a backfill), the peak RSS
  with them and without, what the default --max-memory does (windows given up, their sets
  stored as rows), and bytes per row in SQLite and PostgreSQL. A whole day is measured by
  bench_daysets (bench/daysets_bench.py, section `metrics-day`), not extrapolated here.
--case throughput (the default) writes section `metrics` of docs/PERFORMANCE.md, --case sets
section `metrics-sets` (bench/run.sh runs both); BENCH_QUICK=1 runs them small.
"""
import argparse
import bisect
import itertools
import math
import os
import re
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


POPULATION = ["--senders", "100000000", "--contracts", "100000", "--zipf", "1"]
SETS_LOG = re.compile(
    r"held at most (\d+) bytes \(bound (\d+)\): (\d+) interned addresses in (\d+) bytes, (\d+) "
    r"members \(minute (\d+), hour (\d+), day (\d+)\) in the rest; (\d+) windows given up")
GIVEN_UP = re.compile(r"open (\w+) window at \d+ outgrew the (\d+) MiB its address sets may hold "
                      r"\((\d+) bytes: (\d+) members in it")


def sets_held(log):
    """The metrics module's account of its sets at their largest (bp_metrics_log_sets)."""
    m = SETS_LOG.search(log)
    if not m:
        sys.exit(f"no account of the address sets in the log:\n{log[-2000:]}")
    keys = ("bytes", "bound", "ids", "id_bytes", "members", "m1", "h1", "d1", "dropped")
    return dict(zip(keys, map(int, m.groups())))


def growth(db, last):
    """Distinct senders, (contract, sender) pairs and contracts of blocks 1..n (n seconds of
    chain), at every tenth of the span."""
    c = sqlite3.connect(db)
    try:
        firsts = {}
        for what, sql in (
                ("senders", "SELECT min(block_number) FROM transactions GROUP BY from_address"),
                ("pairs", f"SELECT min(block_number) FROM transactions WHERE ({CONTRACT_OF}) IS "
                          f"NOT NULL GROUP BY {CONTRACT_OF}, from_address"),
                ("contracts", f"SELECT min(block_number) FROM transactions WHERE ({CONTRACT_OF}) "
                              f"IS NOT NULL GROUP BY {CONTRACT_OF}")):
            firsts[what] = sorted(r[0] for r in c.execute(sql))
        per_block = sorted(c.execute("SELECT block_number, count(*) FROM transactions GROUP BY 1"))
    finally:
        c.close()
    numbers = [b for b, _ in per_block]
    cumulative = list(itertools.accumulate(n for _, n in per_block))
    points = []
    for n in sorted({max(1, last * k // 10) for k in range(1, 11)}):
        i = bisect.bisect_right(numbers, n)
        points.append({"blocks": n, "txs": cumulative[i - 1] if i else 0,
                       **{k: bisect.bisect_right(v, n) for k, v in firsts.items()}})
    return points


def zipf_distinct(draws, pool=100_000_000, s=1.0):
    """Expected distinct ranks of `draws` draws from simnode's Zipf-like pool (its continuous
    power law on [1, pool + 1), rank floor(x) - 1), ranks bucketed 1 % wide."""
    def cdf(x):
        return math.log(x) / math.log(pool + 1) if s == 1 else \
            (x ** (1 - s) - 1) / ((pool + 1) ** (1 - s) - 1)
    total, k = 0.0, 1
    while k <= pool:
        k2 = min(pool + 1, max(k + 1, int(k * 1.01)))
        p = (cdf(k2) - cdf(k)) / (k2 - k)
        total += (k2 - k) * -math.expm1(-p * draws)
        k = k2
    return total


CONTRACT_OF = ("CASE WHEN to_address IS NULL THEN receipt_contract_address"
               " WHEN input IS NOT NULL AND input <> '0x' THEN to_address END")


def sqlite_bpr(db, t):
    c = sqlite3.connect(db)
    try:
        n = c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        try:
            size = c.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (t,)).fetchone()[0]
        except sqlite3.OperationalError:
            size = None  # SQLite built without dbstat
        windows = c.execute(f"SELECT grain, count(DISTINCT window_start), count(*) FROM {t} "
                            "GROUP BY grain").fetchall()
    finally:
        c.close()
    return (size / n if size and n else None), n, windows


def big_budget(a):
    """A --max-memory whose eighth (the sets' share) holds every set of --set-blocks seconds of
    POPULATION (about 0.11 MB of sets per second of chain): none given up."""
    return f"{max(512, 2 * a.set_blocks)}MiB"


def set_sizes(a, tmp, pg):
    """The address sets of a 1,000-tx/s chain whose senders keep coming: memory and rows."""
    sim, url = start_simnode(a.blockpipe, *chain_args(a.set_blocks, 1, 1000), *POPULATION)
    last = a.set_blocks - 1
    db = {k: os.path.join(tmp, f"sets-{k}.db") for k in ("off", "whole", "default", "off0")}
    info = ["--log-level", "info"]
    big = ("--max-memory", big_budget(a))
    try:
        off = backfill(a, url, last, f"sqlite:{db['off']}", "off", big)
        whole = backfill(a, url, last, f"sqlite:{db['whole']}", "on", (*big, *info, *KEEP_ALL))
        off0 = backfill(a, url, last, f"sqlite:{db['off0']}", "off")
        default = backfill(a, url, last, f"sqlite:{db['default']}", "on", (*info, *KEEP_ALL))
        pg_last = min(last, a.pg_blocks - 1)
        backfill(a, url, pg_last, pg.url(query="schema=sets"), "on", KEEP_ALL)
        # PostgreSQL keeps an open window's set as its raw transactions (lazy_set_windows) until
        # something needs its rows: an output opened with metrics off stores them
        backfill(a, url, pg_last, pg.url(query="schema=sets"), "off", KEEP_ALL)
    finally:
        sim.terminate()
        sim.wait()
    out = {"off": off, "whole": whole, "off0": off0, "default": default, "pg_blocks": pg_last + 1,
           "held": sets_held(whole.out), "held_default": sets_held(default.out),
           "given_up": [(g, int(mb), int(b), int(n)) for g, mb, b, n in
                        GIVEN_UP.findall(default.out)],
           "growth": growth(db["whole"], last)}
    for t in SET_TABLES:
        out[t + "_sqlite"] = sqlite_bpr(db["default"], t)
        pgb = pg.sql(f"SELECT pg_total_relation_size('sets.{t}'), (SELECT count(*) FROM sets.{t})")
        out[t + "_pg_bpr"] = int(pgb[0][0]) / max(int(pgb[0][1]), 1)
        out[t + "_pg_rows"] = {g: int(n) for g, n in pg.sql(
            f"SELECT grain, count(*) FROM sets.{t} GROUP BY grain")}
    return out


def mib(x):
    if x >= 10 * 2 ** 30:
        return f"{x / 2 ** 30:,.0f} GiB"
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


DAY_TXS = 86_400_000
# Distinct addresses per transaction over a day on real chains (senders and receivers both:
# an upper bound for the senders alone at that ratio): bench/daysets_bench.py's assumption-based
# context beside its measured day.
RATIOS = [("Ethereum, 2023-05-23: 398,403 active addresses, 1.113 M transactions (YCharts, "
           "quoted by web-mind.io, \"Ethereum statistics\")", 398_403 / 1_113_000),
          ("Base, 2024-12-02: 877,800 daily active addresses (Artemis, quoted by "
           "etrendystock.com) against its 9.3 M transactions of 2024-11-26 (breakingaltcoinnews"
           ".com)", 877_800 / 9_320_000)]


def sets_text(a, sets):
    held, hd, g = sets["held"], sets["held_default"], sets["growth"]
    lines = [
        f"**Address sets at 1,000 tx/s**: {a.set_blocks} simnode blocks of 1,000 transactions one "
        f"second apart ({a.set_blocks / 60:.0f} minutes of chain, one hour and one day window), "
        f"drawn from `{' '.join(POPULATION)}`: senders do not run out, as simnode's default "
        "4,096 did within minutes. Distinct senders, (contract, sender) pairs and called "
        "contracts of the window so far (the raw transactions), against the expectation of "
        "simnode's Zipf draw:",
        "",
        "| minutes of chain | transactions | distinct senders (per tx) | Zipf model | pairs | "
        "contracts |",
        "|---|---|---|---|---|---|"]
    for p in g:
        lines.append(f"| {p['blocks'] / 60:.1f} | {p['txs']:,} | {p['senders']:,} "
                     f"({p['senders'] / max(p['txs'], 1):.2f}) | "
                     f"{zipf_distinct(p['txs']):,.0f} | {p['pairs']:,} | {p['contracts']:,} |")
    big = big_budget(a)
    rows = [("without the derived tables", sets["off"], None, big),
            ("with, sets kept whole", sets["whole"], held, big),
            ("without the derived tables", sets["off0"], None, "default"),
            ("with, the default budget", sets["default"], hd, "default")]
    lines += [
        "",
        "In memory (SQLite output; the metrics module's own account of its sets at their "
        "largest, logged at the end of a backfill: interned addresses, then the members of the "
        "open minute's, hour's and day's sets, which are 8-byte keys in open-addressing tables "
        "at most three quarters full; the day's table holds only its closed hours' members, the "
        "open hour's are in the hour's, and its count is all of them):",
        "",
        "| backfill | --max-memory (sets' bound) | seconds | peak RSS | sets held at most | "
        "interned addresses (bytes each) | set members (bytes each) | windows given up |",
        "|---|---|---|---|---|---|---|---|"]
    for name, r, h, budget in rows:
        if not h:
            lines.append(f"| {name} | {budget} | {r.seconds:.1f} | {r.rss_mib:.0f} MiB | - | - | "
                         "- | - |")
            continue
        lines.append(
            f"| {name} | {budget} ({h['bound'] / 2 ** 20:.0f} MiB) | {r.seconds:.1f} | "
            f"{r.rss_mib:.0f} MiB | {mib(h['bytes'])} | {h['ids']:,} "
            f"({h['id_bytes'] / max(h['ids'], 1):.0f}) | {h['members']:,} "
            f"({(h['bytes'] - h['id_bytes']) / max(h['members'], 1):.0f}) | {h['dropped']} |")
    ups = sets["given_up"]
    if ups:
        lines += ["", "With the default budget the windows were given up at: " + "; ".join(
            f"{grain} with {n:,} members ({mib(b)} held in all)" for grain, _, b, n in ups[:4])
            + (f" and {len(ups) - 4} more" if len(ups) > 4 else "") +
            ". From then on the output checks that window's set rows against its own table "
            "(SQLite stores the window's set from its raw transactions, then upserts), so the "
            "memory stays at the bound and the cost moves into rows. Bytes per row: SQLite's "
            "dbstat of those stored sets; PostgreSQL's pg_total_relation_size (both with the "
            "primary key) after a backfill with the sets whole, whose rows PostgreSQL writes "
            "once something needs them (here an open with `metrics=off` after it):"]
    lines += [
        "",
        "| set | SQLite rows stored (default budget) | bytes/row SQLite | PostgreSQL rows "
        f"(first {sets['pg_blocks']} blocks) | bytes/row PostgreSQL |",
        "|---|---|---|---|---|"]
    for t in SET_TABLES:
        bpr, n, _ = sets[t + "_sqlite"]
        pgr = sets[t + "_pg_rows"]
        lines.append(f"| {t} | {n:,} | {f'{bpr:.0f}' if bpr else '-'} | "
                     f"{', '.join(f'{k} {v:,}' for k, v in sorted(pgr.items()))} | "
                     f"{sets[t + '_pg_bpr']:.0f} |")
    lines += [
        "",
        "**A day at 1,000 tx/s** is measured, not extrapolated from these minutes: section "
        "metrics-day (bench_daysets: 86,400 blocks of this chain through the module's sets, "
        "which the first 10 minutes there match exactly). So the sets of a busy chain's day do "
        "not stay in memory at the default budget (an eighth of what the fixed part leaves: "
        f"{hd['bound'] / 2 ** 20:.0f} MiB here): the day, then the hour are given up within "
        "minutes and the output keeps their sets as rows (held for `--retention-sets`, 12 h by "
        "default; each hour adds its own rows beside the day's: section metrics-day counts "
        "both). Minutes keep no set rows (their distinct senders come with the batch or from the "
        "minute's raw transactions). Peak RSS: wait4 of blockpipe."]
    return lines


def run_throughput(a):
    with tempfile.TemporaryDirectory(prefix="bp-metrics-bench-") as tmp, Postgres() as pg:
        slow = throughput(a, tmp, pg, 12)
        fast = throughput(a, tmp, pg, 1)
    lines = [f"The same binary backfilling the same simnode chain with and without the derived "
             f"tables, {a.rounds} round(s) each way interleaved, medians; simnode draws senders "
             "from 4,096 addresses and calls from 256 contracts at random, so nearly every call "
             "is a new (contract, sender) pair of its hour: the worst case for contract_senders. "
             "The address sets of a chain whose senders do not run out: the next section.",
             ""]
    lines += table_of(a, *slow, 12) + [""] + table_of(a, *fast, 1)
    perfdoc.publish(a.out, "metrics", "\n".join(lines))
    print("\n".join(lines))


def run_sets(a):
    with tempfile.TemporaryDirectory(prefix="bp-metrics-sets-") as tmp, Postgres() as pg:
        sets = set_sizes(a, tmp, pg)
    lines = sets_text(a, sets)
    perfdoc.publish(a.out, "metrics-sets", "\n".join(lines))
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--blocks", type=int, default=100 if perfdoc.quick() else 1000)
    ap.add_argument("--set-blocks", type=int, default=180 if perfdoc.quick() else 600)
    ap.add_argument("--pg-blocks", type=int, default=150 if perfdoc.quick() else 300)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1 if perfdoc.quick() else 3)
    ap.add_argument("--case", choices=("throughput", "sets"), default="throughput",
                    help="throughput: section metrics; sets: section metrics-sets")
    a = ap.parse_args()
    if a.case == "sets":
        perfdoc.guarded(a.out, "metrics-sets", lambda: run_sets(a))
    else:
        perfdoc.guarded(a.out, "metrics", lambda: run_throughput(a))


if __name__ == "__main__":
    main()
