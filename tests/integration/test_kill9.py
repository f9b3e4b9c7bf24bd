"""kill -9 during backfill loses nothing and duplicates nothing.

anvil gets 5,000 blocks (anvil_mine) with a few hundred txs spread over some of them. Then
`blockpipe backfill --from 0 --to N --workers 4 --batch-size 50` into one SQLite file is
started again and again and SIGKILLed after a seeded random 0.2-1.5 s (scaled down to at most half
the time one uninterrupted backfill takes, measured first into a separate file, so that
the kills land mid-run), until a run exits 0 by itself (at most 30 kills; then one more run
without kill must exit 0). Afterwards the
blocks table must hold every number 0..N exactly once with the node's hash, each block's
transactions and logs must match the node's counts (and tx hashes), no row may be
duplicated, and the checkpoint must be (N, hash of N).
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "99"))
MIN_BLOCKS = 5000  # >= 2,000; more blocks give more kills that land mid-run
MAX_KILLS = 30
FINAL_TIMEOUT = 600


def fail(msg):
    raise AssertionError(msg)


def build_chain(node, rng):
    wl = Workload(node, seed=SEED)
    wl.setup()
    while node.block_number() < MIN_BLOCKS:
        wl.mine_batch(rng.randrange(0, 20))
        node.mine(rng.randrange(10, 60))  # empty blocks in between, fast
    head = node.block_number()
    chain = []
    for n in range(head + 1):
        b = node.block(n, False)
        logs = sum(len(r["logs"]) for r in node.receipts(n)) if b["transactions"] else 0
        chain.append((b["hash"], [h.lower() for h in b["transactions"]], logs))
    return head, chain


def run_once(cmd, env, kill_after, err_path):
    """Returns ('killed', None) or ('exited', returncode)."""
    with open(err_path, "w") as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        try:
            rc = p.wait(kill_after)
            return "exited", rc
        except subprocess.TimeoutExpired:
            if kill_after is None:
                raise
            p.send_signal(signal.SIGKILL)
            p.wait()
            return "killed", None
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def checkpoint_number(db_path):
    """The checkpoint's block number, or None (no file / no table / no row yet)."""
    if not os.path.exists(db_path):
        return None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT number FROM checkpoints").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def check_db(db_path, head, chain):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT number) FROM blocks").fetchone()
        if total != distinct:
            dups = db.execute("SELECT number, COUNT(*) FROM blocks GROUP BY number "
                              "HAVING COUNT(*) > 1 LIMIT 5").fetchall()
            fail(f"blocks: {total} rows but {distinct} distinct numbers; duplicates {dups}")
        rows = dict(db.execute("SELECT number, hash FROM blocks"))
        missing = [n for n in range(head + 1) if n not in rows]
        extra = sorted(set(rows) - set(range(head + 1)))
        if missing or extra:
            fail(f"blocks: missing numbers {missing[:10]} ({len(missing)} in all), "
                 f"extra {extra[:10]}")
        for n in range(head + 1):
            if rows[n] != chain[n][0]:
                fail(f"block {n}: hash {rows[n]} in DB, node has {chain[n][0]}")

        total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT hash) FROM transactions").fetchone()
        if total != distinct:
            fail(f"transactions: {total} rows but {distinct} distinct hashes (duplicates)")
        txs = {}
        for bn, h in db.execute("SELECT block_number, hash FROM transactions "
                                "ORDER BY block_number, transaction_index"):
            txs.setdefault(bn, []).append(h)
        for n in range(head + 1):
            if txs.get(n, []) != chain[n][1]:
                fail(f"block {n}: {len(txs.get(n, []))} txs in DB {txs.get(n, [])[:3]}…, "
                     f"node has {len(chain[n][1])} {chain[n][1][:3]}…")

        total, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT block_number || ':' || log_index) FROM logs").fetchone()
        if total != distinct:
            fail(f"logs: {total} rows but {distinct} distinct (block_number, log_index)")
        logs = dict(db.execute("SELECT block_number, COUNT(*) FROM logs GROUP BY block_number"))
        for n in range(head + 1):
            if logs.get(n, 0) != chain[n][2]:
                fail(f"block {n}: {logs.get(n, 0)} log rows, node has {chain[n][2]}")

        cps = db.execute("SELECT number, hash FROM checkpoints").fetchall()
        if cps != [(head, chain[head][0])]:
            fail(f"checkpoints = {cps}, want [({head}, {chain[head][0]!r})]")
        return sum(len(c[1]) for c in chain), sum(c[2] for c in chain)
    finally:
        db.close()


