#!/usr/bin/env python3
"""Stream outputs benchmark: stream entries per second (blocks, transactions, logs; 10 per
synthetic block) through blockpipe's Redis and Kafka outputs vs the same entries sent by a
plain client doing only the sending:
 - Redis: hiredis pipelined XADD ... MAXLEN ~ N of the same entries (redis-benchmark's way:
   the server's limit for that work), one pipeline per batch; the sink writes each batch as
   one MULTI/EXEC with its latest keys and checkpoint. Compared without PUBLISH
   (--redis-publish off vs XADD only) and with it (vs XADD + PUBLISH).
 - Kafka: librdkafka's mock cluster in the benchmark's process; a plain producer loop (no
   transactions, linger.ms 5 as the sink) of the same messages, flushed per batch, vs the
   sink's one transaction per batch (delivery reports awaited, checkpoint record, commit).
Keyed streams (`blockpipe stream publish` / `stream latest`, the API's streaming endpoints):
bench_keyed's round trips, 1 and 32 clients (threads with a handle each, one operation at a
time each), into SQLite and Redis, optionally beside an earlier build's (--keyed-before), vs
what the system we replace claims (10,000 publishes/s at 0.5 ms, 20,000 latest reads/s at
0.3 ms; target 10x those).
Starts its own redis-server (tests/tools/redis.py, no persistence: the server's in-memory
limit). Rounds are interleaved; medians of msgs/s and the ratio sink / plain are reported
(target >= 0.7). Replaces only its section of docs/PERFORMANCE.md; BENCH_QUICK=1 runs it small.
"""
import argparse
import os
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from redis import Redis  # noqa: E402
import perfdoc  # noqa: E402 (bench/ is sys.path[0] when run as a script)


def rate(r):
    m = re.search(r"msgs=(\d+) seconds=([\d.]+) msgs_per_s=(\d+)", r.out)
    if not m:
        sys.exit(f"stream_bench: unexpected output {r.out!r}")
    return int(m.group(1)), float(m.group(3)), r.rss_mib


def measure(a, r):
    n, batch, maxlen = str(a.blocks), str(a.batch), "100000"
    sink = f"redis://127.0.0.1:{r.port}/0?entities=blocks,transactions,logs&maxlen={maxlen}"
    runs = {
        "redis sink, publish off": [a.bench, "redis-sink", sink + "&publish=off&prefix=s:", n,
                                    batch],
        "redis plain XADD": [a.bench, "redis-plain", "127.0.0.1", str(r.port), n, batch, maxlen,
                             "0"],
        "redis sink, publish on": [a.bench, "redis-sink", sink + "&prefix=p:", n, batch],
        "redis plain XADD + PUBLISH": [a.bench, "redis-plain", "127.0.0.1", str(r.port), n,
                                       batch, maxlen, "1"],
        "kafka sink": [a.bench, "kafka-sink", n, batch],
        "kafka plain producer": [a.bench, "kafka-plain", n, batch],
    }
    res = {k: [] for k in runs}
    msgs = {}
    for rnd in range(a.rounds):
        for name, cmd in runs.items():
            r.call("FLUSHALL")
            m, rps, rss = rate(perfdoc.timed(cmd))
            if msgs.setdefault(name.split()[0], m) != m:
                sys.exit(f"{name}: {m} messages, the other runs {msgs[name.split()[0]]}")
            res[name].append((rps, rss))
            print(f"round {rnd + 1} {name}: {rps:.0f} msgs/s, peak RSS {rss:.0f} MiB", flush=True)
    return res, msgs


# What the system we replace claims: (operations/s, ms per operation).
CLAIMED = {"publish": (10000, 0.5), "latest": (20000, 0.3)}


def keyed_rate(r):
    m = re.search(r"ops=(\d+) seconds=([\d.]+) ops_per_s=(\d+) mean_us=([\d.]+) "
                  r"p50_us=([\d.]+) p99_us=([\d.]+) cpu_us_per_op=([\d.]+)", r.out)
    if not m:
        sys.exit(f"bench_keyed: unexpected output {r.out!r}")
    return (float(m.group(3)), float(m.group(5)), float(m.group(6)), float(m.group(7)),
            r.rss_mib)


def keyed_builds(a):
    return [("this", a.keyed)] + ([("before", a.keyed_before)] if a.keyed_before else [])


def measure_keyed(a, r, tmp):
    """Per (store, operation, clients, build): a list of (ops/s, p50 us, p99 us, CPU us per
    operation, peak MiB) per round; every build's runs interleaved in each round."""
    res = {}
    for rnd in range(a.rounds):
        for store in ("sqlite", "redis"):
            for op in ("publish", "latest"):
                for clients in a.keyed_clients:
                    for build, binary in keyed_builds(a):
                        tag = f"{rnd}{build}{clients}"
                        url = (f"sqlite:{tmp}/keyed{tag}.db" if store == "sqlite"
                               else f"redis://127.0.0.1:{r.port}/0?prefix=kb{tag}:")
                        ops = a.keyed_ops * (1 if clients == 1 else 5)
                        x = keyed_rate(perfdoc.timed([binary, url, op, str(ops), str(clients)]))
                        res.setdefault((store, op, clients, build), []).append(x)
                        print(f"round {rnd + 1} keyed {store} {op} {clients} clients ({build}):"
                              f" {x[0]:.0f}/s, {x[3]:.1f} CPU us/op", flush=True)
    return res


