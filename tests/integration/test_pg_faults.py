"""PostgreSQL output under bad conditions, against a real PostgreSQL 15 and anvil.

One anvil chain (~1,200 blocks, a few hundred txs with logs); each phase writes into its own
schema and must end with exactly the node's chain (every block, transaction and log once,
every field equal to the node's, checkpoint = head; tests/tools/rowcheck.py):
  down-at-start  the server is down when backfill starts (wait_for_db=60): it retries with
                 backoff, the server comes up once a retry is logged, the backfill completes.
  credentials    a wrong password fails at once (no retry) with the server's message, and
                 the server saw at most 2 login attempts (no retry storm).
  kill9          backfill (batches of 20 blocks) SIGKILLed at seeded random moments (at least
                 3 land mid-run: in a COPY, between COPY and COMMIT or between batches), then
                 run to the end.
  overlap        two backfills of overlapping ranges into the same tables at once (own
                 checkpoint names): both exit 0, no row doubled (staging + ON CONFLICT).
  constraint     a CHECK constraint that rows from block 150 on violate: exit 1 with the SQL
                 error, SQLSTATE, the first refused block and its batch; the batches before
                 it are stored exactly and nothing of the failing batch is (not even its
                 valid blocks).
  two-outputs    sqlite + postgres with the postgres one failing (the constraint): exit 1
                 naming the postgres output, the SQLite output holds exactly what its
                 checkpoint says; after the constraint is dropped a rerun completes both
                 outputs exactly.
  restart        `blockpipe run` follows while blocks are mined and the server is stopped
                 twice (fast shutdown) once blockpipe is writing, and started again once it
                 has lost its connection: it reconnects, resumes from the checkpoint and
                 catches up exactly.
Every wait is for the event itself, with a deadline that only guards against a hang.
"""

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, checkpoint, run, tail, wait_for  # noqa: E402
import rowcheck  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "31"))
BLOCKS = 1200
CHAIN = "31337"
CONSTRAINT_FROM = 150  # the constraint phase's refused rows start here: mid-chain
HANG = 120  # seconds: only a guard against a hang, never a measure


def build_chain(node, rng):
    wl = Workload(node, seed=SEED)
    wl.setup()
    while node.block_number() < BLOCKS:
        wl.mine_batch(rng.randrange(0, 12))
        node.mine(rng.randrange(5, 40))
    return wl


def backfill_cmd(bp, node, output, lo, hi, batch=100, workers=4):
    return [bp, "backfill", "--rpc", node.url, "--from", str(lo), "--to", str(hi),
            "--output", output, "--workers", str(workers), "--batch-size", str(batch)]


def expect_exact(pg, data, schema, label, outputs=("postgres",)):
    """The schema holds exactly the rows of `data` (every block, tx and log once, every field
    the node's) and each output's checkpoint is its last block."""
    counts = rowcheck.pg_exact(pg, schema, data, CHAIN, label)
    cps = rowcheck.pg_checkpoints(pg, schema, CHAIN)
    want = {o: (len(data) - 1, data[-1][0]["hash"]) for o in outputs} if data else {}
    if cps != want:
        raise Fail(f"{label}: checkpoints {cps}, want {want}")
    print(f"[{label}] OK: blocks={counts['blocks']} txs={counts['transactions']} "
          f"logs={counts['logs']}, every field")


def down_at_start(bp, pg, node, data, head, tmp):
    pg.shutdown()
    log = os.path.join(tmp, "down.txt")
    with open(log, "w") as out:
        p = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=down&wait_for_db=60"),
                                          0, head), stdout=out, stderr=subprocess.STDOUT)
    try:
        # the server comes up once blockpipe has failed to reach it and is retrying
        wait_for(lambda: p.poll() is not None or "cannot connect (attempt" in tail(log, 1000),
                 HANG, "a connection retry while the server is down")
        pg.start()
        p.wait(HANG)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0 or "cannot connect (attempt" not in tail(log, 1000):
        raise Fail(f"down-at-start: exit {p.returncode}, want 0 after retries:\n{tail(log)}")
    expect_exact(pg, data, "down", "down-at-start")


def credentials(bp, pg, node, head):
    before = open(pg.log_path, errors="replace").read().count("password authentication failed")
    rc, out = run(backfill_cmd(bp, node, pg.url(password="wrong"), 0, head), timeout=HANG)
    attempts = open(pg.log_path, errors="replace").read().count(
        "password authentication failed") - before
    if rc == 0 or "password authentication failed" not in out or attempts > 2 \
            or "cannot connect (attempt" in out:
        raise Fail(f"credentials: exit {rc} with {attempts} login attempts; want a failure "
                   f"naming the password without a retry:\n{out[-2000:]}")
    print(f"[credentials] OK: exit {rc}, {attempts} login attempt(s), no retry")