def main():
    print(__doc__.strip())
    blockpipe = os.environ.get("BLOCKPIPE")
    if not blockpipe or not os.access(blockpipe, os.X_OK):
        sys.exit(f"FAIL: $BLOCKPIPE is not an executable ({blockpipe!r})")
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-kill9-")
    node = Anvil()
    try:
        t0 = time.monotonic()
        head, chain = build_chain(node, rng)
        print(f"node {node.url}: head={head} txs={sum(len(c[1]) for c in chain)} "
              f"(built in {time.monotonic() - t0:.1f}s)")

        db_path = os.path.join(tmp.name, "bp.db")
        err_path = os.path.join(tmp.name, "stderr.txt")
        cmd = [blockpipe, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
               "--output", f"sqlite:{db_path}", "--workers", "4", "--batch-size", "50"]
        print("running (repeatedly):", " ".join(cmd))
        # SIGKILL gives LeakSanitizer no chance to run, so the inherited ASAN_OPTIONS (leak
        # checks on) only judge the runs that end by themselves - which must be clean.
        env = dict(os.environ)

        # Calibration: one uninterrupted backfill into another file tells how long a whole
        # run takes here; a kill later than that would only ever hit a finished run.
        ref_db = os.path.join(tmp.name, "ref.db")
        ref_cmd = [c if c != f"sqlite:{db_path}" else f"sqlite:{ref_db}" for c in cmd]
        t1 = time.monotonic()
        how, rc = run_once(ref_cmd, env, FINAL_TIMEOUT, err_path)
        full = time.monotonic() - t1
        if how != "exited" or rc != 0:
            fail(f"uninterrupted backfill: {how} {rc}, want exit 0; stderr:\n"
                 + read(err_path)[-4000:])
        check_db(ref_db, head, chain)
        lo, hi = min(0.2, 0.05 * full), min(1.5, 0.5 * full)
        print(f"uninterrupted backfill: exit 0, correct, {full:.2f}s; kill delays "
              f"{lo:.2f}-{hi:.2f}s")

        kills, done, progress = 0, False, []
        while kills < MAX_KILLS:
            delay = rng.uniform(lo, hi)
            how, rc = run_once(cmd, env, delay, err_path)
            if how == "killed":
                kills += 1
                progress.append(checkpoint_number(db_path))
                continue
            if rc != 0:
                fail(f"backfill run {kills + 1} exited {rc} by itself, want 0; stderr:\n"
                     + read(err_path)[-4000:])
            done = True
            break
        print(f"checkpoint after each kill: {progress}")
        print(f"{kills} runs killed with SIGKILL; "
              + ("a run then finished by itself" if done else "final run without kill"))
        if not done:
            t1 = time.monotonic()
            try:
                how, rc = run_once(cmd, env, FINAL_TIMEOUT, err_path)
            except subprocess.TimeoutExpired:
                fail(f"final backfill did not finish within {FINAL_TIMEOUT}s")
            if how == "killed":
                fail(f"final backfill did not finish within {FINAL_TIMEOUT}s:\n"
                     + read(err_path)[-4000:])
            if rc != 0:
                fail(f"final backfill exited {rc}, want 0; stderr:\n" + read(err_path)[-4000:])
            print(f"final run exit 0 after {time.monotonic() - t1:.1f}s")
        if not any(p is None or p < head for p in progress):
            fail(f"no kill landed before the end of the backfill (checkpoints after kills: "
                 f"{progress}): the test proved nothing")
        ntx, nlog = check_db(db_path, head, chain)
        print(f"OK: blocks 0..{head} once each with the node's hashes; txs={ntx} logs={nlog}; "
              f"no duplicates; checkpoint={head} after {kills} kill -9")
    except AssertionError as e:
        sys.exit(f"FAIL: {e}")
    finally:
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