def keyed_section(a, res):
    before = (f" `before` is bench_keyed built from `{a.keyed_before_rev}`, the build before "
              "the change, run in the same rounds." if a.keyed_before else "")
    lines = [
        "",
        f"Keyed streams: bench_keyed (the C API of `blockpipe stream`, as the API's workers use "
        "it): C client threads, each with its own handle, one operation at a time each "
        f"({a.keyed_ops} operations with one client, {5 * a.keyed_ops} with more; a "
        "publication is one small JSON value under one key); ops/s over the wall time, p50/p99 "
        "of the single operations, CPU: the benchmark process's user + system time per "
        "operation (not the Redis server's). Median of the rounds; compared with what the "
        f"system we replace claims.{before}",
        "",
        "| store | operation | clients | build | ops/s | p50 ms | p99 ms | CPU us/op | claimed "
        "| ops/s vs claimed (target 10) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (store, op, clients, build), v in res.items():
        ops = statistics.median(x[0] for x in v)
        p50 = statistics.median(x[1] for x in v) / 1000
        p99 = statistics.median(x[2] for x in v) / 1000
        cpu = statistics.median(x[3] for x in v)
        c_ops, c_ms = CLAIMED[op]
        lines.append(f"| {store} | {op} | {clients} | {build} | {ops:,.0f} | {p50:.3f} | "
                     f"{p99:.3f} | {cpu:.1f} | {c_ops:,}/s at {c_ms} ms | {ops / c_ops:.2f} | "
                     f"{max(x[4] for x in v):.0f} |")
    lines += [
        "",
        "A publication returns once it is stored: into SQLite a committed transaction (WAL, "
        "synchronous NORMAL: it survives the process, the WAL is synced at checkpoints), into "
        "Redis an executed MULTI/EXEC (the XADDs, and a script listing their keys). Concurrent "
        "publishers of one store in "
        "one process share that commit (group commit, ARCHITECTURE.md: one SQLite transaction "
        "or one Redis pipeline for every entry queued while the previous commit ran), so the "
        "rate grows with the clients while one client's is bounded by the store's latency; "
        "latest reads are one prepared SELECT each (SQLite) or an XREVRANGE each in a pipeline "
        "that the concurrent readers of one Redis URL share the same way. The claimed figures "
        "do not say how many clients they used.",
    ]
    return "\n".join(lines)


def section(a, res, msgs):
    med = {k: statistics.median(x for x, _ in v) for k, v in res.items()}
    rss = {k: max(m for _, m in v) for k, v in res.items()}

    def row(name, base):
        ratio = f"{med[name] / med[base]:.2f}" if base else ""
        return f"| {name} | {med[name]:,.0f} | {ratio} | {rss[name]:.0f} |"

    lines = [
        f"{a.blocks} synthetic blocks of 4 transactions and 5 logs ({msgs['redis']} entries: "
        f"blocks, transactions, logs), {a.batch} blocks per batch, median of {a.rounds} "
        "interleaved rounds. Redis 7.0 on loopback without persistence; Kafka is librdkafka "
        "2.0.2's mock cluster in the benchmark's own process (a client-side limit, not a "
        "broker's).",
        "",
        "| writer | entries/s | sink / plain | peak RSS MiB |",
        "|---|---|---|---|",
        row("redis sink, publish off", "redis plain XADD"),
        row("redis plain XADD", None),
        row("redis sink, publish on", "redis plain XADD + PUBLISH"),
        row("redis plain XADD + PUBLISH", None),
        row("kafka sink", "kafka plain producer"),
        row("kafka plain producer", None),
        "",
        "The sink's extra work per batch: Redis - MULTI/EXEC, the latest keys, the checkpoint "
        "(and the row JSON it makes while timed; the plain client's is made before its clock); "
        "Kafka - a transaction (begin, delivery reports awaited, the checkpoint record, commit).",
    ]
    return "\n".join(lines)


def main(a):
    with Redis(settings={"appendonly": "no", "save": ""}) as r, \
            tempfile.TemporaryDirectory(prefix="bp-keyed-") as tmp:
        res, msgs = measure(a, r)
        keyed = measure_keyed(a, r, tmp)
    perfdoc.publish(a.out, "streams", section(a, res, msgs) + "\n" + keyed_section(a, keyed))
    print(perfdoc.read_section(a.out, "streams"))


if __name__ == "__main__":
    q = perfdoc.quick()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench_stream")
    ap.add_argument("--out", default="docs/PERFORMANCE.md")
    ap.add_argument("--keyed", default="build/bench_keyed")
    ap.add_argument("--keyed-ops", type=int, default=2000 if q else 20000)
    ap.add_argument("--keyed-clients", default="1,32",
                    help="client counts for bench_keyed, comma-separated")
    ap.add_argument("--keyed-before", help="another bench_keyed (an earlier build) run in the "
                    "same rounds, for a before/after comparison")
    ap.add_argument("--keyed-before-rev", default="an earlier commit",
                    help="what --keyed-before was built from (for the text)")
    ap.add_argument("--blocks", type=int, default=2000 if q else 20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1 if q else 3)
    args = ap.parse_args()
    args.keyed_clients = [int(c) for c in args.keyed_clients.split(",")]
    perfdoc.guarded(args.out, "streams", lambda: main(args))
