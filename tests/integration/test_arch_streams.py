"""`blockpipe run --chain-type arch --ws` into the stream and file outputs - Redis (a real
redis-server, tests/tools/redis.py), Kafka (librdkafka's mock cluster, tests/tools/kafka.py),
JSON lines - and SQLite at once, against `blockpipe simnode --chain-type arch` with forks and
rollback / re-apply episodes (docs/ARCH.md "Stream and file outputs"). SQLite is the reference:
what a consumer folds out of each output must be what the SQL tables hold.

The node grows a block every 0.2 s from height 60 (1-6 transactions each) and forks and rolls
back only when the test asks (simnode's control methods: simnode_fork below the run's
checkpoint, simnode_rollback of a committed block - its even transactions - and
simnode_reapply). Runs from block 0 (a backfill, then a follow) with all four outputs; KILLS of
them are SIGKILLed at a random moment (seeded) after they committed past the last checkpoint,
run 1 just after a rollback, run 2 just after a fork. A last run catches up and must hold run
1's rollback (a start's re-read catches it if the kill lost its event); then the test
re-applies it, forks the node below the checkpoint and rolls back, re-applies and rolls back a
block the run committed, each waited for in SQLite (the fork also in the log), and stops the
run on SIGINT. Then for Redis (streams from the first entry), Kafka (the records of
committed transactions) and JSONL (the arch_*.jsonl lines):
- arch_blocks: every (height, hash) is applied, reverted, applied ... in turn (never applied
  twice without a revert between: exactly once), and the blocks applied and not reverted are
  exactly SQLite's arch_blocks (heights 0..checkpoint: no gap);
- arch_transactions / arch_account_updates: the rows of those blocks (a reverted block's go
  with it) are SQLite's rows, and each transaction's rolled_back - its row's, then the last
  rollback state entry (revert / apply, or rollback / reapply line) naming it - is SQLite's
  rolled_back; rollback state changes were published (both kinds) and blocks were reverted;
- arch_events: the events the last run received are in every output, as in SQLite's
  arch_events (which keeps a key's first row), each as often in Redis, Kafka and JSONL;
- the output's checkpoint is SQLite's; Redis's latest keys name SQLite's top block, a live
  (not rolled back) transaction and account update of a canonical block.
Stdlib only; needs BLOCKPIPE, redis-server and tests/tools/kafka_mock.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from kafka import KafkaMock, committed  # noqa: E402
from redis import Redis, entries  # noqa: E402
from simnode import Simnode  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1416"))
KILLS = 2
HANG = 90
ENTITIES = "arch_blocks,arch_transactions,arch_account_updates,arch_events"
STREAMS = ENTITIES.split(",")


def fail(msg):
    raise AssertionError(msg)


def start(bp, url, outs, log):
    ws_url = "ws://" + url.split("://", 1)[1]
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", url, "--ws", ws_url, "--start-block", "0",
           "--poll-interval", "0.2", "--ws-reconnect-interval", "0.2", "--reorg-window", "64",
           "--log-level", "info"]
    for o in outs:
        cmd += ["--output", o]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stored(db, txids, back):
    """Every one of txids stored in SQLite with rolled_back = back."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM arch_transactions WHERE rolled_back = ? AND "
                           f"txid IN ({','.join('?' * len(txids))})",
                           (int(back), *txids)).fetchone()[0] == len(txids)
    finally:
        con.close()


def block_hash(db, height):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT hash FROM arch_blocks WHERE height = ?", (height,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def sql_state(db):
    con = sqlite3.connect(db)
    cp = con.execute("SELECT number, hash FROM checkpoints WHERE chain = 'arch'").fetchone()
    blocks = con.execute("SELECT height, hash FROM arch_blocks ORDER BY height").fetchall()
    txs = con.execute("SELECT block_height, tx_index, txid, rolled_back FROM arch_transactions "
                      "ORDER BY 1, 2").fetchall()
    acc = con.execute("SELECT block_height, tx_index, account, txid FROM arch_account_updates "
                      "ORDER BY 1, 2, 3").fetchall()
    events = con.execute("SELECT key, received_at FROM arch_events").fetchall()
    con.close()
    return {"cp": cp, "blocks": blocks, "txs": [(h, i, t, bool(r)) for h, i, t, r in txs],
            "acc": acc, "events": events}


