"""The Kafka output (librdkafka's mock cluster) through reorgs and kill -9.

 1. `blockpipe run --confirmations 0 --output kafka://...` follows anvil's random workload
    while anvil_reorg replaces the top 1..4 blocks (sometimes followed by new blocks). After
    each step, once the output's checkpoint record is the node's head, a read-committed
    consumer of the blocks, transactions, logs and metrics topics (from the beginning; on the mock
    cluster the records of transactions that wrote a checkpoint record: it has no transaction
    markers, see tests/tools/kafka.py) that applies each `apply` and undoes each `revert`
    holds exactly the canonical chain, never handed a duplicate, and one metrics row per
    canonical block equal to metricscheck.py's recomputation from the node's blocks and
    receipts; each topic keeps the chain's records in one partition (keyed by chain). SIGINT
    exits 0.
 2. kill -9: `BP_CRASHPOINT=kafka.before_checkpoint blockpipe backfill` dies with its first
    batch's records delivered in an open transaction and no checkpoint record (exit 86); a
    backfill to a quarter of the range, then one that dies with two batches in its open
    transaction (a group, bp_batch.more; crash point kafka.mid_group): blocks 0..quarter once
    each; then rounds of backfills (the node held to 10 requests/s) SIGKILLed a random 0-20 ms
    after their checkpoint passed a random block, and a run to the end: the consumer holds
    blocks 0..head once each, and their metrics rows as recomputed.
 3. A backfill whose first Produce request is refused: the group of batches it was in is
    written again whole in a new transaction; blocks 0..head once each.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from kafka import KafkaMock, checkpoint_of  # noqa: E402
from pgcheck import Fail, blockpipe_bin, node_chain, tail, wait_for  # noqa: E402
from streamcheck import check_metrics, kafka_view, kill_rounds, reorg_txs  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "6161"))
CHAIN = "31337"
ALL = ("blocks", "transactions", "logs", "metrics")
URL_ENTITIES = "entities=" + ",".join(ALL)
HANG = 120
RPS = 10


def caught_up(k, node, prefix, proc, err_path, label):
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        return checkpoint_of(k, CHAIN, prefix=prefix) == want
    wait_for(ok, 60, f"{label}: checkpoint == {want}", 0.3)


def reorgs(bp, k, node, wl, rng, tmp):
    prefix = "r_"
    err_path = os.path.join(tmp, "run.log")
    with open(err_path, "w") as err:
        cmd = [bp, "run", "--rpc", node.url, "--output",
               k.url(f"{URL_ENTITIES}&prefix={prefix}"), "--start-block", "0",
               "--confirmations", "0", "--poll-interval", "0.2"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            for _ in range(4):
                wl.mine_batch(rng.randrange(0, 6))
            caught_up(k, node, prefix, proc, err_path, "initial sync")
            view = kafka_view(k, CHAIN, prefix, ALL)
            view.check(node_chain(node), "initial sync", ALL)
            check_metrics(view, node, CHAIN, "initial sync")
            reverts = 0
            for depth, extra in ((1, 0), (2, 1), (3, 2), (4, 0)):
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                for _ in range(extra):
                    wl.mine_batch(rng.randrange(1, 5))
                label = f"reorg depth {depth} (+{extra} blocks)"
                caught_up(k, node, prefix, proc, err_path, label)
                view = kafka_view(k, CHAIN, prefix, ALL)
                view.check(node_chain(node), label, ALL)
                check_metrics(view, node, CHAIN, label)
                reverts = view.reverts
                print(f"  {label} ok: {view.entries} records")
            if reverts == 0:
                raise Fail("1: no revert record was ever read: the reorgs did not reach Kafka")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(HANG)
            if rc != 0:
                raise Fail(f"1: exit {rc} after SIGINT:\n{tail(err_path)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("1 ok: reorgs of depth 1..4 at confirmations 0; the read-committed consumer holds "
          "exactly the canonical chain")


def kills(bp, k, node, wl, rng, tmp):
    prefix = "k_"
    for _ in range(60):
        wl.mine_batch(rng.randrange(0, 5))
    head = node.block_number()
    base = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head), "--output",
            k.url(f"{URL_ENTITIES}&prefix={prefix}")]
    log_path = os.path.join(tmp, "kill.log")
    env = dict(os.environ, BP_CRASHPOINT="kafka.before_checkpoint")
    with open(log_path, "w") as log:
        rc = subprocess.run(base + ["--batch-size", "4"], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, timeout=HANG).returncode
    if rc != 86:
        raise Fail(f"2: exit {rc}, want 86 (the crash point):\n{tail(log_path)}")
    if checkpoint_of(k, CHAIN, prefix=prefix) is not None:
        raise Fail("2: a checkpoint record after a crash before it was written")
    leaked = k.consume(prefix + "blocks", prefix + "metrics")
    view = kafka_view(k, CHAIN, prefix, ALL)
    if view.entries:
        raise Fail(f"2: the consumer got {view.entries} records of the crashed transaction")
    print(f"  crash point: {len(leaked)} records of the open transaction on the mock cluster, "
          "none read committed")
    mid_group(base, k, node, prefix, head, log_path)
    # The node held to a few requests a second: a backfill's groups of batches (one Kafka
    # transaction for up to 500 ms of them) made the range faster than the polls of the
    # checkpoint, and every kill landed after its end.
    slow = [json.dumps({"url": node.url, "rps": RPS}) if a == node.url else a for a in base]
    mid = kill_rounds(slow + ["--batch-size", "2"],
                      lambda: checkpoint_of(k, CHAIN, prefix=prefix), head, 6, rng, log_path)
    with open(log_path, "w") as log:
        rc = subprocess.run(base + ["--batch-size", "2"], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, timeout=HANG).returncode
    if rc != 0:
        raise Fail(f"2: the last run exited {rc}:\n{tail(log_path)}")
    if mid == 0:
        raise Fail("2: no SIGKILL landed before the end of the range: nothing was tested")
    view = kafka_view(k, CHAIN, prefix, ALL)
    view.check(node_chain(node), "after the kills", ALL)
    rows, _ = check_metrics(view, node, CHAIN, "after the kills")
    if view.reverts:
        raise Fail(f"2: {view.reverts} revert records on a chain without reorgs")
    print(f"2 ok: {mid} of 6 SIGKILLs before the end; blocks 0..{head} once each, {rows} metrics "
          "rows as recomputed")


def mid_group(base, k, node, prefix, head, log_path):
    """A backfill writes several batches in one transaction (bp_batch.more): killed with two
    batches accepted into the open one (crash point kafka.mid_group), it leaves what was
    committed before it (a backfill to a quarter of the range) exactly, and nothing of the
    open one."""
    half = head // 4  # the rest is the kill rounds'
    first = [a if a != str(head) else str(half) for a in base] + ["--batch-size", "2"]
    with open(log_path, "w") as log:
        rc = subprocess.run(first, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            timeout=HANG).returncode
    cp = checkpoint_of(k, CHAIN, prefix=prefix)
    if rc != 0 or not cp or cp[0] != half:
        raise Fail(f"2: backfill to {half}: exit {rc}, checkpoint {cp}:\n{tail(log_path)}")
    env = dict(os.environ, BP_CRASHPOINT="kafka.mid_group")
    with open(log_path, "w") as log:
        rc = subprocess.run(base + ["--batch-size", "2"], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, timeout=HANG).returncode
    if rc != 86:
        raise Fail(f"2: exit {rc}, want 86 (the crash point mid-group):\n{tail(log_path)}")
    if checkpoint_of(k, CHAIN, prefix=prefix) != cp:
        raise Fail(f"2: checkpoint {checkpoint_of(k, CHAIN, prefix=prefix)} after a crash "
                   f"mid-group, want {cp}")
    view = kafka_view(k, CHAIN, prefix, ALL)
    view.check(node_chain(node, half), "after a crash mid-group", ALL)
    print(f"  crash mid-group: blocks 0..{half} once each, nothing of the open transaction")


def written_again(bp, k, node, tmp):
    """The first Produce request of a backfill refused (TOPIC_AUTHORIZATION_FAILED): the
    group's first batch is not delivered, its transaction is aborted when the group ends, and
    the retry writes the whole group again in a new one."""
    prefix = "r_"
    head = node.block_number()
    log_path = os.path.join(tmp, "again.log")
    k.fail(0, 29, 1)
    with open(log_path, "w") as log:
        rc = subprocess.run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                             "--batch-size", "2", "--output",
                             k.url(f"{URL_ENTITIES}&prefix={prefix}")],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            timeout=HANG).returncode
    with open(log_path) as f:
        again = [line for line in f if "written again in transaction" in line]
    if rc != 0 or not again:
        raise Fail(f"3: exit {rc}, {len(again)} group(s) written again, want 0 and 1:\n"
                   f"{tail(log_path)}")
    view = kafka_view(k, CHAIN, prefix, ALL)
    view.check(node_chain(node), "after a failed transaction", ALL)
    print(f"3 ok: {again[0].split(': ', 1)[1].strip()}; blocks 0..{head} once each")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    with KafkaMock() as k, Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-kafka-") as tmp:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(6):
            wl.mine_batch(rng.randrange(0, 6))
        reorgs(bp, k, node, wl, rng, tmp)
        kills(bp, k, node, wl, rng, tmp)
        written_again(bp, k, node, tmp)
        print("OK: Kafka through reorgs, kill -9 and a failed transaction: exactly the canonical "
              "chain, once")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
