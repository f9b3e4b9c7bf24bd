"""`blockpipe run --chain-type arch --ws` into SQLite against `blockpipe simnode --chain-type arch`:
the node's six WebSocket topics in the pipeline (docs/ARCH.md "WebSocket event stream").

The node grows a block every 0.2 s from height 60 (1-8 transactions each). The test makes its
rollback / re-apply episodes on demand (simnode's control methods on ep2, docs/ARCH.md: the
even transactions of the newest block below the head rolled back, then re-applied), in part 1
every 4 s from a thread as the --rollback-every timer would, and stops making them before it
compares with the node: the node cannot change between the read and the compare, however
loaded the machine. Endpoint ep1 drops every WebSocket connection every 1.3 s (ws_drop_every)
and sends a malformed event after every 40th (ws_bad_every); ep2 has no faults.

Part 1 (ep1: socket cuts, malformed events, kill -9): a run follows the node with --ws, is
SIGKILLed twice at random moments after it committed past the last checkpoint and committed
events of its own, restarted, and stopped by SIGINT after catching up, once a last rollback
episode (the episodes stopped) is in its tables. The thread's episodes meet cuts and kills by
chance; besides, the test rolls back a block while no run is up (after kill 1; run 2 waits
until it holds it rolled back, and no other episode comes meanwhile) and re-applies it while
no run is up (after kill 2): only run 3's re-read of the rollback state can see that. Then:
- the tables hold exactly the node's chain (test_arch_run.check_tables: every height once,
  the hash chain, the canonical hashes, every block's transactions and account updates):
  the blocks announced while the socket was down came by polling;
- the socket was cut and reconnected (the log), and every malformed event was logged as an
  error naming the topic and the field (and nothing else was an error);
- every stored transaction's rolled_back is the node's get_processed_transaction
  rollback_status then: the episodes whose events came while the socket was down or to a
  killed run are caught by the re-read of the unfinalized blocks' rollback state at every
  (re)subscription (logged once per start and reconnect), down to a block holding a stored
  rollback not seen re-applied: its re-apply (~20 blocks later) touches a block final by then;
- arch_events holds events of every run (receive times in each run's span), one row per key,
  and none of a block above the checkpoint (an event waits for its block's batch).
Part 2 (ep2: rollbacks exactly): a fresh run from near the head; once it is subscribed and 10
blocks on, a re-apply and then a rollback on demand; stopped (SIGINT) once the rollback is in
its tables. For every stored transaction of the blocks made after the run started,
rolled_back must equal the node's get_processed_transaction rollback_status then (and the
stopped run saw at least one rollback and one re-apply event; some rows are rolled back).
Part 3 (finality): a run with --confirmations 3 commits up to the node's best finalized block
(get_best_finalized_block_hash, 6 below simnode's head), not 3 below the head: its checkpoint
never passes the finalized height read after it (20+ samples), and reaches it within 2 blocks
(sampled until it does, a loaded machine's lag waited for).
Stdlib only; needs BLOCKPIPE.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1415"))
HANG = 90  # guards against a hang only
EPISODE_S = 4.0  # between part 1's episodes (other tests' timers: --rollback-every)
CTL = 1  # the endpoint without faults: control calls go there
FAULTS = "ep1:ws_drop_every=1.3,ws_bad_every=40"


def fail(msg):
    raise AssertionError(msg)


def start(bp, url, db, log, first):
    ws = "ws://" + url.split("://", 1)[1]
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", url, "--ws", ws,
           "--output", f"sqlite:{db}", "--start-block", str(first), "--poll-interval", "0.5",
           "--ws-reconnect-interval", "0.2", "--log-level", "info"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stop(proc, label):
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=HANG)
    if rc != 0:
        fail(f"{label}: exited {rc} on SIGINT")


class Episodes(threading.Thread):
    """Part 1's episodes: every EPISODE_S a rollback (simnode_rollback: the timer's choice of
    block), then its re-apply, ..., as --rollback-every makes them, until stop(). The test
    makes its own ones between (holding `lock`: none of the thread's meanwhile)."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node, self.lock, self.done = node, threading.Lock(), threading.Event()
        self.rolled, self.made, self.error = False, 0, None

    def step(self):
        """The next episode: a rollback or the re-apply of the set rolled back; its answer."""
        r = self.node.control("simnode_reapply" if self.rolled else "simnode_rollback", ep=CTL)
        self.rolled, self.made = not self.rolled, self.made + 1
        return r

    def rollback(self):
        """A rollback now (the re-apply of the set rolled back first): its answer."""
        if self.rolled:
            self.step()
        return self.step()

    def run(self):
        try:
            while not self.done.wait(EPISODE_S):
                with self.lock:
                    if not self.done.is_set():
                        self.step()
        except Exception as e:  # (AssertionError too) reported by stop()
            self.error = e

    def stop(self):
        """No episode of the thread's after this returns; fails if a control call failed."""
        self.done.set()
        self.join(timeout=HANG)
        if self.is_alive() or self.error:
            fail(f"the episode thread: {self.error or 'hangs in a control call'}")


def rolled_back_stored(db, txids):
    """How many of txids are stored rolled back."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM arch_transactions WHERE rolled_back = 1 AND txid "
                           f"IN ({','.join('?' * len(txids))})", txids).fetchone()[0]
    finally:
        con.close()


def wait_rollback_stored(db, proc, r, label):
    """Until every transaction of rollback r (simnode_rollback's answer) is stored rolled
    back: its event reached the tables."""
    deadline = time.monotonic() + HANG
    while rolled_back_stored(db, r["txids"]) != len(r["txids"]):
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}")
        if time.monotonic() > deadline:
            fail(f"{label}: the rollback of block {r['block_height']} (episode "
                 f"{r['episode']}) not stored within {HANG} s")
        time.sleep(0.05)


def wait_subscribed(logpath, proc, label):
    deadline = time.monotonic() + HANG
    while "subscribed (subscribe (Arch topics))" not in open(logpath).read():
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}")
        if time.monotonic() > deadline:
            fail(f"{label}: not subscribed to the node's topics within {HANG} s")
        time.sleep(0.05)


def own_events(db, since):
    """arch_events rows received since `since` (unix seconds) that are committed."""
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM arch_events WHERE received_at >= ?",
                           (since,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        con.close()


def wait_own_events(db, proc, since, label):
    """Until the run started at `since` committed an event it received: a kill after this
    leaves events of this run in arch_events, whatever the machine's load."""
    deadline = time.monotonic() + HANG
    while not own_events(db, since):
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}")
        if time.monotonic() > deadline:
            fail(f"{label}: no event it received committed to arch_events within {HANG} s")
        time.sleep(0.05)


def part1(bp, node, tmp, rng):
    url = node.urls[0]
    db = os.path.join(tmp, "ws.db")
    logpath = os.path.join(tmp, "ws.log")
    spans = []
    episodes = Episodes(node)
    episodes.start()
    held = False
    try:
        with open(logpath, "w") as log:
            last = -1
            for k in range(3):
                t0 = time.time()
                proc = start(bp, url, db, log, 0)
                try:
                    arch.wait_progress(db, proc, last, f"run {k + 1}")
                    wait_own_events(db, proc, t0, f"run {k + 1}")
                    if k == 1:
                        wait_rollback_stored(db, proc, down, "run 2")
                    if k < 2:
                        time.sleep(rng.uniform(0.2, 1.5))  # through a cut or two
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        last = arch.checkpoint(db)[0]
                        print(f"kill {k + 1}: SIGKILL at checkpoint {last}", flush=True)
                        if k == 0:  # while no run is up: a rollback,
                            episodes.lock.acquire()
                            held = True
                            down = episodes.rollback()
                        else:  # and its re-apply: only a re-read shows it to run 3
                            episodes.step()
                            episodes.lock.release()
                            held = False
                            print(f"block {down['block_height']}: rolled back after kill 1, "
                                  f"stored so by run 2, re-applied after kill 2", flush=True)
                    else:
                        time.sleep(2.0)
                        arch.wait_caught_up(url, db, proc, "last run")
                        episodes.stop()  # the node changes no more but for its new blocks,
                        r = episodes.rollback()  # and stops just after this rollback
                        episode = node.stats()["episodes"]
                        wait_rollback_stored(db, proc, r, "last run")
                        t = time.monotonic()
                        stop(proc, "last run")
                        back, n = compare_rollbacks(node, url, db, -1, episode, t)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                spans.append((t0, time.time()))
    finally:
        if held:
            episodes.lock.release()
        episodes.stop()
    text = open(logpath).read()
    errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
    bad = [ln for ln in errors if " event: " in ln and "websocket ws://" in ln]
    if len(bad) != len(errors):
        fail("errors other than the malformed events:\n" + "\n".join(
            ln for ln in errors if ln not in bad)[:3000])
    if not bad or not all("zz" in ln or "missing" in ln or "expected" in ln for ln in bad):
        fail(f"malformed events not reported with the field: {bad[:3]}")
    cuts = text.count("head source is HTTP polling")
    if cuts < 1 or "subscribed (subscribe (Arch topics))" not in text:
        fail(f"the socket was never cut and resubscribed ({cuts} switches to polling)")
    arch.check_tables(url, db)
    if text.count("rollback state of blocks") < 3:
        fail("the rollback state was not read again after each start and reconnect")
    con = sqlite3.connect(db)
    cp = con.execute("SELECT number FROM checkpoints WHERE chain = 'arch'").fetchone()[0]
    over = con.execute("SELECT count(*) FROM arch_events WHERE block_height > ?", (cp,)).fetchone()[0]
    if over:
        fail(f"{over} arch_events rows of blocks above the checkpoint {cp}")
    dup = con.execute("SELECT count(*) - count(DISTINCT chain || key) FROM arch_events").fetchone()[0]
    times = [r[0] for r in con.execute("SELECT received_at FROM arch_events")]
    topics = dict(con.execute("SELECT topic, count(*) FROM arch_events GROUP BY topic").fetchall())
    con.close()
    if dup:
        fail(f"{dup} duplicate arch_events keys")
    for i, (t0, t1) in enumerate(spans):
        if not any(t0 <= t <= t1 for t in times):
            fail(f"run {i + 1}: none of its events is in arch_events")
    for t in ("block", "transaction", "account_update"):
        if not topics.get(t):
            fail(f"no {t} event stored: {topics}")
    print(f"part 1: {cuts} socket cuts, {len(bad)} malformed events reported, events {topics}, "
          f"none above checkpoint {cp}; all {n} transactions' rolled_back as the node's "
          f"rollback_status ({back} rolled back) after 2 kills and the cuts")


def wait_for(what, cond, proc=None, hang=HANG):
    """Until cond() is true (a deadline that only guards against a hang); fails naming what
    did not happen, or that blockpipe (proc) exited meanwhile."""
    deadline = time.monotonic() + hang
    while not cond():
        if proc is not None and proc.poll() is not None:
            fail(f"{what}: blockpipe exited {proc.returncode}")
        if time.monotonic() > deadline:
            fail(f"{what}: not within {hang} s")
        time.sleep(0.05)


def episode_pair(node, committed, stored, proc, label, ep=0):
    """A rollback of the run's committed block `committed` (simnode_rollback by height), waited
    for until stored(txids, True) says every one of its transactions is stored rolled back;
    its re-apply, waited for until stored(txids, False); then a second rollback of the same
    block, waited for as the first. Returns the second rollback's answer: the node changes no
    more (but for new blocks) until the test asks."""
    r = node.control("simnode_rollback", {"height": committed}, ep=ep)
    wait_for(f"{label}: the rollback of block {committed} stored",
             lambda: stored(r["txids"], True), proc)
    node.control("simnode_reapply", ep=ep)
    wait_for(f"{label}: the re-apply of block {committed} stored",
             lambda: stored(r["txids"], False), proc)
    r = node.control("simnode_rollback", {"height": committed}, ep=ep)
    wait_for(f"{label}: the second rollback of block {committed} stored",
             lambda: stored(r["txids"], True), proc)
    return r


def not_final(node, cp, ep=0):
    """A height to roll back that the node does not hold final (a re-read after a loss
    reaches it): the run's checkpoint cp, or 3 below the node's head if cp lags further."""
    return max(cp, node.stats()["head"] - 3)


def fork_committed(node, committed, ep=0):
    """simnode_fork deep enough that its fork point is below committed() (the run's
    checkpoint height, read before each try: the head moves on meanwhile), so a block the run
    committed is replaced and it must walk back; the fork's answer."""
    for _ in range(20):
        cp = committed()
        f = node.control("simnode_fork", node.stats()["head"] - cp + 2, ep=ep)
        if f["fork_point"] < cp:
            return f
    fail(f"simnode_fork never replaced a committed block: {f}")


def wait_episode(node, odd):
    """Until the node's --rollback-every timer has just made an episode (odd: a rollback);
    returns its number. (Other tests' helper: this one makes its episodes on demand.)"""
    deadline = time.monotonic() + HANG
    e0 = node.stats()["episodes"]
    while time.monotonic() < deadline:
        e = node.stats()["episodes"]
        if e != e0 and e % 2 == (1 if odd else 0):
            return e
        time.sleep(0.05)
    fail("no rollback episode from the node")


def compare_rollbacks(node, url, db, above, episode, since):
    """Every stored transaction of the blocks above `above`: rolled_back must be the node's
    rollback_status now (the node still at `episode`). Returns (rolled back, compared)."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT txid, rolled_back FROM arch_transactions WHERE block_height > ? "
                       "ORDER BY block_height, tx_index", (above,)).fetchall()
    con.close()
    node_view = []
    for i in range(0, len(rows), 200):
        node_view += arch.call(url, [("get_processed_transaction", [r[0]]) for r in rows[i:i + 200]])
    if node.stats()["episodes"] != episode:
        fail(f"the node made another episode before it was compared ({time.monotonic() - since:.1f} s "
             f"after the one compared): raise EPISODE_S")
    wrong = [(r[0], r[1], v["rollback_status"]) for r, v in zip(rows, node_view)
             if r[1] != (v["rollback_status"]["type"] == "rolledback")]
    if wrong:
        fail(f"{len(wrong)} of {len(rows)} transactions' rolled_back differ from the node: "
             f"{wrong[:3]}")
    return sum(r[1] for r in rows), len(rows)


def rollback_events(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM arch_events "
                           "WHERE topic = 'rolledback_transactions'").fetchone()[0]
    finally:
        con.close()


def part2(bp, node, tmp):
    url = node.urls[1]
    db = os.path.join(tmp, "rb.db")
    head = arch.node_head(url)
    logpath = os.path.join(tmp, "rb.log")
    with open(logpath, "w") as log:
        proc = start(bp, url, db, log, head)
        try:
            wait_subscribed(logpath, proc, "part 2")
            arch.wait_progress(db, proc, head + 10, "part 2")  # the rollback's block above head + 5
            if node.stats()["episodes"] % 2 == 0:  # (part 1 left a set rolled back)
                fail("part 2: nothing rolled back to re-apply")
            node.control("simnode_reapply", ep=CTL)  # a re-apply,
            n0 = rollback_events(db)
            r = node.control("simnode_rollback", ep=CTL)  # then a rollback: its event is stored
            e, t = node.stats()["episodes"], time.monotonic()
            wait_rollback_stored(db, proc, r, "part 2")
            if rollback_events(db) == n0:
                fail("part 2: the rollback stored without its rolledback_transactions event")
            stop(proc, "part 2")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    back, n = compare_rollbacks(node, url, db, head + 5, e, t)
    con = sqlite3.connect(db)
    topics = dict(con.execute("SELECT topic, count(*) FROM arch_events GROUP BY topic").fetchall())
    con.close()
    if not topics.get("rolledback_transactions") or not topics.get("reapplied_transactions"):
        fail(f"no rollback and re-apply events stored: {topics}")
    if not back:
        fail("no stored transaction is rolled back after a rollback episode: nothing compared")
    print(f"part 2: {n} transactions match the node's rollback_status ({back} rolled "
          f"back), events {topics}")


def finalized(url):
    h = arch.call(url, [("get_best_finalized_block_hash", [])])[0]
    return arch.call(url, [("get_block", [h])])[0]["block_height"]


def part3(bp, node, tmp):
    url = node.urls[1]
    db = os.path.join(tmp, "fin.db")
    head = arch.node_head(url)
    with open(os.path.join(tmp, "fin.log"), "w") as log:
        ws = "ws://" + url.split("://", 1)[1]
        proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--ws", ws,
                                 "--output", f"sqlite:{db}", "--start-block", str(head - 20),
                                 "--confirmations", "3", "--log-level", "info"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            arch.wait_progress(db, proc, head - 15, "part 3")
            seen = []
            deadline = time.monotonic() + HANG  # (20 samples, more until one within 2 blocks)
            while len(seen) < 20 or (min(seen) > 2 and time.monotonic() < deadline):
                cp = arch.checkpoint(db)[0]
                fin = finalized(url)  # after the checkpoint: it only grows
                seen.append(fin - cp)
                if cp > fin:
                    fail(f"checkpoint {cp} passed the node's finalized block {fin}")
                time.sleep(0.1)
            stop(proc, "part 3")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if min(seen) > 2:
        fail(f"the checkpoint stayed {min(seen)}+ blocks below the finalized block for {HANG} s: "
             f"{seen[:40]}")
    print(f"part 3: --confirmations 3 follows the finalized block (finalized - checkpoint: "
          f"{min(seen)}..{max(seen)})")


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-ws-")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "60",
                        "--txs-per-block", "1-8", "--seed", str(SEED), "--faults", FAULTS],
                   endpoints=2)
    try:
        part1(bp, node, tmp.name, rng)
        part2(bp, node, tmp.name)
        part3(bp, node, tmp.name)
        print("OK")
    except AssertionError:
        print_tails(*(os.path.join(tmp.name, n) for n in ("ws.log", "rb.log", "fin.log")),
                    chars=3000)
        raise
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
