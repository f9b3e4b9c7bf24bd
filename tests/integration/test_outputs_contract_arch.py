"""The output contract (tests/contract/outputs_contract.c, test_outputs_contract.py) with Arch
rows: `outputs_contract --family arch` drives every output that stores Arch blocks
(bp_sink.families: SQLite, PostgreSQL, also through its staging tables, ClickHouse, JSON lines,
Redis streams, also over TLS with a password, and Kafka on librdkafka's mock cluster) through
the same scenario - batches of APPLY, reorgs cut anywhere in APPLY/REVERT runs, a reorg back to
a branch reverted before, batches of WebSocket events (rolledback_transactions and
reapplied_transactions among them, a rolled-back transaction's block reverted and applied
again), crashes at the backend's crash points (the EVM contract's: the same list) and SIGKILLs
at random times in batches with events (ClickHouse: blocks only, it keeps a crashed batch's
events by design), each followed by a reopen and a resume as the pipeline does it - with a chain of
Arch blocks (failed and rolled-back transactions, accounts a transaction lists twice), read
back after every step: the SQL tables as they are (ClickHouse: arch_transactions_current), the
files and streams with their revert and rollback / re-apply entries replayed in order (each
block applied once more than reverted, its rows whole copies, nothing of a block never
applied). The output must hold exactly the canonical chain, every transaction's rolled_back as
the node says it now, the events written, its checkpoint and recent() the chain's top (Arch
hashes: bare hex). etl-csv refuses an Arch chain, with its reason. A separate test from the
EVM one so that each stays well within its time limit; the outputs run three at a time.
BP_SEED and BP_CONTRACT_KILLS change the random parts; BP_CONTRACT_ONLY=NAME runs only the
outputs whose name starts with NAME (no coverage check then).
"""

import contextlib
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_outputs_contract import (  # noqa: E402
    BACKENDS, CH_POINTS, FILE_POINTS, PG_POINTS, SERVERS, program, registered)
from test_outputs_contract import run as contract_run  # noqa: E402

ARCH_STREAMS = "entities=arch_blocks,arch_transactions,arch_account_updates,arch_events"
ONLY = os.environ.get("BP_CONTRACT_ONLY", "")
# outputs at a time: a run mostly waits (fsync, servers, children), a third of it on the CPU
WORKERS = 3
REDIS_POINTS = ["redis.before_exec"]
KAFKA_POINTS = ["kafka.before_checkpoint"]

# (name, server or None, URL of a fresh output from (temp dir, server), crash points); the
# longest runs first, so that the pool ends together
ARCH_BACKENDS = [
    ("clickhouse", "clickhouse", lambda d, s: s.url("contract_arch"), CH_POINTS),
    # the mock cluster serves aborted transactions' records: the reader keeps the records of
    # transactions with a checkpoint record (test_outputs_contract.py)
    ("kafka (mock cluster)", "kafka", lambda d, s: s.url(ARCH_STREAMS + "&prefix=contract_"),
     KAFKA_POINTS),
    ("postgres, staging tables", "postgres",
     lambda d, s: s.url(scheme="postgresql", query="schema=contract_arch_staging&mode=staging"),
     PG_POINTS),
    ("postgres", "postgres", lambda d, s: s.url(query="schema=contract_arch"), PG_POINTS),
    ("rediss (TLS, password)", "redis-tls",
     lambda d, s: s.url(query=ARCH_STREAMS + "&maxlen=0"), REDIS_POINTS),
    ("redis", "redis", lambda d, s: s.url(query=ARCH_STREAMS + "&maxlen=0&prefix=contract:"),
     REDIS_POINTS),
    ("jsonl", None, lambda d, s: f"jsonl://{d}/jsonl", FILE_POINTS),
    ("sqlite", None, lambda d, s: f"sqlite:{d}/arch.db", ["sqlite.before_commit"]),
]

# Outputs that keep a crashed batch's WebSocket events (their arch_events rows and rollback
# states: what the node said, not sent again; clickhouse_arch.h): their crash and kill
# rounds write blocks only.
KEEP_CRASHED_EVENTS = {"clickhouse", "ch"}

# Outputs that refuse an Arch chain, and the words their reason must have.
REFUSED = {"etl-csv": "etl-csv is ethereum-etl's EVM format"}


def run(prog, name, url, points):
    extra = ["--family", "arch"]
    if url.split(":", 1)[0] in KEEP_CRASHED_EVENTS:
        extra.append("--no-crash-events")
    return contract_run(prog, name, url, points, extra)


def check_refused(prog, tmp):
    """Every registered scheme is either tested with Arch rows or refuses them with a reason."""
    failed = []
    evm = {name.split(" ")[0].rstrip(","): url_of for name, _, url_of, _ in BACKENDS}
    for scheme, words in sorted(REFUSED.items()):
        d = os.path.join(tmp, "refused-" + scheme)
        os.mkdir(d)
        p, _ = run(prog, scheme, evm[scheme](d, None), [])
        out = (p.stdout + p.stderr).strip()
        ok = p.returncode == 1 and "does not store Arch blocks" in out and words in out
        print(f"--- {scheme}, Arch rows: {'refused' if ok else 'NOT REFUSED'}\n{out}\n",
              flush=True)
        if not ok:
            failed.append(f"{scheme} (no refusal with its reason)")
    return failed, set(REFUSED)


def main():
    print(__doc__.strip())
    prog = program()
    failed, tested = [], set()
    backends = [b for b in ARCH_BACKENDS if b[0].startswith(ONLY)]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bp-contract-arch-"))
        servers = {}
        for _, need, _, _ in backends:
            if need and need not in servers:
                servers[need] = stack.enter_context(SERVERS[need]())
        jobs = []
        for i, (name, need, url_of, points) in enumerate(backends):
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
            print(f"--- {name}, Arch rows: {status} in {took:.1f} s\n{out}\n", flush=True)
            if p.returncode != 0 or "(Arch rows): ok" not in out:
                failed.append(name)
        refused_failed, refused = check_refused(prog, tmp) if not ONLY else ([], set())
        failed += refused_failed
    untested = registered(prog) - tested - refused
    if untested and not ONLY:
        failed.append(f"registered but neither tested with Arch rows nor refused: "
                      f"{', '.join(sorted(untested))}")
    if failed:
        print(f"FAIL: the output contract with Arch rows does not hold for: {', '.join(failed)}")
        return 1
    print(f"ok: {len(backends)} outputs hold the output contract with Arch rows, "
          f"{len(REFUSED)} refuse them with their reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
