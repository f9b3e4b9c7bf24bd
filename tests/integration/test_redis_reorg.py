"""The Redis output following anvil's random workload through reorgs, at confirmations 0.

`blockpipe run --confirmations 0 --output redis://...?entities=blocks,transactions,logs,metrics
--prices FILE` follows anvil (legacy / EIP-2930 / EIP-1559 txs, deployments, calls emitting LOG0..4,
reverting calls) into a real redis-server while anvil_reorg replaces the top 1..5 blocks
(sometimes followed by new blocks). After each step, once the output's checkpoint is the
node's head:
 - a consumer reading the four streams with XREAD from the start, applying each `apply` and
   undoing each `revert`, holds exactly the canonical chain (every block with its parent,
   every block's tx hashes in order, its log count) and was never handed a duplicate, a
   revert of a block it did not hold or a block on a parent it did not hold; it holds
   exactly one metrics row per canonical block, equal to metricscheck.py's recomputation
   from the node's blocks and receipts (fees_paid_usd from the prices file: the blocks
   before its one point have none, the later ones are priced);
 - a subscriber of the four pub/sub channels (subscribed before blockpipe started) holds
   the same;
 - {prefix}latest:blocks:{chain} is the head block, latest:transactions the newest
   canonical transaction, latest:logs the newest canonical log and latest:metrics the head
   block's metrics row - never an orphan - and each has a TTL.
SIGINT exits 0.
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
from pgcheck import Fail, blockpipe_bin, node_chain, tail, wait_for  # noqa: E402
from redis import Redis  # noqa: E402
from streamcheck import (RedisConsumer, Subscriber, check_metrics, latest_tx,  # noqa: E402
                         redis_checkpoint, reorg_txs)

SEED = int(os.environ.get("BP_SEED", "5151"))
EXTRA_BLOCKS = [0, 1, 2, 0, 1]
CHAIN = "31337"
P = "blockpipe:"
ENTITIES = ("blocks", "transactions", "logs", "metrics")
PRICE = 1234.5


def caught_up(r, node, proc, err_path, label):
    head = node.block_number()
    want = (head, node.block(head, False)["hash"])

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        return redis_checkpoint(r, CHAIN) == want
    try:
        wait_for(ok, 60, f"{label}: checkpoint == {want}", 0.2)
    except Fail as e:
        raise Fail(f"{e}; checkpoint {redis_checkpoint(r, CHAIN)}\n{tail(err_path)}") from None


def check_latest(r, chain, label):
    def get(entity):
        key = f"{P}latest:{entity}:{CHAIN}"
        v = r.call("GET", key)
        if v is None:
            return None, key
        ttl = r.call("TTL", key)
        if not 0 < ttl <= 3600:
            raise Fail(f"{label}: {key} has TTL {ttl}, want 1..3600")
        return json.loads(v), key

    canon = {b["hash"] for b in chain}
    m, key = get("blocks")
    head = chain[-1]
    if not m or (m["type"], m["number"], m["hash"]) != ("apply", len(chain) - 1, head["hash"]):
        raise Fail(f"{label}: {key} is {m and (m['type'], m['number'], m['hash'])}, want the head "
                   f"{len(chain) - 1} {head['hash']}")
    m, key = get("transactions")
    want = latest_tx(chain)
    got = m and (m["hash"], m["data"]["hash"])
    if got != want:
        raise Fail(f"{label}: {key} is (block, tx) {got}, want the newest canonical tx {want}")
    m, key = get("logs")
    with_logs = [(n, b) for n, b in enumerate(chain) if b["logs"]]
    want = with_logs and (with_logs[-1][1]["hash"], with_logs[-1][1]["logs"] - 1)
    got = m and (m["hash"], m["data"]["log_index"])
    if (got or None) != (want or None) or (m and m["hash"] not in canon):
        raise Fail(f"{label}: {key} is (block, log index) {got}, want the newest canonical log "
                   f"{want}")
    m, key = get("metrics")
    got = m and (m["type"], m["number"], m["hash"], m["data"]["block_hash"])
    want = ("apply", len(chain) - 1, head["hash"], head["hash"])
    if got != want:
        raise Fail(f"{label}: {key} is {got}, want the head's metrics row {want}")


def check_all(r, node, consumer, sub, prices, label):
    chain = node_chain(node)
    consumer.poll()
    consumer.view.check(chain, label, ENTITIES)
    rows, priced = check_metrics(consumer.view, node, CHAIN, label, prices, 10 ** 8)
    canon = {b["hash"] for b in chain}
    wait_for(lambda: (sub.view.blocks.keys() == set(range(len(chain)))
                      and set(sub.view.metrics) == canon) or sub.error, 30,
             f"{label}: pub/sub messages up to the head")
    sub.check(chain, label, ENTITIES)
    check_metrics(sub.view, node, CHAIN, label, prices, 10 ** 8)
    check_latest(r, chain, label)
    if priced in (0, rows):
        raise Fail(f"{label}: {priced} of {rows} metrics rows priced: want the blocks before "
                   f"the price point unpriced and the later ones priced")
    return sum(len(b["txs"]) for b in chain), sum(b["logs"] for b in chain)


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-redis-reorg-")
    err_path = os.path.join(tmp.name, "stderr.txt")
    proc = sub = None
    with Redis() as r, Anvil() as node, open(err_path, "w") as err:
        try:
            wl = Workload(node, seed=SEED)
            wl.setup()
            for _ in range(3):
                wl.mine_batch(rng.randrange(0, 7))
            # one price point, valid for ever after: the blocks before it stay unpriced
            point = int(node.block("latest", False)["timestamp"], 16) + 100
            node.rpc("evm_setNextBlockTimestamp", [point])
            prices = [(point, PRICE)]
            prices_path = os.path.join(tmp.name, "prices.csv")
            with open(prices_path, "w") as f:
                f.write(f"timestamp,symbol,usd\n{point},ETH,{PRICE}\n")
            for _ in range(3):
                wl.mine_batch(rng.randrange(0, 7))
            sub = Subscriber(r, CHAIN, entities=ENTITIES)
            consumer = RedisConsumer(r, CHAIN, entities=ENTITIES)
            url = r.url(query="entities=blocks,transactions,logs,metrics&maxlen=0")
            cmd = [bp, "run", "--rpc", node.url, "--output", url, "--start-block", "0",
                   "--confirmations", "0", "--poll-interval", "0.2", "--prices", prices_path,
                   "--price-max-age", str(10 ** 8)]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            for _ in range(6):
                wl.mine_batch(rng.randrange(0, 7))
            caught_up(r, node, proc, err_path, "initial sync")
            ntx, nlog = check_all(r, node, consumer, sub, prices, "initial sync")
            print(f"initial sync ok: txs={ntx} logs={nlog}")
            for depth in range(1, 6):
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                for _ in range(EXTRA_BLOCKS[depth - 1]):
                    wl.mine_batch(rng.randrange(1, 6))
                label = f"reorg depth {depth} (+{EXTRA_BLOCKS[depth - 1]} blocks)"
                caught_up(r, node, proc, err_path, label)
                ntx, nlog = check_all(r, node, consumer, sub, prices, label)
                print(f"{label} ok: txs={ntx} logs={nlog}, {consumer.view.entries} stream "
                      f"entries, {sub.count} pub/sub messages")
            if consumer.view.reverts == 0:
                raise Fail("no revert entry was ever read: the reorgs did not reach the output")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(15)
            if rc != 0:
                raise Fail(f"exit {rc} after SIGINT, want 0:\n{tail(err_path)}")
            print("OK: the stream consumer and the subscriber hold exactly the canonical chain "
                  "and one recomputed metrics row per canonical block after reorgs of depth "
                  "1..5; the latest keys follow the head; clean stop")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if sub:
                sub.close()
            tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError) as e:
        sys.exit(f"FAIL: {e}")
