"""The output contract against every registered backend (tests/contract/outputs_contract.c).

One run of the contract program per backend, on a fresh output: batches of APPLY; reorgs
(REVERT + APPLY in one batch, batches cut anywhere in APPLY/REVERT runs, a reorg back to a
branch reverted before, a batch of REVERTs only); a crash at each of the backend's named
crash points (the batch's data written, its checkpoint not durable yet), a crash right after
write() returned, SIGKILLs at random times; each followed by a reopen and a resume as the
pipeline does it. After every step the output must hold exactly the canonical chain: its
checkpoint, recent() and every block, transaction, receipt and log once, nothing of an
orphaned branch (read back by the backend's reader in readers.c).

Adding a backend: one line in BACKENDS (and a reader in tests/contract/readers.c); when it
needs a server, one entry in SERVERS with the helper that starts it. A registered URL scheme
that no line of BACKENDS uses is a FAILURE, and so is a server that cannot start: nothing is
skipped. BP_SEED and BP_CONTRACT_KILLS change the random parts. The backends run three at a
time (each on an output of its own), the longest first.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from redis import Redis  # noqa: E402
from kafka import KafkaMock  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402

SEED = os.environ.get("BP_SEED", "1")
KILLS = os.environ.get("BP_CONTRACT_KILLS", "10")
# backends at a time: a run mostly waits (its writer children, fsync, the servers): SQLite's
# took 10.9 s with 2.7 s on the CPU (ASan, load 12 on 2 cores)
WORKERS = 3

# A server some backends need: its name and a function that starts one (a context manager
# that stops it by PID).
SERVERS = {
    "postgres": Postgres,
    "redis": Redis,
    "redis-tls": lambda: Redis(password="s3cret", tls=True),
    "kafka": KafkaMock,
    "clickhouse": ClickHouse,
}

FILE_POINTS = ["filesink.after_data", "filesink.before_rename"]
PG_POINTS = ["postgres.before_commit"]
REDIS_ALL = "entities=blocks,transactions,logs&maxlen=0"
# the blocks table written, the others not; every row written, not committed
CH_POINTS = ["clickhouse.after_blocks", "clickhouse.before_commit"]

# (name, server or None, URL of a fresh output from (temp dir, server), crash points: where
# the backend has written a batch's data but its checkpoint is not durable yet); the longest
# runs first (kafka, clickhouse: 4 to 5 minutes each at load 20, sqlite 1), so that the pool
# ends together
BACKENDS = [
    # librdkafka's mock cluster: no transaction markers, so an aborted transaction's records
    # are served; the reader keeps the records of transactions with a checkpoint record, as
    # read_committed does on a broker (src/sink/kafka.c, tests/tools/kafka.py)
    ("kafka (mock cluster)", "kafka",
     lambda d, s: s.url("entities=blocks,transactions,logs&prefix=contract_"),
     ["kafka.before_checkpoint"]),
    ("clickhouse", "clickhouse", lambda d, s: s.url("contract"), CH_POINTS),
    ("clickhouse, RowBinary + gzip", "clickhouse",
     lambda d, s: s.url("contract_rb", scheme="ch", query="format=rowbinary&compression=gzip"),
     CH_POINTS),
    ("redis", "redis", lambda d, s: s.url(query=REDIS_ALL + "&prefix=contract:"),
     ["redis.before_exec"]),
    ("rediss (TLS, password)", "redis-tls", lambda d, s: s.url(query=REDIS_ALL),
     ["redis.before_exec"]),
    ("postgres", "postgres", lambda d, s: s.url(query="schema=contract"), PG_POINTS),
    ("postgres, staging tables", "postgres",
     lambda d, s: s.url(scheme="postgresql", query="schema=contract_staging&mode=staging"),
     PG_POINTS),
    ("jsonl", None, lambda d, s: f"jsonl://{d}/jsonl", FILE_POINTS),
    ("sqlite", None, lambda d, s: f"sqlite:{d}/out.db", ["sqlite.before_commit"]),
    ("etl-csv", None, lambda d, s: f"etl-csv:{d}/csv", FILE_POINTS),
]


def program():
    prog = os.environ.get("BP_OUTPUTS_CONTRACT") or os.path.join(
        os.environ.get("BP_BUILD_DIR", "build"), "tests", "outputs_contract")
    if not os.access(prog, os.X_OK):
        raise SystemExit(f"FAIL: the contract program {prog!r} is not built "
                         "(cmake -DBP_TESTS=ON builds tests/outputs_contract)")
    return prog


def registered(prog):
    p = subprocess.run([prog, "--schemes"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not p.stdout.split():
        raise SystemExit(f"FAIL: {prog} --schemes: exit {p.returncode}\n{p.stderr}")
    return set(p.stdout.split())


def run(prog, name, url, points, extra=()):
    """One run of the contract program on url: (its CompletedProcess, seconds it took)."""
    cmd = [prog, "--seed", SEED, "--kills", KILLS, *extra]
    for point in points:
        cmd += ["--crash", point]
    t0 = time.monotonic()
    p = subprocess.run(cmd + [url], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=600)
    return p, time.monotonic() - t0


def main():
    print(__doc__.strip())
    prog = program()
    failed, tested = [], set()
    with contextlib.ExitStack() as stack:
        servers = {}
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bp-contract-"))
        jobs = []
        for i, (name, need, url_of, points) in enumerate(BACKENDS):
            if need and need not in servers:
                servers[need] = stack.enter_context(SERVERS[need]())
            d = os.path.join(tmp, str(i))
            os.mkdir(d)
            url = url_of(d, servers.get(need))
            tested.add(url.split(":", 1)[0])
            jobs.append((name, url, points))
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = list(pool.map(lambda j: run(prog, *j), jobs))
        for (name, _, _), (p, took) in zip(jobs, results):
            out = (p.stdout + p.stderr).strip()
            status = "ok" if p.returncode == 0 else f"FAILED (exit {p.returncode})"
            print(f"--- {name}: {status} in {took:.1f} s\n{out}\n", flush=True)
            if p.returncode != 0:
                failed.append(name)
    untested = registered(prog) - tested
    if untested:
        failed.append(f"registered but not in BACKENDS: {', '.join(sorted(untested))}")
    if failed:
        print(f"FAIL: the output contract does not hold for: {', '.join(failed)}")
        return 1
    print(f"ok: {len(BACKENDS)} backends hold the output contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
