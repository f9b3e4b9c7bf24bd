"""Real-time head source against a real anvil (which serves WebSocket on its HTTP port).

(a) Manual mining: `blockpipe run --rpc URL --ws WSURL --poll-interval 1 --stats-interval 1`
    subscribes (the `stats realtime` line says mode=websocket), then the test mines 60 blocks,
    some with transactions, 50-100 ms apart. Once the checkpoint reaches the head, SQLite holds
    blocks 0..head exactly once with the node's hashes, parents, transactions and logs, the
    JSON-lines stream applied every height exactly once and in order, and the last
    `stats realtime` line has mode=websocket, no reconnect, >= 60 heads from the socket and
    head_to_commit_ms count >= 60 with its percentiles in order (the figures themselves are
    measured by bench/realtime_latency.py, never asserted here).
(b) anvil --block-time 1: the same exactness over ~8 blocks made by the node's own clock
    (6 transfers sent at the start go into its next block).
Both end with SIGINT and require exit 0. Every wait is for the event itself, with a deadline
that only guards against a hang.
"""

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from rtcheck import Blockpipe, CheckFailed, check_outputs, fail, node_head, ws_url  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "7"))
BLOCKS = 60
HANG = 120  # seconds: only a guard against a hang, never a measure


def subscribed(bp):
    rt = bp.wait_realtime(lambda r: r.get("mode") == "websocket" and r.get("ws") == "subscribed",
                          HANG, "mode=websocket ws=subscribed")
    print(f"check: subscribed: {rt.get('endpoint')} mode={rt['mode']}", flush=True)


def manual_mining(tmp):
    print("\n== (a) manual mining: 60 blocks 50-100 ms apart while subscribed", flush=True)
    rng = random.Random(SEED)
    node = Anvil()
    bp = None
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()  # automine off: every block below is mined by this test
        bp = Blockpipe(tmp, ["--rpc", node.url, "--ws", ws_url(node.url), "--start-block", "0",
                             "--poll-interval", "1", "--stats-interval", "1"], name="manual")
        subscribed(bp)
        first = node.block_number() + 1
        for i in range(BLOCKS):
            if i % 3 == 0:
                wl.mine_batch(rng.randrange(1, 5))
            else:
                node.mine()
            time.sleep(rng.uniform(0.05, 0.1))
        head = bp.wait_caught_up(node, HANG, "after 60 blocks")
        if head[0] != first + BLOCKS - 1:
            fail(f"node head is {head[0]}, want {first + BLOCKS - 1} after mining {BLOCKS}")
        print(f"check: checkpoint reached the head {head[0]} {head[1][:12]}…", flush=True)
        # a stats line written after the last commit
        rt = bp.wait_realtime(lambda r: r.get("count", 0) >= BLOCKS, HANG,
                              f"head_to_commit_ms count >= {BLOCKS}")
        bp.stop()
        rt = bp.last_realtime()
        print(f"last realtime line: {rt}", flush=True)
        if rt.get("mode") != "websocket":
            fail(f"last realtime line has mode={rt.get('mode')}, want websocket: {rt}")
        if rt.get("reconnects") != 0:
            fail(f"the socket to a healthy anvil reconnected {rt.get('reconnects')} times: {rt}")
        if "head source is HTTP polling" in bp.log():
            fail("blockpipe fell back to HTTP polling with a healthy anvil socket:\n" + bp.tail())
        if rt.get("heads", 0) < BLOCKS:
            fail(f"the socket delivered heads={rt.get('heads')}, want >= {BLOCKS}: {rt}")
        if rt.get("count", 0) < BLOCKS:
            fail(f"head_to_commit_ms count={rt.get('count')}, want >= {BLOCKS}: {rt}")
        if not (0 <= rt["p50"] <= rt["p90"] <= rt["p99"] <= rt["max"]):
            fail(f"head_to_commit_ms percentiles out of order: {rt}")
        print(f"check: mode=websocket reconnects=0 heads={rt['heads']:.0f} head_to_commit_ms "
              f"count={rt['count']:.0f} p50={rt['p50']} p99={rt['p99']}", flush=True)
        check_outputs(node, bp, head, "(a) manual mining")
    finally:
        if bp:
            bp.kill()
        node.stop()


def block_time(tmp):
    print("\n== (b) anvil --block-time 1: ~8 blocks while subscribed", flush=True)
    node = Anvil(["--block-time", "1"])
    bp = None
    try:
        bp = Blockpipe(tmp, ["--rpc", node.url, "--ws", ws_url(node.url), "--start-block", "0",
                             "--poll-interval", "1", "--stats-interval", "1"], name="blocktime")
        subscribed(bp)
        wl = Workload(node, seed=SEED)  # no setup(): the node's clock mines, txs wait for it
        for _ in range(3):
            wl.legacy()
            wl.eip1559()
        start = node.block_number()
        want = start + 8
        cp = bp.wait_checkpoint_at_least(want, HANG, f"8 blocks after {start}")
        rt = bp.wait_realtime(lambda r: r.get("count", 0) >= 6, HANG,
                              "head_to_commit_ms count >= 6")
        bp.stop()
        cp = bp.checkpoint()
        rt = bp.last_realtime()
        print(f"last realtime line: {rt}", flush=True)
        if rt.get("mode") != "websocket" or rt.get("reconnects") != 0:
            fail(f"want mode=websocket and reconnects=0 on the last realtime line: {rt}")
        if not (0 <= rt["p50"] <= rt["p90"] <= rt["p99"] <= rt["max"]):
            fail(f"head_to_commit_ms percentiles out of order: {rt}")
        print(f"check: checkpoint {cp[0]} >= {want}; mode=websocket; count={rt['count']:.0f} "
              f"p50={rt['p50']} p99={rt['p99']}", flush=True)
        check_outputs(node, bp, cp, "(b) --block-time 1")
        if node_head(node)[0] < cp[0]:
            fail("the node's head went below the checkpoint")
    finally:
        if bp:
            bp.kill()
        node.stop()


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bp-rt-") as tmp:
        try:
            manual_mining(tmp)
            block_time(tmp)
        except CheckFailed as e:
            sys.exit(f"FAIL: {e}")
    print(f"OK: every block committed once, in order, over the socket "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