class Fold:
    """What a consumer of one output holds: entries fed in order, per entity."""

    def __init__(self, label):
        self.label = label
        self.live = {}  # (height, hash) -> times applied - times reverted
        self.rows = {"arch_transactions": [], "arch_account_updates": []}  # (block hash, row)
        self.state = {}  # txid -> rolled_back: its last row's, or a change after it
        self.changes = {True: 0, False: 0}
        self.block_reverts = 0
        self.events = []

    def block(self, kind, number, hash_, data):
        k = (number, hash_)
        n = self.live.get(k, 0)
        if kind == "apply":
            if n != 0:
                fail(f"{self.label}: block {k} applied again without a revert between")
            if data["height"] != number or data["hash"] != hash_:
                fail(f"{self.label}: arch_blocks entry of {k} holds {data}")
            self.live[k] = 1
        else:
            if n != 1:
                fail(f"{self.label}: revert of block {k}, which is not applied")
            self.live[k] = 0
            self.block_reverts += 1

    def row(self, entity, kind, hash_, data):
        if entity == "arch_events":
            self.events.append((data["key"], round(data["received_at"], 6)))
        elif "cause" in data:  # a rollback state change
            back = kind in ("revert", "rollback")
            if data["rolled_back"] != back:
                fail(f"{self.label}: {kind} entry with rolled_back {data['rolled_back']}")
            self.changes[back] += entity == "arch_transactions"
            self.state[data["txid"]] = back
        elif kind in ("apply", "arch_transaction", "arch_account_update"):
            self.rows[entity].append((hash_, data))
            if entity == "arch_transactions":  # in order: a row after a change is newer
                self.state[data["txid"]] = data["rolled_back"]

    def result(self):
        canon = sorted(k for k, n in self.live.items() if n == 1)
        hashes = {h for _, h in canon}
        txs = [(d["block_height"], d["tx_index"], d["txid"], self.state[d["txid"]])
               for h, d in self.rows["arch_transactions"] if h in hashes]
        acc = [(d["block_height"], d["tx_index"], d["account"], d["txid"])
               for h, d in self.rows["arch_account_updates"] if h in hashes]
        return canon, sorted(txs), sorted(acc)


def fold_redis(r):
    f = Fold("redis")
    for entity in STREAMS:
        for _, kv in entries(r.call("XRANGE", f"blockpipe:{entity}:arch", "-", "+")):
            if kv["chain"] != "arch":
                fail(f"redis: {entity} entry of chain {kv['chain']}")
            data = json.loads(kv["data"])
            if entity == "arch_blocks":
                f.block(kv["type"], int(kv["number"]), kv["hash"], data)
            elif data is not None:
                f.row(entity, kv["type"], kv["hash"], data)
    return f


def fold_kafka(k):
    f = Fold("kafka")
    recs = committed(k, k.consume(*STREAMS))
    for entity in STREAMS:
        mine = sorted((r for r in recs if r["topic"] == entity), key=lambda r: r["offset"])
        if len({r["partition"] for r in mine}) > 1:
            fail(f"kafka: {entity}: the chain's records are in several partitions")
        for r in mine:
            v = r["value"]
            if r["key"] != "arch" or v["chain"] != "arch":
                fail(f"kafka: {entity} record of key {r['key']}, chain {v['chain']}")
            if entity == "arch_blocks":
                f.block(v["type"], v["number"], v["hash"], v["data"])
            elif v["data"] is not None:
                f.row(entity, v["type"], v["hash"], v["data"])
    return f


def fold_jsonl(d):
    f = Fold("jsonl")
    blocks = {}  # height -> hash of the block the lines of that height belong to now
    for line in open(os.path.join(d, "arch_blocks.jsonl")):
        o = json.loads(line)
        if o["type"] == "revert":
            f.block("revert", o["number"], o["hash"], None)
        else:
            f.block("apply", o["height"], o["hash"], o)
    for entity in ("arch_transactions", "arch_account_updates", "arch_events"):
        for line in open(os.path.join(d, entity + ".jsonl")):
            o = json.loads(line)
            kind = o.pop("type")
            # a row line names its block by height and (transactions) hash; the account
            # updates' block is the transaction's
            h = o.get("block_hash") or blocks.get((o.get("block_height"), o.get("txid")))
            if kind == "arch_transaction":
                blocks[(o["block_height"], o["txid"])] = o["block_hash"]
            f.row(entity, kind, h, o)
    return f