def kill9(bp, pg, node, data, head, rng):
    url = pg.url(query="schema=k9")
    cmd = backfill_cmd(bp, node, url, 0, head, 20, 2)
    t0 = time.monotonic()
    rc, out = run(backfill_cmd(bp, node, pg.url(query="schema=k9time"), 0, head, 20, 2))
    full = time.monotonic() - t0
    if rc != 0:
        raise Fail(f"kill9: timing run exit {rc}:\n{out[-2000:]}")
    kills = 0
    for _ in range(12):
        before = checkpoint(pg, "k9")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.wait(rng.uniform(0.05, max(0.1, full * 0.3)))
            break  # finished before the kill
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        after = checkpoint(pg, "k9")
        print(f"  kill {kills}: checkpoint {before and before[0]} -> {after and after[0]}")
    rc, out = run(cmd)
    if rc != 0:
        raise Fail(f"kill9: final run exit {rc}:\n{out[-2000:]}")
    if kills < 3:
        raise Fail(f"kill9: only {kills} kills landed (an uninterrupted run takes {full:.2f}s)")
    expect_exact(pg, data, "k9", f"kill9 ({kills} kills)")


def overlap(bp, pg, node, data, head):
    a = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=ov&checkpoint=a"), 0, head,
                                      50), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    b = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=ov&checkpoint=b"), 0, head,
                                      80), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    outa, _ = a.communicate(timeout=HANG)
    outb, _ = b.communicate(timeout=HANG)
    if a.returncode != 0 or b.returncode != 0:
        raise Fail(f"overlap: exits {a.returncode} {b.returncode}:\n{outa[-1500:]}\n{outb[-1500:]}")
    expect_exact(pg, data, "ov", "overlap writers a and b", ("a", "b"))
    staged = ("staging tables" in outa) + ("staging tables" in outb)
    print(f"  {staged} of 2 writers met the other's rows and merged through staging")


def constraint(bp, pg, node, data, head):
    """A row the server refuses in the middle of the chain: the error names the constraint,
    the SQLSTATE, the block and its batch; the batches before it are stored exactly and
    nothing of the failing batch (its other, valid blocks included) is."""
    run([bp, "migrate", pg.url(), "--pg-schema", "cc"])
    pg.sql(f"ALTER TABLE cc.transactions ADD CONSTRAINT small_gas"
           f" CHECK (block_number < {CONSTRAINT_FROM} OR gas < 100000)")
    bad = next(n for n, (b, _) in enumerate(data) if n >= CONSTRAINT_FROM and any(
        rowcheck.qty(t["gas"]) >= 100000 for t in b["transactions"]))
    rc, out = run(backfill_cmd(bp, node, pg.url(query="schema=cc"), 0, head), timeout=HANG)
    m = re.search(r"block (\d+): blocks (\d+)\.\.(\d+): COPY into transactions", out)
    if rc == 0 or "small_gas" not in out or "23514" not in out or not m:
        raise Fail(f"constraint: exit {rc}, want 1 with the constraint, SQLSTATE 23514, the "
                   f"block and its batch:\n{out[-2000:]}")
    named, lo, hi = (int(x) for x in m.groups())
    if named != bad or not lo <= bad <= hi or lo == hi:
        raise Fail(f"constraint: the error names block {named} in batch {lo}..{hi}; the first "
                   f"refused row is in block {bad}, and the batch must hold other blocks")
    # exactly the batches before the failing one, nothing of blocks lo..hi
    expect_exact(pg, data[:lo], "cc", f"constraint: stored 0..{lo - 1}, nothing of {lo}..{hi}",
                 ("postgres",) if lo else ())
    line = [x for x in out.splitlines() if "small_gas" in x][-1]
    print(f"[constraint] OK: {line[line.find('block '):][:220]}")


