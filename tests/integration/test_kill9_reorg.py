"""kill -9 while `run` follows the head through reorgs, into four outputs at once.

anvil mines only when the test says so. `blockpipe run --log-level debug` writes to SQLite,
etl-csv, JSON lines and PostgreSQL at once (one batch goes to each output in turn); the
debug lines "output 'X': writing N events (R reverts)" / "output 'X': written" tell which
output was being written when a kill landed. Round after round the test starts blockpipe,
then either
- replaces the last 1-4 blocks (anvil_reorg, same height, new txs; sometimes a block more),
  waits until a chosen output starts writing a batch that holds REVERTs, and SIGKILLs it a
  random fraction of that output's usual write time later; or
- mines a few blocks and SIGKILLs a chosen output's write the same way.
Only kills that landed while a write was in progress count (the last debug line about some
output is "writing" and its checkpoint is not the one that write would have left); the test
fails unless at least MIN_REVERT_KILLS of them hit a write
with REVERTs, each output kind at least once so, and MIN_KILLS in all. After every kill each
output must still be readable (SQLite opens and passes quick_check, checkpoint.json parses
and no file is shorter than it records, PostgreSQL answers): an unreadable output fails the
test. In the end one more run catches up and stops on SIGINT (exit 0), and every output must
hold exactly the node's chain, each block once: the tables as they are, the files once their
reverts are applied (blocks.jsonl replayed event by event).
"""

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outcheck import (Fail, Outputs, Proc, blockpipe_bin, node_chain, node_head,  # noqa: E402
                      reorg_txs)
from pg import Postgres  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "9177"))
MAX_ROUNDS = 40
MIN_KILLS = 10          # kills that landed while an output was being written
MIN_REVERT_KILLS = 6    # ... while it was writing a batch with REVERTs (each kind >= 1)
CATCH_UP = 60


def caught_up(node, outs, proc, label):
    want = node_head(node)
    outs.wait(want, proc, label, CATCH_UP)
    return want


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-kill9reorg-")
    node, pg, proc = Anvil(), None, None
    try:
        pg = Postgres()
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(12):
            wl.mine_batch(rng.randrange(0, 6))
        outs = Outputs(tmp.name, pg)
        cmd = [bp, "run", "--rpc", node.url, "--start-block", "0", "--poll-interval", "0.05",
               "--batch-size", "4", "--workers", "2", "--stats-interval", "60",
               "--log-level", "debug"] + outs.args()
        print("running (again and again):", " ".join(cmd), flush=True)
        proc = Proc(cmd, os.path.join(tmp.name, "first.log"))
        caught_up(node, outs, proc, "first run")
        proc.stop()

        kinds = outs.kinds
        est = {k: 0.002 for k in kinds}     # seconds one write of that output takes
        kills, revert_kills = [], {k: 0 for k in kinds}
        for r in range(MAX_ROUNDS):
            if (len(kills) >= MIN_KILLS and sum(revert_kills.values()) >= MIN_REVERT_KILLS
                    and all(revert_kills.values())):
                break
            # the kinds still missing a kill during a revert come first
            need = [k for k in kinds if revert_kills[k] == 0] or kinds
            target = need[r % len(need)]
            url = outs.logged_url(target)
            log = os.path.join(tmp.name, f"round{r}.log")
            proc = Proc(cmd, log)
            revert = r % 4 != 3
            if revert:
                caught_up(node, outs, proc, f"round {r}")
                depth = rng.randrange(1, 5)
                node.rpc("anvil_reorg", [depth, reorg_txs(rng, wl, depth)])
                wl.after_reorg()
                if rng.random() < 0.3:
                    wl.mine_batch(rng.randrange(1, 4))
                what = f"output {target} writing a batch with REVERTs"
            else:
                for _ in range(rng.randrange(2, 6)):
                    wl.mine_batch(rng.randrange(1, 6))
                depth = 0
                what = f"output {target} writing"

            def match(line, url=url, revert=revert):
                if f"output '{url}': writing" not in line:
                    return False
                return not revert or "(0 reverts)" not in line
            proc.wait_line(match, 30, what)
            time.sleep(rng.uniform(0, 0.8 * est[target]))
            proc.kill()
            mid = outs.killed(log, est)
            if mid:
                k = mid[0]
                kills.append((r, k, mid[1]))
                if mid[1] > 0:
                    revert_kills[k] += 1
            print(f"round {r}: {'reorg depth %d' % depth if revert else 'new blocks'}, kill "
                  f"aimed at {target}: "
                  + (f"landed while {mid[0]} was writing {mid[1]} reverts up to "
                     f"block {mid[2][0]}" if mid else "landed between writes"), flush=True)

        print(f"kills mid-write: {len(kills)}; during a write with REVERTs per output: "
              f"{revert_kills}", flush=True)
        if len(kills) < MIN_KILLS or sum(revert_kills.values()) < MIN_REVERT_KILLS or \
                not all(revert_kills.values()):
            raise Fail(f"too few kills landed mid-write in {MAX_ROUNDS} rounds ({len(kills)}, "
                       f"with REVERTs {revert_kills}; want {MIN_KILLS}, {MIN_REVERT_KILLS} and "
                       f"every output): the test proved nothing")

        proc = Proc(cmd, os.path.join(tmp.name, "final.log"))
        wl.mine_batch(3)
        head = caught_up(node, outs, proc, "final run")
        proc.stop()
        chain = node_chain(node)
        if (len(chain) - 1, chain[-1]["hash"]) != head:
            raise Fail("the node's head moved during the final check")
        ntx, nlogs = outs.check(chain, "after the kills")
        print(f"OK: {len(kills)} kills mid-write ({sum(revert_kills.values())} during REVERTs); "
              f"every output holds blocks 0..{head[0]} exactly once ({ntx} txs, {nlogs} logs) "
              f"({time.monotonic() - t0:.0f}s)")
    except Fail as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if proc is not None:
            proc.close()
        node.stop()
        if pg is not None:
            pg.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
