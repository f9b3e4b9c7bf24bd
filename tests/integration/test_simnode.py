"""`blockpipe simnode` as the node of `blockpipe backfill`: once clean, once through faults.

1. simnode --length 300 --txs-per-block 50 --block-time 0; backfill 0..299 into SQLite must
   exit 0 and hold exactly simnode's blocks: hash, parent hash and tx count of every block,
   every tx hash in order, the log count of every block.
2. simnode with three endpoints: ep2 injects JSON-RPC errors, truncated and garbage answers,
   HTTP 500, connection resets, stalls past the client timeout, 429 above a request rate and
   added latency. A backfill of 0..149 through ep2 (--max-retries 50) must still end exact,
   and every fault counter in GET /stats must be > 0; ep3 (lag=7) answers a head 7 behind.
   SIGINT prints the counters, exit 0.
3. simnode growing a block every 0.5 s with a depth-4 reorg every 3 s under `blockpipe run`
   until blockpipe has reported two reorgs: its SQLite chain must be simnode's: blocks at
   least 4 below its checkpoint canonical, the ones above at worst orphaned by a reorg that
   came after the stop, parent links unbroken, every field of every block, tx and log equal
   to simnode's block of that hash.
4. --senders / --contracts / --zipf: the defaults spelled out serve the same blocks and
   receipts as no flags; --senders 5 --contracts 2 has exactly 5 senders and 2 called
   contracts; --senders 100000000 --zipf 1 more distinct senders than the default pool holds;
   a --zipf out of range is refused (exit 2).
Stdlib only; needs BLOCKPIPE.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402
import rowcheck  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
CHAIN = "1337"  # simnode's default chain id
HANG = 120  # seconds: only a guard against a hang, never a measure
KINDS = ("latency", "error", "rate_limit", "http500", "truncate", "garbage", "reset", "stall")


def fail(msg):
    raise AssertionError(msg)


def backfill(url, last, db, extra=()):
    cmd = [BLOCKPIPE, "backfill", "--rpc", url, "--from", "0", "--to", str(last),
           "--output", f"sqlite:{db}", *extra]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        fail(f"backfill exited {p.returncode}:\n{p.stderr[-4000:]}")
    return time.monotonic() - t, p.stderr


def expected_chain(node, last):
    """number -> (hash, parentHash, [tx hashes], log count), from simnode itself."""
    want = {}
    for start in range(0, last + 1, 50):
        nums = range(start, min(start + 50, last + 1))
        calls = []
        for n in nums:
            calls += [("eth_getBlockByNumber", [hex(n), False]), ("eth_getBlockReceipts", [hex(n)])]
        res = node.rpc_batch(calls)
        for i, n in enumerate(nums):
            blk, receipts = res[2 * i], res[2 * i + 1]
            logs = sum(len(r["logs"]) for r in receipts)
            want[n] = (blk["hash"], blk["parentHash"], blk["transactions"], logs)
    return want


def check_db(db, want):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        blocks = {n: (h, p, c) for n, h, p, c in con.execute(
            "SELECT number, hash, parent_hash, transaction_count FROM blocks")}
        txs = {}
        for n, h in con.execute(
                "SELECT block_number, hash FROM transactions ORDER BY block_number, "
                "transaction_index"):
            txs.setdefault(n, []).append(h)
        logs = dict(con.execute("SELECT block_number, count(*) FROM logs GROUP BY block_number"))
    finally:
        con.close()
    if sorted(blocks) != sorted(want):
        fail(f"blocks in the DB: {len(blocks)}, want {len(want)}")
    for n, (h, p, tx_hashes, log_count) in want.items():
        if blocks[n] != (h, p, len(tx_hashes)):
            fail(f"block {n}: DB has {blocks[n]}, simnode says {(h, p, len(tx_hashes))}")
        if txs.get(n, []) != tx_hashes:
            fail(f"block {n}: DB tx hashes differ from simnode's")
        if logs.get(n, 0) != log_count:
            fail(f"block {n}: DB has {logs.get(n, 0)} logs, simnode {log_count}")
    if not any(want[n][2] for n in want):
        fail("simnode served no transactions at all")


def clean_run(tmp):
    node = Simnode(BLOCKPIPE, ["--length", "300", "--txs-per-block", "50", "--block-time", "0"])
    try:
        db = os.path.join(tmp, "clean.db")
        secs, _ = backfill(node.urls[0], 299, db)
        check_db(db, expected_chain(node, 299))
        print(f"clean: 300 blocks x 50 txs in {secs:.1f} s")
        stats = node.stop()
        if stats["endpoints"][0]["calls"] < 600:
            fail(f"simnode counted fewer calls than 300 blocks + receipts: {stats}")
    finally:
        node.kill()


def faulty_run(tmp):
    faults = ("ep2:latency=2ms,error_rate=0.04,truncate_rate=0.04,garbage_rate=0.04,"
              "http500_rate=0.04,reset_rate=0.04,stall_rate=0.04,stall=3s,rate_limit=10;"
              "ep3:lag=7")
    # Faults follow (seed, endpoint, request number): with seed 30 every kind fires within
    # ep2's first 20 requests, so a run of ~100 requests cannot miss one by chance.
    node = Simnode(BLOCKPIPE, ["--seed", "30", "--length", "150", "--txs-per-block", "20",
                    "--block-time", "0", "--faults", faults], endpoints=3)
    try:
        db = os.path.join(tmp, "faulty.db")
        secs, err = backfill(node.urls[1], 149, db,
                             ["--max-retries", "50", "--rpc-timeout", "1", "--workers", "8"])
        check_db(db, expected_chain(node, 149))
        heads = [int(node.rpc_batch([("eth_blockNumber", [])], ep)[0], 16) for ep in (0, 2)]
        if heads != [149, 142]:
            fail(f"heads of ep1 and ep3 (lag=7): {heads}, want [149, 142]")
        if node.rpc_batch([("eth_getBlockByNumber", ["0x90", False])], 2)[0] is not None:
            fail("ep3 (lag=7) answered block 144 above its head 142")
        ep1, ep2, _ = node.stats()["endpoints"]
        zero = [k for k in KINDS if ep2["faults"][k] <= 0]
        if zero:
            fail(f"fault kinds never injected on ep2: {zero}; stats {ep2}")
        if any(ep1["faults"][k] for k in KINDS):
            fail(f"ep1 has no fault profile but counted faults: {ep1}")
        print(f"faulty: 150 blocks in {secs:.1f} s through {ep2['faults']}")
        final = node.stop()
        if final["endpoints"][1]["faults"]["reset"] < ep2["faults"]["reset"]:
            fail(f"SIGINT counters behind /stats: {final}")
    finally:
        node.kill()


def reorg_run(tmp):
    depth = 4
    node = Simnode(BLOCKPIPE, ["--block-time", "0.5", "--start-head", "20", "--txs-per-block", "10",
                    "--reorg-every", "3", "--reorg-depth", str(depth)])
    run = None
    try:
        db = os.path.join(tmp, "reorg.db")
        err_path = os.path.join(tmp, "reorg.stderr")
        with open(err_path, "w") as err:
            run = subprocess.Popen([BLOCKPIPE, "run", "--rpc", node.urls[0], "--output",
                                    f"sqlite:{db}", "--confirmations", "0", "--poll-interval",
                                    "0.2", "--start-block", "0"], stderr=err)

        def log():
            with open(err_path, errors="replace") as f:
                return f.read()
        # until blockpipe has reported two reorgs (the stats lines' "reorgs=0" does not count)
        deadline = time.monotonic() + HANG
        while len(re.findall(r"reorg: \d+ block\(s\) orphaned", log())) < 2:
            if run.poll() is not None or time.monotonic() > deadline:
                fail(f"no two reorgs reported within {HANG} s (exit {run.poll()}):\n"
                     f"{log()[-3000:]}")
            time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        run.wait(timeout=HANG)
        if run.returncode != 0:
            fail(f"run exited {run.returncode}:\n{log()[-3000:]}")
        # blocks above the reorg depth may be orphaned by a reorg after the stop (compared by
        # hash), the others must be canonical
        cp, _, counts = rowcheck.sqlite_branch_exact(node.urls[0], db, CHAIN, depth)
        stats = node.stop()
        print(f"reorg: {cp + 1} blocks, {counts['transactions']} txs and {counts['logs']} logs "
              f"exact, {stats['reorgs']} reorgs made by simnode")
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        node.kill()


def blocks_of(args, last=3):
    node = Simnode(BLOCKPIPE, ["--block-time", "0", "--length", "100", *args])
    try:
        calls = []
        for n in range(1, last + 1):
            calls += [("eth_getBlockByNumber", [hex(n), True]), ("eth_getBlockReceipts", [hex(n)])]
        return node.rpc_batch(calls)
    finally:
        node.kill()


def population_run():
    base = ["--txs-per-block", "1000"]
    default = blocks_of(base)
    if blocks_of(base + ["--senders", "4096", "--contracts", "256", "--zipf", "0"]) != default:
        fail("the default populations spelled out changed the chain")
    senders = lambda res: {t["from"] for b in res[0::2] for t in b["transactions"]}  # noqa: E731
    called = lambda res: {t["to"] for b in res[0::2] for t in b["transactions"]  # noqa: E731
                          if t["to"] and t["input"] != "0x"}
    small = blocks_of(base + ["--senders", "5", "--contracts", "2"])
    if len(senders(small)) != 5 or len(called(small)) != 2:
        fail(f"--senders 5 --contracts 2: {len(senders(small))} senders, "
             f"{len(called(small))} contracts called")
    many = blocks_of(["--txs-per-block", "3000", "--senders", "100000000", "--zipf", "1"], 5)
    if len(senders(many)) <= 4096 or len(senders(default)) > 4096:
        fail(f"--zipf 1 over 10^8 senders: {len(senders(many))} distinct of 15,000, the default "
             f"{len(senders(default))}")
    bad = subprocess.run([BLOCKPIPE, "simnode", "--zipf", "5"], capture_output=True, text=True,
                         timeout=HANG)
    if bad.returncode != 2 or "--zipf" not in bad.stderr:
        fail(f"--zipf 5 was not refused: exit {bad.returncode}, {bad.stderr!r}")
    print(f"populations: default {len(senders(default))} senders of 3,000 txs, zipf "
          f"{len(senders(many))} of 15,000")


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE must point at the blockpipe binary")
    with tempfile.TemporaryDirectory(prefix="bp_simnode.") as tmp:
        clean_run(tmp)
        faulty_run(tmp)
        reorg_run(tmp)
    population_run()
    print("test_simnode: ok")


if __name__ == "__main__":
    main()
