"""--max-memory bounds the resident memory of a backfill of 50,000-tx blocks (issue 15).

simnode --txs-per-block 50000 serves blocks 0..11 (genesis empty; one block and its receipts
are about 140 MB of JSON and 125 MiB once decoded). A backfill of all of them into SQLite
must keep its peak resident set (the kernel's: wait4 ru_maxrss, and VmHWM sampled from
/proc/PID/status while it runs) under the budget, with the derived tables (on by default):
--max-memory 256MiB and 192MiB. test_metrics_memory bounds the derived
tables' own memory. Every block must be stored whole: its hash, and its transactions' hashes
in order, as simnode serves them, and nothing else; and its chain_metrics_block row (the
derived tables were written). The same into PostgreSQL (a private server, tests/tools/pg.py)
with --max-memory 192MiB: its COPY buffers count too. A budget that cannot
hold one such block (the default, 96 MiB for one chain) must still finish (the block at the base may always
be fetched), saying so in a warning; one that 100 workers leave no room in is refused at start.

The peak is measured on a release build of the same sources, made here (incrementally) in
BP_BUILD_DIR/rss-release: this test build has AddressSanitizer, whose shadow memory,
redzones and quarantine would put the resident size far above what the program itself
holds; measuring that would be measuring ASan. Stdlib only; needs BP_SOURCE_DIR and
BP_BUILD_DIR (set by ctest), cmake and a C compiler.
"""

import fcntl
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from simnode import Simnode  # noqa: E402

TXS = 50000
LAST = 11
MiB = 1 << 20


def fail(msg):
    raise AssertionError(msg)


def release_binary():
    """A non-sanitized blockpipe of these sources (built once, then only what changed)."""
    src, build = os.environ.get("BP_SOURCE_DIR"), os.environ.get("BP_BUILD_DIR")
    if not src or not build:
        fail("BP_SOURCE_DIR / BP_BUILD_DIR are not set (run through ctest)")
    out = os.path.join(build, "rss-release")
    os.makedirs(out, exist_ok=True)
    # several tests build it, and ctest runs them side by side: one build at a time
    lock = open(os.path.join(out, ".build.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    for cmd in (["cmake", "-S", src, "-B", out, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                 "-DBP_TESTS=OFF", "-DBP_SANITIZE=OFF", "-DBP_FUZZ=OFF"],
                ["nice", "cmake", "--build", out, "--target", "blockpipe", "-j2"]):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=840)
        if p.returncode != 0:
            fail(f"building the release binary failed: {' '.join(cmd)}\n{p.stdout[-2000:]}"
                 f"\n{p.stderr[-2000:]}")
    lock.close()
    return os.path.join(out, "blockpipe")


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def backfill(bp, url, output, last, *extra, env=None):
    """Runs the backfill (in env: None, this one's); returns (peak RSS in MiB, its stderr)."""
    return peak_rss([bp, "backfill", "--rpc", url, "--from", "0", "--to", str(last), "--output",
                     output, "--rpc-timeout", "120", "--stats-interval", "1", *extra], env=env)


