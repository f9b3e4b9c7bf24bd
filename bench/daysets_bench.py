"""daysets_bench.py - section `metrics-day` of docs/PERFORMANCE.md: what the metrics module's
address sets (active_addresses, contract_senders: the open minute's, hour's and day's members
and their interned addresses) hold through a whole day of a 1,000 tx/s chain, measured rather
than extrapolated from minutes. bench_daysets (bench/daysets.c) drives the module's per-batch
entry (bp_metrics_compute, batches of 12 blocks, sets unbounded) with 86,400 one-second blocks
of 1,000 transactions that simnode's own generator makes (bp_sim_block_gen: the senders and
contracts `blockpipe simnode --senders N --contracts N --zipf S` would serve), one run per
sender population, each in a process of its own (its peak RSS by getrusage; wait4 agrees).

First the bench's first 10 minutes from block 1 are checked against the pipeline's figures of
the same blocks in section `metrics-sets` (a backfill through simnode and SQLite): the distinct
senders and pairs must be equal, else this section says the bench is wrong and fails.

--points SENDERS=FILE takes that population's points from FILE (the output of an earlier
bench_daysets run with the arguments this script would pass, e.g. one run by hand beside other
work) instead of running it; the section says so. BENCH_QUICK=1: 10 minutes of chain.
"""
import argparse
import os
import re
import sys

import metrics_bench
import perfdoc

POPULATIONS = [  # (--senders, --contracts, --zipf): metrics-sets' population first
    (100_000_000, 100_000, 1),
    (10_000_000, 100_000, 1),
]
CHECK_AT = [60 * k - 1 for k in range(1, 11)]  # blocks 59, 119, ... 599: its growth table's
GROWTH_ROW = re.compile(r"^\| [\d.]+ \| ([\d,]+) \| ([\d,]+) \([\d.]+\) \| [\d,]+ \| ([\d,]+) \| "
                        r"[\d,]+ \|$", re.M)


def points(text):
    out = []
    for line in text.splitlines():
        if line.startswith("point "):
            out.append({k: float(v) if "." in v else int(v)
                        for k, v in (kv.split("=", 1) for kv in line.split()[1:])})
    return out


def pop_args(pop):
    s, c, z = pop
    return ["--senders", str(s), "--contracts", str(c), "--zipf", str(z)]


def day_args(a):
    return ["--blocks", "600", "--every", "60"] if perfdoc.quick() else \
        ["--blocks", "86400", "--every", "3600"]


