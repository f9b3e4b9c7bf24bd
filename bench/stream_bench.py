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
   sink's batches written as a backfill's (bp_batch.more: several batches in one transaction,
   delivery reports awaited and the checkpoint record committed once per transaction), and
   as at the head (one transaction per batch).
Keyed streams (`blockpipe stream publish` / `stream latest`, the API's streaming endpoints):
bench_keyed's round trips, 1 and 32 clients (threads with a handle each, one operation at a
time each), and the asynchronous calls (T threads keeping W operations in flight each,
--keyed-async TxW), into SQLite and Redis, optionally beside an earlier build's
(--keyed-before, the calls it has), vs what the system we replace claims (10,000 publishes/s
at 0.5 ms, 20,000 latest reads/s at 0.3 ms; target 10x those). A round trip is one operation
from its submission to its outcome in the caller's hands. Redis runs also report the
server's CPU time per operation (/proc of its PID), and redis-benchmark's own rate for the
same commands (50 clients, its event loop) as the server's reference on this machine.
Starts its own redis-server (tests/tools/redis.py, no persistence: the server's in-memory
limit). Rounds are interleaved; medians of msgs/s and the ratio sink / plain are reported
(target >= 0.7). Replaces only its section of docs/PERFORMANCE.md; BENCH_QUICK=1 runs it small.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
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
        "kafka sink, a transaction per batch (head)": [a.bench, "kafka-sink-head", n, batch],
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


def server_cpu_s(r):
    """redis-server's user + system CPU seconds so far (/proc/PID/stat)."""
    try:
        with open(f"/proc/{r.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return float("nan")


def keyed_modes(a):
    """(threads, in flight each; 0: the calls that return the outcome), as the table shows."""
    return [(c, 0) for c in a.keyed_clients] + a.keyed_async


def measure_keyed(a, r, tmp):
    """Per (store, operation, threads, in flight, build): a list of (ops/s, p50 us, p99 us,
    CPU us per operation, peak MiB, server CPU us per operation) per round; every build's runs
    interleaved in each round (an earlier build runs only the calls it has)."""
    res = {}
    for rnd in range(a.rounds):
        for store in ("sqlite", "redis"):
            for op in ("publish", "latest"):
                for clients, window in keyed_modes(a):
                    for build, binary in keyed_builds(a):
                        if window and build != "this" and not a.keyed_before_async:
                            continue
                        tag = f"{rnd}{build}{clients}x{window}"
                        url = (f"sqlite:{tmp}/keyed{tag}.db" if store == "sqlite"
                               else f"redis://127.0.0.1:{r.port}/0?prefix=kb{tag}:")
                        ops = a.keyed_ops * (1 if clients == 1 and not window else 5)
                        cmd = [binary, url, op, str(ops), str(clients)] + (
                            [str(window)] if window else [])
                        c0 = server_cpu_s(r)
                        x = keyed_rate(perfdoc.timed(cmd))
                        srv = ((server_cpu_s(r) - c0) * 1e6 / ops if store == "redis"
                               else float("nan"))
                        res.setdefault((store, op, clients, window, build), []).append(x + (srv,))
                        print(f"round {rnd + 1} keyed {store} {op} {clients}x{window} ({build}):"
                              f" {x[0]:.0f}/s, p99 {x[2]:.0f} us, {x[3]:.1f} CPU us/op, "
                              f"server {srv:.1f} us/op", flush=True)
                if store == "redis":
                    rb = redis_benchmark(a, r, op)
                    if rb:
                        res.setdefault(("redis-benchmark", op), []).append(rb)
    return res


RB_CMDS = {"publish": ["XADD", "rb:kv:bench", "MAXLEN", "~", "1000", "*", "v",
                       '{"seq":1,"price":"3120.01","pair":"ETH/USD"}'],
           "latest": ["XREVRANGE", "rb:kv:bench", "+", "-", "COUNT", "1"]}


def redis_benchmark(a, r, op):
    """redis-benchmark's (requests/s, p99 ms) for op's command on one key (50 clients, its
    event loop, one request in flight each), or None when it is not installed or fails."""
    rb = shutil.which("redis-benchmark")
    if not rb:
        return None
    p = subprocess.run([rb, "-h", "127.0.0.1", "-p", str(r.port), "-c", "50", "-n",
                        str(5 * a.keyed_ops), "--csv", *RB_CMDS[op]],
                       capture_output=True, text=True, timeout=300)
    # the last line: "command","rps","avg","min","p50","p95","p99","max" (the command itself
    # may hold quotes: matched from the end)
    m = re.search(r'"([\d.]+)","[\d.]+","[\d.]+","[\d.]+","[\d.]+","([\d.]+)","[\d.]+"\s*$',
                  p.stdout)
    if p.returncode != 0 or not m:
        print(f"redis-benchmark {op} failed: {p.stdout[-300:]}{p.stderr[-300:]}", flush=True)
        return None
    print(f"redis-benchmark {op}: {float(m.group(1)):.0f}/s", flush=True)
    return float(m.group(1)), float(m.group(2))


def keyed_section(a, res):
    before = (f" `before` is bench_keyed built from `{a.keyed_before_rev}`, the build before "
              "the change, run in the same rounds" + ("" if a.keyed_before_async else
                                                      " (its calls only)") + "."
              if a.keyed_before else "")
    lines = [
        "",
        f"Keyed streams: bench_keyed (the C API of `blockpipe stream`, as the API's workers use "
        "it). `threads x in flight`: `C x 1 call` is C client threads, each with its own "
        "handle, one operation at a time each (the calls that return the outcome); `T x W "
        "async` is T threads keeping W operations in flight each through the asynchronous "
        "calls (bp_keyed_*_async, bp_keyed_poll), each outcome delivered submitting the next "
        f"operation ({a.keyed_ops} operations with one thread of calls, {5 * a.keyed_ops} "
        "otherwise; a publication is one small JSON value under one key). A round trip is "
        "one operation from its submission to its outcome in the caller's hands: ops/s over "
        "the wall time, p50/p99 of the single operations. CPU: the benchmark process's user + "
        "system time per operation; server CPU: redis-server's (/proc). Median of the rounds; "
        f"compared with what the system we replace claims.{before}",
        "",
        "| store | operation | threads x in flight | build | ops/s | p50 ms | p99 ms | CPU us/op "
        "| server CPU us/op | claimed | ops/s vs claimed (target 10) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rb = {k[1]: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v))
          for k, v in res.items() if k[0] == "redis-benchmark"}
    for key, v in res.items():
        if key[0] == "redis-benchmark":
            continue
        store, op, clients, window, build = key
        ops = statistics.median(x[0] for x in v)
        p50 = statistics.median(x[1] for x in v) / 1000
        p99 = statistics.median(x[2] for x in v) / 1000
        cpu = statistics.median(x[3] for x in v)
        srv = statistics.median(x[5] for x in v)
        srv = "" if srv != srv else f"{srv:.1f}"
        mode = f"{clients} x {window} async" if window else f"{clients} x 1 call"
        c_ops, c_ms = CLAIMED[op]
        lines.append(f"| {store} | {op} | {mode} | {build} | {ops:,.0f} | {p50:.3f} | "
                     f"{p99:.3f} | {cpu:.1f} | {srv} | {c_ops:,}/s at {c_ms} ms | "
                     f"{ops / c_ops:.2f} | {max(x[4] for x in v):.0f} |")
    if len(rb) == 2:
        lines += [
            "",
            "The server's reference here: redis-benchmark (50 clients, one request in flight "
            "each, its event loop) sending the same commands to the same server in the same "
            "rounds (median): XADD "
            f"{rb['publish'][0]:,.0f}/s (p99 {rb['publish'][1]:.3f} ms), XREVRANGE ... COUNT 1 "
            f"{rb['latest'][0]:,.0f}/s (p99 {rb['latest'][1]:.3f} ms). A keyed publication is "
            "more than an XADD: a JSON check, a MULTI/EXEC per round, and the script listing its "
            "key.",
        ]
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
        "that the concurrent readers of one Redis URL share the same way. The asynchronous "
        "calls do the same without a thread per operation: each bp_keyed_poll sends what was "
        "submitted as one commit and one pipeline of reads on the handle's own connection. "
        "The claimed figures do not say how many clients they used.",
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
        row("kafka sink, a transaction per batch (head)", "kafka plain producer"),
        row("kafka plain producer", None),
        "",
        "The sink's extra work per batch: Redis - MULTI/EXEC, the latest keys, the checkpoint "
        "(and the row JSON it makes while timed; the plain client's is made before its clock); "
        "Kafka - a transaction (begin, delivery reports awaited, the checkpoint record, commit): "
        "per group of batches in a backfill (`kafka sink`: every write but the last with "
        "bp_batch.more; a group ends at 8 batches, 2 MiB of messages or 500 ms), per batch at "
        "the head.",
    ]
    return "\n".join(lines)