def check(f, ref, since):
    canon, txs, acc = f.result()
    want_blocks = sorted(ref["blocks"])
    if canon != want_blocks:
        extra = sorted(set(canon) - set(want_blocks))[:3]
        missing = sorted(set(want_blocks) - set(canon))[:3]
        fail(f"{f.label}: canonical blocks differ from SQLite's ({len(canon)} / "
             f"{len(want_blocks)}): extra {extra}, missing {missing}")
    if [h for h, _ in canon] != list(range(ref["cp"][0] + 1)):
        fail(f"{f.label}: heights are not 0..{ref['cp'][0]}")
    if txs != ref["txs"]:
        diff = next((i for i, (a, b) in enumerate(zip(txs, ref["txs"])) if a != b), None)
        fail(f"{f.label}: arch_transactions differ from SQLite's ({len(txs)} / "
             f"{len(ref['txs'])} rows; first at {diff}: "
             f"{txs[diff:diff + 1] if diff is not None else ''} / "
             f"{ref['txs'][diff:diff + 1] if diff is not None else ''})")
    if acc != ref["acc"]:
        fail(f"{f.label}: arch_account_updates differ from SQLite's ({len(acc)} / "
             f"{len(ref['acc'])} rows)")
    # SQLite keeps the first row of a key (its receive time): a key seen again in the last
    # run is there with an older one
    mine = {k for k, t in f.events if t >= since}
    theirs = {k for k, t in ref["events"] if t >= since}
    if not theirs <= mine or not mine <= {k for k, _ in ref["events"]}:
        fail(f"{f.label}: the last run's events differ from SQLite's arch_events "
             f"({len(mine)} keys / {len(theirs)} first received then)")
    if not f.changes[True] or not f.changes[False] or not f.block_reverts:
        fail(f"{f.label}: no rollback ({f.changes[True]}), re-apply ({f.changes[False]}) or "
             f"block revert ({f.block_reverts}) entry: the revert paths were not exercised")
    back = sum(t[3] for t in txs)
    print(f"{f.label}: {len(canon)} blocks, {len(txs)} transactions ({back} rolled back), "
          f"{len(acc)} account updates as SQLite; {f.block_reverts} block reverts, "
          f"{f.changes[True]} rollbacks / {f.changes[False]} re-applies, {len(f.events)} events "
          f"({len(mine)} of the last run as SQLite's)")
    # every output got the last run's batches: the same events, each as often (a key may come
    # twice at once: simnode's account_update of an account a transaction lists twice)
    return sorted(e for e in f.events if e[1] >= since)


def check_latest(r, ref):
    top = max(ref["blocks"])
    live = {t[2] for t in ref["txs"] if not t[3]}
    hashes = dict(ref["blocks"])
    for entity in ("arch_blocks", "arch_transactions", "arch_account_updates"):
        text = r.call("GET", f"blockpipe:latest:{entity}:arch")
        if text is None:
            fail(f"redis: no latest key of {entity}")
        m = json.loads(text)
        d = m["data"]
        if entity == "arch_blocks" and (m["number"], m["hash"]) != top:
            fail(f"redis: latest arch_blocks is {m['number']} {m['hash']}, SQLite's top {top}")
        if entity != "arch_blocks" and (d["txid"] not in live
                                        or hashes.get(d["block_height"]) != m["hash"]):
            fail(f"redis: latest {entity} names transaction {d['txid']} of block "
                 f"{d['block_height']} {m['hash']}: rolled back or not canonical")
    print("redis: latest keys name the top block and a live transaction / account update")


