"""PostgreSQL output under bad conditions, against a real PostgreSQL 15 and anvil.

One anvil chain (~1,200 blocks, a few hundred txs with logs); each phase writes into its own
schema and must end with exactly the node's chain (every block, its txs in order, its log
count, no duplicate, checkpoint = head):
  down-at-start  the server is down when backfill starts (wait_for_db=30): it retries with
                 backoff, the server comes up 2 s later, the backfill completes.
  credentials    a wrong password fails at once (< 10 s) with the server's message, and the
                 server saw at most 2 login attempts (no retry storm).
  kill9          backfill (batches of 20 blocks) SIGKILLed at seeded random moments (at least
                 3 land mid-run: in a COPY, between COPY and COMMIT or between batches), then
                 run to the end.
  overlap        two backfills of overlapping ranges into the same tables at once (own
                 checkpoint names): both exit 0, no row doubled (staging + ON CONFLICT).
  constraint     a CHECK constraint the data violates: exit 1 with the SQL error, SQLSTATE
                 and block number; nothing of the failing batch is stored.
  two-outputs    sqlite + postgres with the postgres one failing (the constraint): exit 1
                 naming the postgres output, the SQLite output stays consistent; after the
                 constraint is dropped a rerun completes both outputs exactly.
  restart        `blockpipe run` follows while blocks are mined and the server is restarted
                 twice (fast shutdown, 1.5 s down): it reconnects, resumes from the checkpoint
                 and catches up exactly.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import (Fail, blockpipe_bin, check_chain, checkpoint, node_chain, run,  # noqa: E402
                     tail, wait_for)

SEED = int(os.environ.get("BP_SEED", "31"))
BLOCKS = 1200


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


def expect_exact(pg, chain, schema, label, output="postgres"):
    ntx, nlog = check_chain(pg, chain, label, schema)
    cp = checkpoint(pg, schema, output)
    if cp != (len(chain) - 1, chain[-1]["hash"]):
        raise Fail(f"{label}: checkpoint {cp}, want ({len(chain) - 1}, {chain[-1]['hash']})")
    print(f"[{label}] OK: blocks={len(chain)} txs={ntx} logs={nlog}")


def down_at_start(bp, pg, node, chain, head):
    pg.shutdown()
    p = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=down&wait_for_db=30"), 0,
                                      head), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    time.sleep(2)
    pg.start()
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0 or "cannot connect (attempt" not in out:
        raise Fail(f"down-at-start: exit {p.returncode}, want 0 after retries:\n{out[-3000:]}")
    expect_exact(pg, chain, "down", "down-at-start")


def credentials(bp, pg, node, head):
    before = open(pg.log_path, errors="replace").read().count("password authentication failed")
    t0 = time.monotonic()
    rc, out = run(backfill_cmd(bp, node, pg.url(password="wrong"), 0, head), timeout=60)
    dt = time.monotonic() - t0
    attempts = open(pg.log_path, errors="replace").read().count(
        "password authentication failed") - before
    if rc == 0 or "password authentication failed" not in out or dt > 10 or attempts > 2:
        raise Fail(f"credentials: exit {rc} after {dt:.1f}s with {attempts} attempts; want a "
                   f"quick failure naming the password:\n{out[-2000:]}")
    print(f"[credentials] OK: exit {rc} after {dt:.1f}s, {attempts} login attempt(s)")


def kill9(bp, pg, node, chain, head, rng):
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
    expect_exact(pg, chain, "k9", f"kill9 ({kills} kills)")


def overlap(bp, pg, node, chain, head):
    a = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=ov&checkpoint=a"), 0, head,
                                      50), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    b = subprocess.Popen(backfill_cmd(bp, node, pg.url(query="schema=ov&checkpoint=b"), 0, head,
                                      80), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    outa, _ = a.communicate(timeout=120)
    outb, _ = b.communicate(timeout=120)
    if a.returncode != 0 or b.returncode != 0:
        raise Fail(f"overlap: exits {a.returncode} {b.returncode}:\n{outa[-1500:]}\n{outb[-1500:]}")
    expect_exact(pg, chain, "ov", "overlap writer a", "a")
    expect_exact(pg, chain, "ov", "overlap writer b", "b")
    staged = ("staging tables" in outa) + ("staging tables" in outb)
    print(f"  {staged} of 2 writers met the other's rows and merged through staging")


def constraint(bp, pg, node, head):
    run([bp, "migrate", pg.url(), "--pg-schema", "cc"])
    pg.sql("ALTER TABLE cc.transactions ADD CONSTRAINT small_gas CHECK (gas < 100000)")
    rc, out = run(backfill_cmd(bp, node, pg.url(query="schema=cc"), 0, head), timeout=120)
    if rc == 0 or "small_gas" not in out or "23514" not in out or "block " not in out:
        raise Fail(f"constraint: exit {rc}, want 1 with the constraint, SQLSTATE 23514 and the "
                   f"block:\n{out[-2000:]}")
    line = [x for x in out.splitlines() if "small_gas" in x][-1]
    print(f"[constraint] OK: {line[line.find('block '):][:220]}")
    return line


def two_outputs(bp, pg, node, chain, head, tmp):
    db = os.path.join(tmp, "two.db")
    run([bp, "migrate", pg.url(), "--pg-schema", "two"])
    pg.sql("ALTER TABLE two.transactions ADD CONSTRAINT small_gas CHECK (gas < 100000)")
    cmd = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
           "--output", f"sqlite:{db}", "--output", pg.url(query="schema=two"),
           "--batch-size", "100"]
    rc, out = run(cmd, timeout=120)
    if rc == 0 or "small_gas" not in out or "schema=two" not in out:
        raise Fail(f"two-outputs: exit {rc}, want 1 naming the postgres output:\n{out[-2000:]}")
    con = sqlite3.connect(db)
    cp = con.execute("SELECT number FROM checkpoints").fetchall()
    top = con.execute("SELECT max(number), count(*) FROM blocks").fetchone()
    con.close()
    if cp and (top[0] != cp[0][0] or top[1] != cp[0][0] + 1):
        raise Fail(f"two-outputs: SQLite inconsistent after the failure: checkpoint {cp}, "
                   f"blocks max/count {top}")
    pg.sql("ALTER TABLE two.transactions DROP CONSTRAINT small_gas")
    rc, out = run(cmd, timeout=120)
    if rc != 0:
        raise Fail(f"two-outputs: rerun exit {rc}:\n{out[-2000:]}")
    expect_exact(pg, chain, "two", "two-outputs postgres")
    con = sqlite3.connect(db)
    got = [h for (h,) in con.execute("SELECT hash FROM blocks ORDER BY number")]
    con.close()
    if got != [b["hash"] for b in chain]:
        raise Fail("two-outputs: SQLite blocks differ from the node after the rerun")
    print(f"[two-outputs] OK: sqlite checkpoint was {cp[0][0] if cp else None} when postgres "
          f"failed; both complete after the rerun")


def restart(bp, pg, node, wl, rng, tmp):
    err_path = os.path.join(tmp, "restart.txt")
    stop = threading.Event()

    def miner():
        while not stop.is_set():
            wl.mine_batch(rng.randrange(0, 6))
            time.sleep(0.1)
    with open(err_path, "w") as err:
        p = subprocess.Popen([bp, "run", "--rpc", node.url, "--output",
                              pg.url(query="schema=rs&wait_for_db=30"), "--start-block", "0",
                              "--confirmations", "0", "--poll-interval", "0.2",
                              "--batch-size", "20"], stdout=err, stderr=err)
        t = threading.Thread(target=miner)
        t.start()
        try:
            for i in range(2):
                time.sleep(1.5)
                pg.shutdown()
                time.sleep(1.5)
                pg.start()
                print(f"  server restarted ({i + 1}); checkpoint {checkpoint(pg, 'rs')}")
            time.sleep(1)
        finally:
            stop.set()
            t.join()
        head = node.block_number()
        want = (head, node.block(head, False)["hash"])

        def done():
            if p.poll() is not None:
                raise Fail(f"restart: blockpipe exited {p.returncode}:\n{tail(err_path)}")
            return checkpoint(pg, "rs") == want
        try:
            wait_for(done, 90, f"restart: checkpoint == {want}", 0.2)
        finally:
            p.send_signal(signal.SIGINT)
            try:
                rc = p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
    log = open(err_path, errors="replace").read()
    if rc != 0 or "reconnect" not in log:
        raise Fail(f"restart: exit {rc} (want 0) and a reconnect in the log:\n{tail(err_path)}")
    expect_exact(pg, node_chain(node), "rs", "restart x2")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-faults-")
    try:
        with Postgres() as pg, Anvil() as node:
            wl = build_chain(node, rng)
            head = node.block_number()
            chain = node_chain(node)
            print(f"chain: {head + 1} blocks, {sum(len(b['txs']) for b in chain)} txs")
            down_at_start(bp, pg, node, chain, head)
            credentials(bp, pg, node, head)
            kill9(bp, pg, node, chain, head, rng)
            overlap(bp, pg, node, chain, head)
            constraint(bp, pg, node, head)
            two_outputs(bp, pg, node, chain, head, tmp.name)
            restart(bp, pg, node, wl, rng, tmp.name)
        print("OK")
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
