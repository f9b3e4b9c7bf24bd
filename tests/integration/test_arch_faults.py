"""`blockpipe run|backfill --chain-type arch` against a simulated Arch node that breaks events in
place, caps or refuses JSON-RPC batches, and fails the finalized-hash call now and then
(docs/ARCH.md "Faults"). One node (block every 0.2 s from height 150, 1-8 transactions each,
a rollback / re-apply episode every EPISODE_S s), five endpoints:
  ep1 ws_corrupt_every=1,ws_corrupt_topic=rolledback_transactions: every rollback event goes
      out broken (its first txid starts "zz"), re-applies come whole;
  ep2 max_batch=1 (no batches), ep3 max_batch=4;
  ep4 error_rate=0.5,error_method=get_best_finalized_block_hash;
  ep5 no faults (the test's own questions).
Part 1 (malformed rollbacks, nothing lost): a run with --ws on ep1 from near the head, stopped
(SIGINT) just after a rollback episode. Every malformed event was logged as an error naming
transaction_hashes[0]; none is in arch_events (their re-applies are); the socket was never cut
(ep1's connections stayed 1, no "polling" switch); and every stored transaction's rolled_back
is the node's get_processed_transaction rollback_status: the rolled-back ones came from the
re-read of the rollback state each dropped event makes (logged "a malformed event was
dropped"). With the event just counted and dropped, they stay rolled_back = 0.
Part 2 (batch caps): for ep2 and ep3, a backfill of 0..head, then a run resuming from its
checkpoint that follows the head (it catches up with a later head), stopped by SIGINT; the
tables hold exactly the node's chain (test_arch_run.check_tables) and every column the node's
values (archcheck.check_values); the log says the cap was learnt.
Part 3 (finality): a run on ep4 with --confirmations 1 (below simnode's finality of 6): its
checkpoint never passes the node's finalized block read after it, although half the
get_best_finalized_block_hash calls fail, and still follows it (within 2 blocks).
Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from simnode import Simnode  # noqa: E402
import archcheck  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as aws  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1416"))
HANG = 90
EPISODE_S = 3.0
FAULTS = ("ep1:ws_corrupt_every=1,ws_corrupt_topic=rolledback_transactions;"
          "ep2:max_batch=1;ep3:max_batch=4;"
          "ep4:error_rate=0.5,error_method=get_best_finalized_block_hash")


def fail(msg):
    raise AssertionError(msg)


def stop(proc, label):
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=HANG)
    if rc != 0:
        fail(f"{label}: exited {rc} on SIGINT")


def part1(bp, node, clean, tmp):
    url = node.urls[0]
    db = os.path.join(tmp, "corrupt.db")
    logpath = os.path.join(tmp, "corrupt.log")
    head = arch.node_head(clean)
    with open(logpath, "w") as log:
        proc = aws.start(bp, url, db, log, head)
        try:
            arch.wait_progress(db, proc, head, "part 1")
            aws.wait_episode(node, True)  # a rollback while it follows,
            aws.wait_episode(node, True)  # and another: compared just after it
            e = node.stats()["episodes"]
            t = time.monotonic()
            time.sleep(1.0)
            stop(proc, "part 1")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ws = node.stats()["endpoints"][0]["ws"]
    back, n = aws.compare_rollbacks(node, clean, db, head + 5, e, t)
    text = open(logpath).read()
    errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
    bad = [ln for ln in errors if "rolledback_transactions event" in ln
           and "transaction_hashes[0]" in ln and "the rollback state is read again" in ln]
    if not bad or len(bad) != len(errors):
        fail(f"malformed rollback events not reported as such ({len(bad)} of {len(errors)} "
             f"errors): {errors[:3]}")
    rereads = text.count("a malformed event was dropped: rollback state of blocks")
    if not rereads:
        fail("no re-read of the rollback state after a malformed event")
    if ws["connections"] != 1 or ws["drops"] or "head source is HTTP polling" in text:
        fail(f"the socket was cut or reconnected: {ws}")
    if not ws["corrupted"]:
        fail(f"simnode broke no event: {ws}")
    if not back:
        fail("no stored transaction is rolled back after rollback episodes: nothing compared")
    con = sqlite3.connect(db)
    topics = dict(con.execute("SELECT topic, count(*) FROM arch_events GROUP BY topic").fetchall())
    con.close()
    if topics.get("rolledback_transactions") or not topics.get("reapplied_transactions"):
        fail(f"arch_events: broken rollbacks stored, or no re-apply: {topics}")
    print(f"part 1: {ws['corrupted']} rollback events broken, {len(bad)} reported, {rereads} "
          f"re-reads, 1 connection; all {n} transactions' rolled_back as the node's "
          f"({back} rolled back); events {topics}")


def part2(bp, node, clean, tmp, ep, learnt):
    url = node.urls[ep]
    db = os.path.join(tmp, f"batch{ep}.db")
    logpath = os.path.join(tmp, f"batch{ep}.log")
    head = arch.node_head(clean)
    try:
        r = subprocess.run([bp, "backfill", "--chain-type", "arch", "--rpc", url, "--from", "0",
                            "--to", str(head), "--output", f"sqlite:{db}", "--log-level", "info"],
                           capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired:
        fail(f"ep{ep + 1}: the backfill of 0..{head} did not end within {HANG} s "
             f"(checkpoint {arch.checkpoint(db)})")
    if r.returncode != 0 or arch.checkpoint(db)[0] != head:
        fail(f"ep{ep + 1}: backfill 0..{head} exited {r.returncode}, checkpoint "
             f"{arch.checkpoint(db)}: {r.stderr[-2000:]}")
    if learnt not in r.stderr:
        fail(f"ep{ep + 1}: the backfill did not say '{learnt}': {r.stderr[-2000:]}")
    with open(logpath, "w") as log:
        proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--output",
                                 f"sqlite:{db}", "--start-block", "0", "--poll-interval", "0.1",
                                 "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(1.0)  # the node moves on: the run follows it
            arch.wait_caught_up(clean, db, proc, f"ep{ep + 1} run")
            stop(proc, f"ep{ep + 1} run")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    cp = arch.checkpoint(db)[0]
    if cp <= head:
        fail(f"ep{ep + 1}: the run did not follow past the backfill's {head} (checkpoint {cp})")
    strict = arch.check_tables(clean, db)
    archcheck.check_values(clean, archcheck.sqlite_rows(db, "arch", strict))
    print(f"part 2: ep{ep + 1} ({learnt}): backfill 0..{head}, then followed to {cp}: exact rows")


def part3(bp, node, clean, tmp):
    url = node.urls[3]
    db = os.path.join(tmp, "fin.db")
    head = arch.node_head(clean)
    with open(os.path.join(tmp, "fin.log"), "w") as log:
        proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--output",
                                 f"sqlite:{db}", "--start-block", str(head - 20),
                                 "--poll-interval", "0.1", "--confirmations", "1",
                                 "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
        try:
            arch.wait_progress(db, proc, head - 15, "part 3")
            seen = []
            for _ in range(40):
                cp = arch.checkpoint(db)[0]
                fin = aws.finalized(clean)  # after the checkpoint: it only grows
                seen.append(fin - cp)
                if cp > fin:
                    fail(f"checkpoint {cp} passed the node's finalized block {fin}")
                time.sleep(0.1)
            stop(proc, "part 3")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errs = node.stats()["endpoints"][3]["faults"]["error"]
    if errs < 5:
        fail(f"only {errs} get_best_finalized_block_hash calls failed: nothing tested")
    if min(seen) > 2:
        fail(f"the checkpoint stayed {min(seen)}+ blocks below the finalized block: {seen}")
    print(f"part 3: {errs} finalized-hash calls failed; --confirmations 1 stayed at or below the "
          f"finalized block (finalized - checkpoint: {min(seen)}..{max(seen)})")


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-faults-")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "150",
                        "--txs-per-block", "1-8", "--rollback-every", str(EPISODE_S),
                        "--seed", str(SEED), "--faults", FAULTS], endpoints=5)
    clean = node.urls[4]
    try:
        part1(bp, node, clean, tmp.name)
        part2(bp, node, clean, tmp.name, 1, "refuses batches")
        part2(bp, node, clean, tmp.name, 2, "at most 4 calls per request")
        part3(bp, node, clean, tmp.name)
        print("OK")
    except AssertionError:
        print_tails(tmp.name, chars=3000)
        raise
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