def check_against_pipeline(a):
    """The bench's blocks 1..599 against section metrics-sets' growth table (same population,
    same simnode seed): (rows, None) when they agree or there is nothing to compare, else
    sys.exit."""
    r = perfdoc.timed([a.bench, *pop_args(POPULATIONS[0]), "--first", "1", "--blocks", "599",
                       "--every", "0", "--at", ",".join(map(str, CHECK_AT))])
    mine = {p["last"]: p for p in points(r.out)}
    section = perfdoc.read_section(a.out, "metrics-sets") or ""
    if "--senders 100000000 --contracts 100000 --zipf 1" not in section:
        return [], "section metrics-sets has no figures of this population to compare with"
    rows = []
    for m in GROWTH_ROW.finditer(section):
        txs, senders, pairs = (int(x.replace(",", "")) for x in m.groups())
        p = mine.get(txs // 1000)
        if p is None:
            continue
        rows.append((txs // 1000, senders, p["day_senders"], pairs, p["day_pairs"]))
    bad = [r for r in rows if r[1] != r[2] or r[3] != r[4]]
    if bad:
        sys.exit("bench_daysets disagrees with the pipeline's figures of the same blocks "
                 f"(block, pipeline senders, bench, pipeline pairs, bench): {bad}")
    return rows, None


def mib(x):
    return x / 2**20


def run_population(a, pop):
    if pop[0] in a.points:
        with open(a.points[pop[0]]) as f:
            pts = points(f.read())
        return pts, None, f"points of `{os.path.basename(a.points[pop[0]])}`, a run by hand"
    r = perfdoc.timed([a.bench, *pop_args(pop), *day_args(a)])
    return points(r.out), r, None


def pop_table(pop, pts):
    s, c, z = pop
    lines = [
        f"`--senders {s:,} --contracts {c:,} --zipf {z}` (blocks {pts[0]['first']:,} to "
        f"{pts[-1]['last']:,}):",
        "",
        "| chain time (h:mm) | distinct senders of the day (per tx) | Zipf model | senders of this hour | "
        "pairs of the day | interned addresses | members day / hour / minute | sets held "
        "(bytes per day sender) | module's account | peak RSS | seconds (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pts:
        secs = p["last"] - p["first"] + 1
        lines.append(
            f"| {secs // 3600}:{secs % 3600 // 60:02d} | {p['day_senders']:,} ({p['day_senders'] / p['txs']:.3f}) | "
            f"{metrics_bench.zipf_distinct(p['txs'], pool=s, s=z):,.0f} | "
            f"{p['hour_senders']:,} | {p['day_pairs']:,} | {p['ids']:,} | "
            f"{p['d1']:,} / {p['h1']:,} / {p['m1']:,} | {mib(p['set_bytes']):,.0f} MiB "
            f"({p['set_bytes'] / max(p['day_senders'], 1):.0f}) | {mib(p['held']):,.0f} MiB | "
            f"{p['rss_kib'] / 1024:,.0f} MiB | {p['seconds']:.0f} ({p['cpu_seconds']:.0f}) |")
    return lines


def summary(pop, pts, how):
    end = pts[-1]
    secs = end["last"] - end["first"] + 1
    span = f"{secs // 3600} h" + (f" {secs % 3600 // 60} min" if secs % 3600 else "")
    rows = end["day_senders"] + end["day_pairs"]
    hour_rows = sum(p["hour_senders"] + p["hour_pairs"] for p in pts
                    if (p["last"] - p["first"] + 1) % 3600 == 0)
    return (
        f"**--senders {pop[0]:,}, {span} of chain** ({end['txs']:,} transactions"
        f"{'; ' + how if how else ''}): **{end['day_senders']:,} distinct senders** "
        f"({end['day_senders'] / end['txs']:.3f} per transaction), at most "
        f"{end['hour_senders_max']:,} in an hour; {end['day_pairs']:,} (contract, sender) pairs; "
        f"the open windows' sets held **{mib(end['set_bytes']):,.0f} MiB** at the end "
        f"({end['set_bytes'] / max(end['day_senders'], 1):.0f} bytes per distinct sender of the "
        f"day; {mib(end['id_bytes']):,.0f} MiB of it the {end['ids']:,} interned addresses), "
        f"the module's whole account {mib(end['held']):,.0f} MiB (the sets may take an eighth "
        "of what --max-memory leaves after its fixed part: keeping them whole takes a "
        f"--max-memory of {mib(8 * end['set_bytes']) / 1024:,.1f} GiB and that part); **peak RSS "
        f"{end['rss_kib'] / 1024:,.0f} MiB**; {end['seconds']:.0f} s "
        f"({end['cpu_seconds']:.0f} s CPU, {end['metrics_seconds']:.0f} s of the wall time in "
        f"bp_metrics_compute). Set rows the outputs store for it: {rows:,} for the day window"
        + (f" and {hour_rows:,} for its hours" if hour_rows else "") + ".")


def context(pts):
    """Real chains' days, by assumption: their active addresses per transaction times the
    measured bytes per distinct sender of simnode's day."""
    end = pts[-1]
    per = end["set_bytes"] / max(end["day_senders"], 1)
    lines = [
        "**Context, not measured** (assumption-based estimates for real chains at 1,000 tx/s: "
        "their daily active addresses per transaction, which count receivers as well as "
        "senders, times the bytes per distinct sender measured above for the first population; "
        "a real chain's pairs and contracts per sender differ from simnode's):",
        "",
        "| chain (source of the ratio) | addresses per tx | assumed distinct senders of a day | "
        "sets at the day's end (estimate) |",
        "|---|---|---|---|",
    ]
    for name, ratio in metrics_bench.RATIOS:
        s = ratio * metrics_bench.DAY_TXS
        lines.append(f"| {name} | {ratio:.2f} | {s / 1e6:.1f} M | {mib(s * per):,.0f} MiB |")
    return lines


def run(a):
    load0 = os.getloadavg()
    check, why_not = check_against_pipeline(a)
    results = [(pop, *run_population(a, pop)) for pop in POPULATIONS]
    load1 = os.getloadavg()
    first = results[0][1]
    lines = [
        "**A day of a 1,000 tx/s chain, measured**: `bench_daysets` (bench/daysets.c) gives the "
        "metrics module's per-batch entry (`bp_metrics_compute`, batches of 12 blocks, then "
        "`bp_metrics_written` as the writer does) one-second blocks of 1,000 transactions from "
        "simnode's own generator (`bp_sim_block_gen`: the senders and contracts that `blockpipe "
        "simnode --senders N --contracts N --zipf S` serves, seed 1), made into decoded blocks "
        "directly instead of rendered to JSON and decoded again (only the fields the module "
        "reads; logs left out: they make token_transfers rows, not set members). The sets are "
        "unbounded (no --max-memory share): what a day costs. The day is a UTC day (from the "
        "first block at a day boundary), so the day window fills from empty to 86,400 blocks "
        "and each hour's window from empty to 3,600. Distinct senders and pairs are the module's "
        "own output (the hour's and day's new set rows), checked at every point against its "
        "members; `unit/test_daysets` checks them against plain hash sets over the same blocks. "
        "Sets held: the module's account of its open windows (members' tables, interned "
        "addresses, the minute's contract rows); module's account: that and the batch's rows, "
        "what it charges to --max-memory. Peak RSS: getrusage of the bench's process "
        f"(generator and blocks included). Load average {load0[0]:.1f} at the start, "
        f"{load1[0]:.1f} at the end (2 cores): seconds are wall clock.",
        "",
    ]
    if check:
        lines += [
            f"Checked first: the bench's blocks 1 to {check[-1][0]} counted as the pipeline did "
            "(section metrics-sets, a backfill of the same simnode chain into SQLite) give the "
            "same distinct senders and pairs at every point ("
            + ", ".join(f"block {b}: {s:,} / {p:,}" for b, s, _, p, _ in check[::3]) + ").",
            "",
        ]
    else:
        lines += [f"Not checked against the pipeline: {why_not}.", ""]
    for pop, pts, _, how in results:
        lines += [summary(pop, pts, how), ""]
    end = first[-1]
    if end["txs"] == metrics_bench.DAY_TXS:
        model = metrics_bench.zipf_distinct(metrics_bench.DAY_TXS)
        lines += [
            "Section metrics-sets used to extrapolate this day from 10 minutes with simnode's Zipf "
            f"model: {model / 1e6:.1f} M distinct senders, against {end['day_senders'] / 1e6:.1f} M "
            "measured here (the tables below give the model beside every hour).",
            "",
        ]
    for pop, pts, _, _ in results:
        lines += pop_table(pop, pts) + [""]
    lines += context(first)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/bench_daysets")
    ap.add_argument("--out", default=os.path.join(perfdoc.ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--points", action="append", default=[], metavar="SENDERS=FILE",
                    help="take the points of population SENDERS from FILE instead of running it")
    a = ap.parse_args()
    a.points = {int(k): v for k, v in (p.split("=", 1) for p in a.points)}
    perfdoc.guarded(a.out, "metrics-day",
                    lambda: perfdoc.publish(a.out, "metrics-day", "\n".join(run(a))))


if __name__ == "__main__":
    main()
