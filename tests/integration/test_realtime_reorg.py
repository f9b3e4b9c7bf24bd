"""Reorgs while the head comes from the WebSocket: REVERT then APPLY, and the outputs end as
the node's canonical chain.

anvil mines only when told. `blockpipe run --ws WSURL --poll-interval 0.2` follows it and is
subscribed (mode=websocket). Then, for depth 1, 2, 3, twice each: anvil_reorg(depth, txs)
replaces the last `depth` blocks (same height, new hashes, 1-3 txs in the new blocks), the
first time with no block mined after it, the second time with one more block mined. After
each reorg the SQLite checkpoint must reach the node's head (number and hash); then
- SQLite holds exactly the canonical blocks 0..head (hashes, parents, tx hashes in order,
  log counts), with no transaction or log row of an orphaned block;
- the JSON-lines stream, replayed event by event, has a REVERT of each orphaned block
  (highest first, each removing the tip) before the APPLY of its replacement, and ends as
  the node's chain.
blockpipe must mention "reorg" on stderr, still be on the websocket at the end, and exit 0
on SIGINT.
"""

import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, log_calldata  # noqa: E402
from rtcheck import (Blockpipe, CheckFailed, check_outputs, fail, replay_jsonl,  # noqa: E402
                     ws_url)

SEED = int(os.environ.get("BP_SEED", "5150"))
HANG = 120  # seconds: only a guard against a hang, never a measure


def reorg_txs(rng, wl, depth):
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    for _ in range(rng.randrange(0, 3)):
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(5))}, rng.randrange(depth)])
    return pairs


def check_revert_then_apply(bp, orphans, label):
    """Every orphaned (number, hash) was REVERTed, highest first, and after the last REVERT
    the replacement at the lowest orphaned height was APPLIED."""
    _, _, events = replay_jsonl(bp.jsonl, label + " (jsonl)")
    pos = {}
    for i, (kind, n, h) in enumerate(events):
        if kind == "revert":
            pos[(n, h)] = i
    missing = [o for o in orphans if o not in pos]
    if missing:
        fail(f"{label}: no REVERT line in blocks.jsonl for orphaned blocks "
             f"{[(n, h[:12]) for n, h in missing]}")
    idx = [pos[o] for o in sorted(orphans, reverse=True)]  # highest first
    if idx != sorted(idx):
        fail(f"{label}: REVERTs not highest first: {[(events[i][1]) for i in sorted(idx)]}")
    low = min(n for n, _ in orphans)
    after = [e for e in events[idx[-1] + 1:] if e[0] == "block" and e[1] == low]
    if not after:
        fail(f"{label}: no APPLY of height {low} after its REVERT")
    print(f"check: {label}: REVERT {', '.join(str(n) for n, _ in sorted(orphans, reverse=True))} "
          f"(highest first), then APPLY {low} {after[0][2][:12]}…", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    node = Anvil()
    bp = None
    tmp = tempfile.TemporaryDirectory(prefix="bp-rtreorg-")
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(6):
            wl.mine_batch(rng.randrange(0, 4))
        bp = Blockpipe(tmp.name, ["--rpc", node.url, "--ws", ws_url(node.url), "--start-block",
                                  "0", "--poll-interval", "0.2", "--stats-interval", "1"])
        bp.wait_realtime(lambda r: r.get("mode") == "websocket", HANG, "mode=websocket")
        print("check: subscribed (mode=websocket)", flush=True)
        for _ in range(4):  # a few blocks announced over the socket
            wl.mine_batch(rng.randrange(0, 4))
            time.sleep(0.1)
        head = bp.wait_caught_up(node, HANG, "initial sync")
        check_outputs(node, bp, head, "initial sync", reorgs=True)

        for depth in (1, 2, 3):
            for extra in (0, 1):
                label = f"reorg depth {depth} (+{extra} block)"
                before = node.block_number()
                orphans = [(n, node.block(n, False)["hash"])
                           for n in range(before - depth + 1, before + 1)]
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                new = [node.block(n, False)["hash"] for n, _ in orphans]
                if any(o[1] == h for o, h in zip(orphans, new)) or node.block_number() != before:
                    fail(f"anvil_reorg({depth}) did not replace the last {depth} blocks")
                for _ in range(extra):
                    wl.mine_batch(rng.randrange(1, 4))
                t = time.monotonic()
                head = bp.wait_caught_up(node, HANG, label)
                print(f"{label}: checkpoint is the node's head {head[0]} {head[1][:12]}… after "
                      f"{time.monotonic() - t:.1f}s", flush=True)
                check_outputs(node, bp, head, label, reorgs=True)
                check_revert_then_apply(bp, orphans, label)

        # the stats lines say "reorgs=": only the reorg's own line counts
        if not re.search(r"reorg: \d+ block\(s\) orphaned", bp.log()):
            fail("blockpipe's stderr does not report a reorg after 6 reorgs:\n" + bp.tail())
        bp.wait_realtime(lambda r: r.get("reorgs", 0) >= 0, HANG, "a stats line")
        bp.stop()
        rt = bp.last_realtime()
        if rt.get("mode") != "websocket":
            fail(f"last realtime line says mode={rt.get('mode')}, want websocket: {rt}")
        stats = [ln for ln in bp.log().splitlines() if "stats head=" in ln]
        reorgs = int(stats[-1].split("reorgs=")[1].split()[0]) if stats else 0
        if reorgs < 6:
            fail(f"the last stats line counts reorgs={reorgs}, want >= 6: {stats[-1:]}")
        print(f"check: stderr mentions reorg; stats reorgs={reorgs}; mode=websocket", flush=True)
        check_outputs(node, bp, head, "after SIGINT", reorgs=True)
    except CheckFailed as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if bp:
            bp.kill()
        node.stop()
        tmp.cleanup()
    print(f"OK: 6 reorgs (depth 1..3, +0/+1 block) while subscribed: REVERT then APPLY, "
          f"outputs equal the canonical chain ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