def two_outputs(bp, pg, node, data, head, tmp):
    db = os.path.join(tmp, "two.db")
    run([bp, "migrate", pg.url(), "--pg-schema", "two"])
    pg.sql("ALTER TABLE two.transactions ADD CONSTRAINT small_gas CHECK (gas < 100000)")
    cmd = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
           "--output", f"sqlite:{db}", "--output", pg.url(query="schema=two"),
           "--batch-size", "100"]
    rc, out = run(cmd, timeout=HANG)
    if rc == 0 or "small_gas" not in out or "schema=two" not in out:
        raise Fail(f"two-outputs: exit {rc}, want 1 naming the postgres output:\n{out[-2000:]}")
    # SQLite holds exactly what its checkpoint says, every field the node's
    cps = rowcheck.sqlite_checkpoints(db, CHAIN) if os.path.exists(db) else {}
    cp = cps["sqlite"][0] if cps else -1
    if cps and cps["sqlite"][1] != data[cp][0]["hash"]:
        raise Fail(f"two-outputs: SQLite checkpoint {cps} is not the node's block")
    if os.path.exists(db):
        rowcheck.sqlite_exact(db, data[:cp + 1], CHAIN, "two-outputs: SQLite after the failure")
    pg.sql("ALTER TABLE two.transactions DROP CONSTRAINT small_gas")
    rc, out = run(cmd, timeout=HANG)
    if rc != 0:
        raise Fail(f"two-outputs: rerun exit {rc}:\n{out[-2000:]}")
    expect_exact(pg, data, "two", "two-outputs postgres")
    rowcheck.sqlite_exact(db, data, CHAIN, "two-outputs: SQLite after the rerun")
    if rowcheck.sqlite_checkpoints(db, CHAIN) != {"sqlite": (head, data[head][0]["hash"])}:
        raise Fail("two-outputs: the SQLite checkpoint is not the head after the rerun")
    print(f"[two-outputs] OK: sqlite checkpoint was {cp if cps else None} when postgres "
          f"failed; both complete after the rerun, every field")


def restart(bp, pg, node, wl, rng, tmp):
    """`run` while blocks are mined; the server goes down twice once blockpipe is writing and
    comes back once blockpipe has lost its connection; the run must catch up exactly."""
    err_path = os.path.join(tmp, "restart.txt")
    stop = threading.Event()

    def miner():
        while not stop.is_set():
            wl.mine_batch(rng.randrange(0, 6))
            time.sleep(0.1)

    def lost():
        return tail(err_path, 100000).count("connection lost; reconnecting")

    def running():
        if p.poll() is not None:
            raise Fail(f"restart: blockpipe exited {p.returncode}:\n{tail(err_path)}")
        return True

    with open(err_path, "w") as err:
        p = subprocess.Popen([bp, "run", "--rpc", node.url, "--output",
                              pg.url(query="schema=rs&wait_for_db=60"), "--start-block", "0",
                              "--confirmations", "0", "--poll-interval", "0.2",
                              "--batch-size", "20"], stdout=err, stderr=err)
        t = threading.Thread(target=miner)
        t.start()
        try:
            for i in range(2):
                seen = checkpoint(pg, "rs")
                wait_for(lambda: running() and checkpoint(pg, "rs") not in (seen, None), HANG,
                         f"restart: blockpipe writing (checkpoint past {seen})")
                n = lost()
                pg.shutdown()
                wait_for(lambda: running() and lost() > n, HANG,
                         "restart: blockpipe to lose its connection to the stopped server")
                pg.start()
                print(f"  server restarted ({i + 1}); checkpoint {checkpoint(pg, 'rs')}")
            stop.set()
            t.join()
            head = node.block_number()
            want = (head, node.block(head, False)["hash"])
            wait_for(lambda: running() and checkpoint(pg, "rs") == want, HANG,
                     f"restart: checkpoint == {want}", 0.2)
        finally:
            stop.set()
            t.join()
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                rc = p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
    if rc != 0 or lost() < 2:
        raise Fail(f"restart: exit {rc} (want 0) and two lost connections in the log:\n"
                   f"{tail(err_path)}")
    expect_exact(pg, rowcheck.fetch(node.url, range(head + 1)), "rs", "restart x2")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-faults-")
    try:
        with Postgres() as pg, Anvil() as node:
            wl = build_chain(node, rng)
            head = node.block_number()
            data = rowcheck.fetch(node.url, range(head + 1))
            print(f"chain: {head + 1} blocks, {sum(len(b['transactions']) for b, _ in data)} "
                  f"txs")
            down_at_start(bp, pg, node, data, head, tmp.name)
            credentials(bp, pg, node, head)
            kill9(bp, pg, node, data, head, rng)
            overlap(bp, pg, node, data, head)
            constraint(bp, pg, node, data, head)
            two_outputs(bp, pg, node, data, head, tmp.name)
            restart(bp, pg, node, wl, rng, tmp.name)
        print("OK")
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, rowcheck.Mismatch, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