KEPT = "_The outputs' table is from the run of "


def kept_outputs(a):
    """--keyed-only: the outputs' part of the section as the last run wrote it, said so."""
    old = perfdoc.read_section(a.out, "streams") or ""
    m = re.search(re.escape(KEPT) + r"([^;]*);", old) or re.search(r"_Run ([^_]*)\._", old)
    body = old.split("._\n\n", 1)[1] if m else ""
    if KEPT in body:
        body = body.split("\n\n", 1)[1]
    end = body.find("\nKeyed streams:")
    if not m or end < 0:
        sys.exit(f"stream_bench --keyed-only: no outputs' table in {a.out} to keep")
    return f"{KEPT}{m.group(1)}; the keyed streams are from this one._\n\n{body[:end].strip()}"


def main(a):
    with Redis(settings={"appendonly": "no", "save": ""}) as r, \
            tempfile.TemporaryDirectory(prefix="bp-keyed-") as tmp:
        outputs = kept_outputs(a) if a.keyed_only else section(a, *measure(a, r))
        keyed = measure_keyed(a, r, tmp)
    perfdoc.publish(a.out, "streams", outputs + "\n" + keyed_section(a, keyed))
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
    ap.add_argument("--keyed-async", default="1x64,2x64",
                    help="asynchronous modes for bench_keyed, THREADSxIN_FLIGHT, comma-separated "
                    "('' for none)")
    ap.add_argument("--keyed-only", action="store_true",
                    help="only the keyed streams (the outputs' table is kept from the last run)")
    ap.add_argument("--keyed-before", help="another bench_keyed (an earlier build) run in the "
                    "same rounds, for a before/after comparison")
    ap.add_argument("--keyed-before-async", action="store_true",
                    help="--keyed-before has the asynchronous calls: run its async modes too")
    ap.add_argument("--keyed-before-rev", default="an earlier commit",
                    help="what --keyed-before was built from (for the text)")
    ap.add_argument("--blocks", type=int, default=2000 if q else 20000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1 if q else 3)
    args = ap.parse_args()
    args.keyed_clients = [int(c) for c in args.keyed_clients.split(",")]
    args.keyed_async = [tuple(int(x) for x in m.split("x")) for m in args.keyed_async.split(",")
                        if m]
    perfdoc.guarded(args.out, "streams", lambda: main(args))