def checkpoints(r, k, jdir):
    h = r.call("HGETALL", "blockpipe:checkpoint:redis:arch")
    d = dict(zip(h[0::2], h[1::2]))
    rc = (int(d["number"]), d["hash"]) if "number" in d else None
    kc = None
    for rec in k.consume("blockpipe_checkpoints"):
        if rec["key"] == "kafka:arch":
            kc = (rec["value"]["number"], rec["value"]["hash"])
    jc = json.load(open(os.path.join(jdir, "checkpoint.json")))["chains"].get("arch")
    return rc, kc, (jc["number"], jc["hash"]) if jc else None


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-streams-")
    db = os.path.join(tmp.name, "ref.db")
    jdir = os.path.join(tmp.name, "jsonl")
    logpath = os.path.join(tmp.name, "run.log")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "60",
                        "--txs-per-block", "1-6", "--seed", str(SEED)], endpoints=1)
    url = node.urls[0]
    proc = None
    try:
        with Redis() as r, KafkaMock() as k, open(logpath, "w") as log:
            outs = [f"sqlite:{db}", r.url(query=f"maxlen=0&entities={ENTITIES}"),
                    k.url(f"entities={ENTITIES}"), f"jsonl:{jdir}"]
            last = -1
            r1 = None
            for n in range(KILLS):
                proc = start(bp, url, outs, log)
                # (run 2's fork is above run 1's rollback)
                arch.wait_progress(db, proc, max(last, r1["block_height"] if r1 else 0) + 3,
                                   f"run {n + 1}")
                # run 1: a rollback of a committed block, run 2: a fork below the checkpoint,
                # each just before a kill at a random moment (its outcome may be lost)
                if n == 0:
                    ws.wait_subscribed(logpath, proc, "run 1")
                    arch.wait_caught_up(url, db, proc, "run 1")
                    r1 = node.control("simnode_rollback",
                                      {"height": ws.not_final(node, arch.checkpoint(db)[0])})
                else:
                    ws.fork_committed(node, lambda: arch.checkpoint(db)[0])
                time.sleep(rng.uniform(0.0, 1.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                last = arch.checkpoint(db)[0]
                print(f"kill {n + 1}: SIGKILL at SQLite checkpoint {last}", flush=True)
            since = time.time()
            log.flush()
            mark = os.path.getsize(logpath)
            proc = start(bp, url, outs, log)
            ws.wait_subscribed(logpath, proc, "last run")
            arch.wait_caught_up(url, db, proc, "last run")
            # run 1's rollback, caught by a re-read at a start if its event was lost
            ws.wait_for("last run: the rollback made in run 1 stored",
                        lambda: stored(db, r1["txids"], True), proc)
            node.control("simnode_reapply")  # its re-apply,
            ws.wait_for("last run: the re-apply stored", lambda: stored(db, r1["txids"], False),
                        proc)
            # a fork below the checkpoint (a REVERT of committed blocks),
            f = ws.fork_committed(node, lambda: arch.checkpoint(db)[0])
            arch.wait_reorg(logpath, mark, proc)
            ws.wait_for(f"last run: the fork at {f['fork_point']} stored", lambda: block_hash(
                db, f["fork_point"] + 1) == f["hashes"][0], proc)
            # and a rollback of a block this run committed, then its re-apply and a rollback
            # again: the events of both kinds reach the outputs in this run
            ws.episode_pair(node, arch.checkpoint(db)[0], lambda t, b: stored(db, t, b), proc,
                            "last run")
            proc.send_signal(signal.SIGINT)
            if proc.wait(timeout=HANG) != 0:
                fail(f"last run exited {proc.returncode} on SIGINT")
            text = open(logpath).read()
            errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
            if errors:
                fail("blockpipe logged errors:\n" + "\n".join(errors)[:3000])
            ref = sql_state(db)
            got = checkpoints(r, k, jdir)
            if any(c != tuple(ref["cp"]) for c in got):
                fail(f"checkpoints redis / kafka / jsonl {got}, SQLite's {ref['cp']}")
            last = [check(f, ref, since) for f in (fold_redis(r), fold_kafka(k),
                                                   fold_jsonl(jdir))]
            if last[0] != last[1] or last[0] != last[2]:
                fail(f"the last run's events differ between redis, kafka and jsonl "
                     f"({[len(x) for x in last]}): one published twice or lost?")
            check_latest(r, ref)
        print("OK")
    except AssertionError:
        print_tails(logpath, chars=5000)
        raise
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
