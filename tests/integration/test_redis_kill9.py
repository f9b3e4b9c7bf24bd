"""kill -9 of blockpipe while it writes into Redis: nothing is lost, nothing is written twice.

anvil mines ~100 blocks of its random workload. Then:
 1. `BP_CRASHPOINT=redis.before_exec blockpipe backfill` dies in its first batch with
    everything but EXEC sent to Redis (exit 86): Redis must hold no entry and no checkpoint.
 2. Rounds of `blockpipe backfill --batch-size 2` SIGKILLed a random 0-20 ms after its
    checkpoint in Redis passed a random block (so mid-way through a later batch, or between
    two), each resuming from the checkpoint the last one left; then a run to the end.
A consumer reading the four streams (blocks, transactions, logs, metrics) from the start must
hold exactly the node's chain and one metrics row per block equal to metricscheck.py's
recomputation from the node's blocks and receipts, and must never have been handed a block,
transaction, log or metrics row twice; the checkpoint is the head.
"""

import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pgcheck import Fail, blockpipe_bin, node_chain  # noqa: E402
from redis import Redis  # noqa: E402
from streamcheck import RedisConsumer, check_metrics, kill_rounds, redis_checkpoint  # noqa: E402

CHAIN = "31337"
SEED = int(os.environ.get("BP_SEED", "909"))
ROUNDS = 8
ENTITIES = ("blocks", "transactions", "logs", "metrics")
HANG = 120


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    with Redis() as r, Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-rk9-") as tmp:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(100):
            wl.mine_batch(rng.randrange(0, 6))
        head = node.block_number()
        url = r.url(query="entities=blocks,transactions,logs,metrics&maxlen=0")
        base = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                "--output", url]
        log_path = os.path.join(tmp, "bp.log")

        # 1. the crash point: everything of the batch queued in the MULTI, no EXEC
        env = dict(os.environ, BP_CRASHPOINT="redis.before_exec")
        with open(log_path, "w") as log:
            rc = subprocess.run(base + ["--batch-size", "4"], env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, timeout=HANG).returncode
        if rc != 86:
            raise Fail(f"1: exit {rc}, want 86 (the crash point redis.before_exec)")
        lens = [r.call("XLEN", f"blockpipe:{e}:{CHAIN}") for e in ENTITIES]
        if lens != [0, 0, 0, 0] or redis_checkpoint(r, CHAIN) is not None:
            raise Fail(f"1: after a crash before EXEC Redis holds {lens} entries, checkpoint "
                       f"{redis_checkpoint(r, CHAIN)}; want nothing")
        print("1 ok: a crash before EXEC left nothing in Redis")

        # 2. SIGKILL rounds (the checkpoint polled on one connection: fast enough to land
        # before the backfill ends)
        with r.connect() as c:
            def checkpoint():
                n = c.call("HGET", f"blockpipe:checkpoint:redis:{CHAIN}", "number")
                return (int(n), None) if n is not None else None
            mid = kill_rounds(base + ["--batch-size", "2"], checkpoint, head, ROUNDS, rng, log_path)
        with open(log_path, "w") as log:
            rc = subprocess.run(base + ["--batch-size", "2"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, timeout=HANG).returncode
        if rc != 0:
            raise Fail(f"2: the last run exited {rc}:\n{open(log_path).read()[-3000:]}")
        if mid == 0:
            raise Fail("2: no SIGKILL landed before the end of the range: nothing was tested")
        want = (head, node.block(head, False)["hash"])
        if redis_checkpoint(r, CHAIN) != want:
            raise Fail(f"2: checkpoint {redis_checkpoint(r, CHAIN)}, want {want}")
        consumer = RedisConsumer(r, CHAIN, entities=ENTITIES)
        consumer.poll()
        consumer.view.check(node_chain(node), "after the kills", ENTITIES)
        rows, _ = check_metrics(consumer.view, node, CHAIN, "after the kills")
        if consumer.view.reverts:
            raise Fail(f"2: {consumer.view.reverts} revert entries on a chain without reorgs")
        print(f"2 ok: {mid} of {ROUNDS} SIGKILLs before the end; the streams hold blocks 0..{head} "
              f"once each, {rows} metrics rows as recomputed ({consumer.view.entries} entries)")
        print("OK: kill -9 mid-batch loses and duplicates nothing in Redis")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError) as e:
        sys.exit(f"FAIL: {e}")