def peak_rss(cmd, env=None):
    """Runs blockpipe's cmd, which must exit 0; returns (peak RSS in MiB, its stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env)
    hwm = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            hwm[0] = max(hwm[0], vm_hwm_kib(p.pid))

    t = threading.Thread(target=sample)
    t.start()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    done.set()
    t.join()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        fail(f"{' '.join(cmd[1:])} exited {rc}: {err[-3000:]}")
    return max(usage.ru_maxrss, hwm[0]) / 1024.0, err


def sqlite_store(db):
    """(block row, tx hashes, chain_metrics_block row) readers of a SQLite output."""
    c = sqlite3.connect(db)

    def block(n):
        return c.execute("SELECT hash, transaction_count FROM blocks WHERE number = ?",
                         (n,)).fetchone()

    def txs(n):
        return [h for (h,) in c.execute("SELECT hash FROM transactions WHERE block_number = ? "
                                        "ORDER BY transaction_index", (n,))]

    def metrics(n):
        return c.execute("SELECT block_hash, txcount FROM chain_metrics_block "
                         "WHERE block_number = ?", (n,)).fetchone()
    return block, txs, metrics


def pg_store(pg):
    """The same readers over a PostgreSQL output (bytea hashes as 0x-hex)."""
    def block(n):
        rows = pg.sql(f"SELECT '0x' || encode(hash, 'hex'), transaction_count FROM blocks "
                      f"WHERE number = {n}")
        return (rows[0][0], int(rows[0][1])) if rows else None

    def txs(n):
        return [r[0] for r in pg.sql(f"SELECT '0x' || encode(hash, 'hex') FROM transactions "
                                     f"WHERE block_number = {n} ORDER BY transaction_index")]

    def metrics(n):
        rows = pg.sql(f"SELECT '0x' || encode(block_hash, 'hex'), txcount "
                      f"FROM chain_metrics_block WHERE block_number = {n}")
        return (rows[0][0], int(rows[0][1])) if rows else None
    return block, txs, metrics


def check_chain(node, store, last):
    """Every block 0..last stored whole: its hash, every tx hash in order and its
    chain_metrics_block row; nothing more."""
    block_row, tx_hashes, metrics_row = store
    for n in range(last + 2):
        row = block_row(n)
        if n == last + 1:
            if row is not None:
                fail(f"block {n} is stored, the range ended at {last}")
            break
        (block,) = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False])])
        want = len(block["transactions"])
        if row is None or tuple(row) != (block["hash"], want) or (n > 0 and want != TXS):
            fail(f"block {n}: stored {row}, simnode has ({block['hash']}, {want})")
        if tx_hashes(n) != block["transactions"]:
            fail(f"block {n}: the stored transactions are not simnode's {want} in order")
        if metrics_row(n) is None or tuple(metrics_row(n)) != (block["hash"], want):
            fail(f"block {n}: chain_metrics_block has {metrics_row(n)}, simnode has "
                 f"({block['hash']}, {want})")


def too_small(bp):
    """A budget its fixed part (process, workers, outputs) does not leave room in is refused
    at start, naming what takes it; no node is needed for that."""
    with tempfile.TemporaryDirectory(prefix="bp-mem-") as tmp:
        p = subprocess.run([bp, "backfill", "--rpc", "http://127.0.0.1:9", "--from", "0", "--to",
                            "1", "--workers", "100", "--max-memory", "64MiB", "--output",
                            f"sqlite:{tmp}/x.db"], capture_output=True, text=True, timeout=60)
    want = "--max-memory 64 MiB is too small for 100 fetch workers and 1 output(s)"
    if p.returncode != 1 or want not in p.stderr or "at least 152 MiB" not in p.stderr:
        fail(f"--max-memory 64MiB with 100 workers: exit {p.returncode}, {p.stderr[-1000:]}")
    print("ok: a budget too small for 100 workers is refused at start")


def main():
    bp = release_binary()
    too_small(bp)
    node = Simnode(bp, ["--length", str(LAST + 1), "--txs-per-block", str(TXS),
                        "--block-time", "0"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-mem-") as tmp:
            # The derived tables are on (the default) in every run: 256 MiB and 192 MiB
            for budget, flags in ((256, ["--max-memory", "256MiB"]),
                                  (192, ["--max-memory", "192MiB"])):
                db = os.path.join(tmp, f"b{budget}.db")
                peak, log = backfill(bp, node.urls[0], f"sqlite:{db}", LAST, *flags)
                if "beyond the budget" in log:
                    warned = [x for x in log.splitlines() if " warn " in x]
                    fail(f"{budget} MiB: a block was fetched beyond the budget: {warned} "
                         f"{log[-2000:]}")
                if peak >= budget:
                    fail(f"peak RSS {peak:.0f} MiB with a budget of {budget} MiB")
                if f"/{budget}MiB" not in log or " mem=" not in log:
                    fail(f"no stats line with mem=USED/{budget}MiB: {log[-2000:]}")
                check_chain(node, sqlite_store(db), LAST)
                print(f"ok: SQLite with the derived tables, {LAST} blocks of {TXS} txs, "
                      f"budget {budget} MiB, peak RSS {peak:.0f} MiB")
            # PostgreSQL: its COPY buffers are part of the budget too (sent every MiB)
            with Postgres() as pg:
                peak, _ = backfill(bp, node.urls[0], pg.url(), 3, "--max-memory", "192MiB")
                if peak >= 192:
                    fail(f"PostgreSQL: peak RSS {peak:.0f} MiB with a budget of 192 MiB")
                check_chain(node, pg_store(pg), 3)
                print(f"ok: PostgreSQL with the derived tables, 3 blocks of {TXS} txs, "
                      f"budget 192 MiB, peak RSS {peak:.0f} MiB")
            # The default budget (96 MiB for one chain) does not hold one such block: it must
            # still go through, one block at a time, and say so (its peak is not bounded by
            # the budget, by design).
            db = os.path.join(tmp, "b96.db")
            peak, log = backfill(bp, node.urls[0], f"sqlite:{db}", 3)
            if "beyond the budget" not in log:
                fail(f"default budget: no warning that blocks do not fit: {log[-2000:]}")
            if "/96MiB" not in log:
                fail(f"default budget: no stats line with mem=USED/96MiB: {log[-2000:]}")
            check_chain(node, sqlite_store(db), 3)
            print(f"ok: SQLite, 3 blocks with the default budget of 96 MiB (too small: warned), "
                  f"peak RSS {peak:.0f} MiB")
    finally:
        node.kill()


if __name__ == "__main__":
    main()
