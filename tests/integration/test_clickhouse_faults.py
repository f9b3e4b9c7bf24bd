"""The ClickHouse output under bad conditions, against a real ClickHouse (18.16) and anvil.

Each phase writes into its own database and must end with exactly the node's chain (every
block, transaction and log once, every field the node's, read with FINAL and with sign
weights; checkpoint = head; tests/tools/rowcheck.py):
  down-at-start  the server is down when backfill starts (wait_for_db=60): it retries with
                 backoff, the server comes up once a retry is logged, the backfill completes.
  kill9          backfill (batches of 10 blocks) SIGKILLed at seeded random moments (at least 3
                 land mid-run: in an INSERT, between the tables, between the rows and the
                 checkpoint, between batches); the server merges the tables (OPTIMIZE FINAL)
                 after every kill, with whatever the killed batch left; then run to the end.
  crash points   one database, backfilled once, through four rounds: the node reorgs (depth
                 3, then 2 more blocks) while blockpipe is stopped; the restart dies
                 (BP_CRASHPOINT) at clickhouse.after_blocks (the blocks of the
                 batch written, the other tables not), clickhouse.before_commit (every row,
                 not committed: both taken back at the next start), clickhouse.before_reverts
                 (committed, the reverted blocks not taken back) or
                 clickhouse.before_checkpoint (reverts done, no checkpoint: both finished at
                 the next start); the server merges the tables; the next start (for
                 after_blocks first one that dies inside its recovery, clickhouse.mid_recovery,
                 then merges again) catches up exactly.
  restart        `blockpipe run` follows while blocks are mined and the server is stopped
                 (SIGTERM) once blockpipe is writing, then killed (SIGKILL) the second time, and
                 started again once blockpipe has failed a write: it writes the batch again
                 and catches up exactly.
Every wait is for the event itself, with a deadline that only guards against a hang.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from pgcheck import Fail, blockpipe_bin, run, tail, wait_for  # noqa: E402
import rowcheck  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "37"))
BLOCKS = 400
CHAIN = "31337"
HANG = 180  # seconds: only a guard against a hang, never a measure
CRASHED = 86  # BP_CRASHPOINT_EXIT


def build_chain(node, rng):
    wl = Workload(node, seed=SEED)
    wl.setup()
    while node.block_number() < BLOCKS:
        wl.mine_batch(rng.randrange(0, 12))
        node.mine(rng.randrange(1, 8))
    return wl


def backfill_cmd(bp, node, output, hi, batch=50):
    return [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(hi), "--output",
            output, "--batch-size", str(batch), "--workers", "4"]


def checkpoint(ch, db):
    try:
        return rowcheck.ch_checkpoints(ch, db, CHAIN).get("clickhouse")
    except RuntimeError:
        return None


def expect_exact(ch, db, data, label):
    counts = rowcheck.ch_exact(ch, db, data, CHAIN, label)
    want = (len(data) - 1, data[-1][0]["hash"])
    if checkpoint(ch, db) != want:
        raise Fail(f"{label}: checkpoint {checkpoint(ch, db)}, want {want}")
    print(f"[{label}] OK: blocks={counts['blocks']} txs={counts['transactions']} "
          f"logs={counts['logs']}, every field")


def down_at_start(bp, ch, node, data, head, tmp):
    ch.shutdown()
    log = os.path.join(tmp, "down.txt")
    with open(log, "w") as out:
        p = subprocess.Popen(backfill_cmd(bp, node, ch.url("down", query="wait_for_db=60"), head),
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: p.poll() is not None or "cannot connect (attempt" in tail(log, 1000),
                 HANG, "a connection retry while the server is down")
        ch.start()
        p.wait(HANG)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode != 0 or "cannot connect (attempt" not in tail(log, 1000):
        raise Fail(f"down-at-start: exit {p.returncode}, want 0 after retries:\n{tail(log)}")
    expect_exact(ch, "down", data, "down-at-start")


def kill9(bp, ch, node, data, head, rng):
    cmd = backfill_cmd(bp, node, ch.url("k9"), head, 10)
    # the kills are spread over the time an uninterrupted run takes, measured on the first
    # quarter of the chain (into a database of its own) and scaled: the whole chain took
    # ClickHouse 18.16 226 s at load 28, the quarter 83 s at load 30. The start (a fresh
    # database's tables) is counted four times, so the kills spread a little wider; the first
    # ones still land long before a run could end (the checkpoint was at 55 of 404 blocks
    # after three), and 7 of the 12 rounds were kills where the full timing run gave 9
    part = head // 4
    t0 = time.monotonic()
    rc, out = run(backfill_cmd(bp, node, ch.url("k9time"), part, 10))
    full = (time.monotonic() - t0) * (head + 1) / (part + 1)
    if rc != 0:
        raise Fail(f"kill9: timing run exit {rc}:\n{out[-2000:]}")
    kills = 0
    for _ in range(12):
        before = checkpoint(ch, "k9")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.wait(rng.uniform(0.05, max(0.1, full * 0.4)))
            break  # finished before the kill
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        if checkpoint(ch, "k9") is not None:
            ch.merge("k9")
        print(f"  kill {kills}: checkpoint {before and before[0]} -> "
              f"{(checkpoint(ch, 'k9') or [None])[0]}")
    rc, out = run(cmd)
    if rc != 0:
        raise Fail(f"kill9: final run exit {rc}:\n{out[-2000:]}")
    if kills < 3:
        raise Fail(f"kill9: only {kills} kills landed (an uninterrupted run takes about "
                   f"{full:.2f}s)")
    expect_exact(ch, "k9", data, f"kill9 ({kills} kills)")


def follow_until_head(bp, ch, node, db, log, crashpoint=None):
    """`run` from the checkpoint; with a crash point it must die there, else it is stopped
    (SIGINT, exit 0) once its checkpoint is the node's head."""
    env = dict(os.environ)
    env.pop("BP_CRASHPOINT", None)
    if crashpoint:
        env["BP_CRASHPOINT"] = crashpoint
    cmd = [bp, "run", "--rpc", node.url, "--output", ch.url(db), "--start-block", "0",
           "--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "5"]
    with open(log, "a") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    try:
        if crashpoint:
            rc = p.wait(HANG)
            if rc != CRASHED:
                raise Fail(f"crash at {crashpoint}: exit {rc}, want {CRASHED} (never reached?):"
                           f"\n{tail(log)}")
            return
        head = node.block_number()
        want = (head, node.block(head, False)["hash"])

        def done():
            if p.poll() is not None:
                raise Fail(f"{db}: blockpipe exited {p.returncode}:\n{tail(log)}")
            return checkpoint(ch, db) == want
        wait_for(done, HANG, f"{db}: checkpoint == {want}", 0.2)
        p.send_signal(signal.SIGINT)
        if p.wait(60) != 0:
            raise Fail(f"{db}: exit {p.returncode} after SIGINT:\n{tail(log)}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def crash_points(bp, ch, node, wl, rng, tmp):
    # one database through the four points, backfilled once: each point's reorg finds it at
    # the node's head, checked exactly after the point before, as a fresh backfill of the
    # whole chain would leave it (four such backfills cost a quarter of the test)
    db = "cp"
    rc, out = run(backfill_cmd(bp, node, ch.url(db), node.block_number()))
    if rc != 0:
        raise Fail(f"crash points: backfill exit {rc}:\n{out[-2000:]}")
    for point, says in (("clickhouse.after_blocks", "taking back the rows of batch"),
                        ("clickhouse.before_commit", "taking back the rows of batch"),
                        ("clickhouse.before_reverts", "finished batch"),
                        ("clickhouse.before_checkpoint", "finished batch")):
        log = os.path.join(tmp, "cp_" + point.split(".")[1] + ".txt")
        node.rpc("anvil_reorg", [3, []])
        wl.after_reorg()
        for _ in range(2):
            wl.mine_batch(rng.randrange(1, 6))
        follow_until_head(bp, ch, node, db, log, point)
        ch.merge(db)
        if point == "clickhouse.after_blocks":
            follow_until_head(bp, ch, node, db, log, "clickhouse.mid_recovery")
            ch.merge(db)
        follow_until_head(bp, ch, node, db, log)
        if says not in tail(log, 100000):
            raise Fail(f"{point}: the restart did not say '{says}':\n{tail(log)}")
        expect_exact(ch, db, rowcheck.fetch(node.url, range(node.block_number() + 1)),
                     f"crash at {point}, merged, restarted")


def restart(bp, ch, node, wl, rng, tmp):
    """`run` while blocks are mined; the server goes down twice (SIGTERM, then SIGKILL) once
    blockpipe is writing and comes back once blockpipe has failed a write."""
    err_path = os.path.join(tmp, "restart.txt")
    stop = threading.Event()

    def miner():
        while not stop.is_set():
            wl.mine_batch(rng.randrange(0, 6))
            time.sleep(0.1)

    def failed_writes():
        return tail(err_path, 100000).count("writing the batch again")

    def running():
        if p.poll() is not None:
            raise Fail(f"restart: blockpipe exited {p.returncode}:\n{tail(err_path)}")
        return True

    with open(err_path, "w") as err:
        p = subprocess.Popen([bp, "run", "--rpc", node.url, "--output",
                              ch.url("rs", query="wait_for_db=120"), "--start-block", "0",
                              "--confirmations", "0", "--poll-interval", "0.2",
                              "--batch-size", "20"], stdout=err, stderr=err)
        t = threading.Thread(target=miner)
        t.start()
        try:
            for how in ("shutdown", "kill"):
                seen = checkpoint(ch, "rs")
                wait_for(lambda: running() and checkpoint(ch, "rs") not in (seen, None), HANG,
                         f"restart: blockpipe writing (checkpoint past {seen})")
                n = failed_writes()
                getattr(ch, how)()
                wait_for(lambda: running() and failed_writes() > n, HANG,
                         "restart: a failed write while the server is down")
                ch.start()
                print(f"  server {how} and start; checkpoint {checkpoint(ch, 'rs')}")
            stop.set()
            t.join()
            head = node.block_number()
            want = (head, node.block(head, False)["hash"])
            wait_for(lambda: running() and checkpoint(ch, "rs") == want, HANG,
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
    if rc != 0:
        raise Fail(f"restart: exit {rc}, want 0:\n{tail(err_path)}")
    expect_exact(ch, "rs", rowcheck.fetch(node.url, range(head + 1)), "restart x2")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-ch-faults-")
    try:
        with ClickHouse() as ch, Anvil() as node:
            wl = build_chain(node, rng)
            head = node.block_number()
            data = rowcheck.fetch(node.url, range(head + 1))
            print(f"chain: {head + 1} blocks, "
                  f"{sum(len(b['transactions']) for b, _ in data)} txs")
            down_at_start(bp, ch, node, data, head, tmp.name)
            kill9(bp, ch, node, data, head, rng)
            crash_points(bp, ch, node, wl, rng, tmp.name)
            restart(bp, ch, node, wl, rng, tmp.name)
        print("OK")
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, rowcheck.Mismatch, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
