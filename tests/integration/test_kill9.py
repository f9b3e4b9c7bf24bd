"""kill -9 during a backfill into four outputs at once loses nothing and duplicates nothing.

anvil gets ~500 blocks with a few hundred transactions (most with logs; 100 more whenever a
backfill gets to the end before the kills are done). `blockpipe backfill --from 0 --to N
--batch-size 8 --log-level debug` writes SQLite, etl-csv, JSON lines and
PostgreSQL at once; the debug lines "output 'X': writing ..." / "output 'X': written" tell
which output (if any) was being written when the process died. Round after round the test
starts it and SIGKILLs it
- a random fraction of that output's usual write time after a chosen output starts its
  1st-3rd write (the outputs take turns, the ones with fewest kills first), or
- every 4th round at a random moment (0-150 ms after the first write started).
Only kills that landed while a write was in progress count (the last debug line about that
output is "writing" and its checkpoint is not the one that write would have left): the test
fails unless every output was killed mid-write at least MIN_PER_OUTPUT times and MIN_KILLS
times in all within MAX_ROUNDS rounds. After every kill each output must be readable (SQLite opens and
passes quick_check, checkpoint.json parses and no file is shorter than it records,
PostgreSQL answers): an unreadable output is a failure, not proof of a kill. Then one run
without kill must exit 0, and every output must hold blocks 0..N exactly once with the
node's hashes, parents, transactions (in order) and log counts; the files must end exactly
where their checkpoint.json says (nothing of a killed batch left).
"""

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outcheck import Fail, Outputs, Proc, blockpipe_bin, node_chain  # noqa: E402
from pg import Postgres  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "99"))
MIN_BLOCKS = 500
MAX_ROUNDS = 60
MIN_PER_OUTPUT = 3
MIN_KILLS = 14


def grow_chain(node, wl, rng, blocks):
    """Mines `blocks` more blocks, some with transactions (most with logs)."""
    top = node.block_number() + blocks
    while node.block_number() < top:
        wl.mine_batch(rng.randrange(0, 10))
        node.mine(rng.randrange(1, 6))  # empty blocks in between


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-kill9-")
    node, pg, proc = Anvil(), None, None
    try:
        pg = Postgres()
        wl = Workload(node, seed=SEED)
        wl.setup()
        grow_chain(node, wl, rng, MIN_BLOCKS)
        print(f"node {node.url}: head={node.block_number()} (built in "
              f"{time.monotonic() - t0:.1f}s)", flush=True)
        outs = Outputs(tmp.name, pg)

        def command():
            return [bp, "backfill", "--rpc", node.url, "--from", "0", "--to",
                    str(node.block_number()), "--workers", "4", "--batch-size", "8",
                    "--log-level", "debug"] + outs.args()
        print("running (again and again):", " ".join(command()), flush=True)

        kinds = outs.kinds
        est = {k: 0.002 for k in kinds}
        per = {k: 0 for k in kinds}
        kills, done = 0, False
        for r in range(MAX_ROUNDS):
            if kills >= MIN_KILLS and min(per.values()) >= MIN_PER_OUTPUT:
                break
            if done:  # the backfill got to the end before enough kills: a longer chain
                grow_chain(node, wl, rng, 100)
                done = False
            log = os.path.join(tmp.name, f"round{r}.log")
            proc = Proc(command(), log)
            if r % 4 == 3:
                aim = "a random moment (0-150 ms after the first write started)"
                try:
                    proc.wait_line(lambda ln: "': writing" in ln, 120, "a write")
                    time.sleep(rng.uniform(0, 0.15))
                except Fail:
                    if proc.proc.poll() != 0:
                        raise
            else:
                target = min(kinds, key=lambda k: (per[k], rng.random()))
                url = outs.logged_url(target)
                k = rng.randrange(1, 4)
                aim = f"write {k} of {target}"
                try:
                    for _ in range(k):
                        proc.wait_line(lambda ln, u=url: f"output '{u}': writing" in ln, 120,
                                       f"output {target} writing")
                    time.sleep(rng.uniform(0, 0.8 * est[target]))
                except Fail:
                    if proc.proc.poll() != 0:
                        raise
            if proc.proc.poll() is not None:  # the backfill got to the end first
                rc = proc.proc.wait()
                proc.close()
                if rc != 0:
                    raise Fail(f"backfill round {r} exited {rc} by itself:\n{proc.tail()}")
                done = True
                print(f"round {r}: the backfill finished first", flush=True)
                continue
            proc.kill()
            mid = outs.killed(log, est)
            cps = outs.checkpoints()
            if mid:
                kills += 1
                per[mid[0]] += 1
            print(f"round {r}: kill aimed at {aim}: "
                  + (f"landed while {mid[0]} was writing up to block {mid[2][0]}"
                     if mid else "landed between writes")
                  + f"; checkpoints {dict((k, v and v[0]) for k, v in cps.items())}",
                  flush=True)

        print(f"kills mid-write: {kills} {per}", flush=True)
        if kills < MIN_KILLS or min(per.values()) < MIN_PER_OUTPUT:
            raise Fail(f"too few kills landed mid-write in {MAX_ROUNDS} rounds ({kills}, per "
                       f"output {per}; want {MIN_KILLS} and {MIN_PER_OUTPUT} each): the test "
                       f"proved nothing")
        proc = Proc(command(), os.path.join(tmp.name, "final.log"))
        try:
            rc = proc.proc.wait(600)
        except Exception:
            raise Fail(f"the final backfill did not finish:\n{proc.tail()}")
        proc.close()
        if rc != 0:
            raise Fail(f"the final backfill exited {rc}:\n{proc.tail()}")
        chain = node_chain(node)
        head = len(chain) - 1
        ntx, nlogs = outs.check(chain, "after the kills")
        print(f"OK: {kills} kills mid-write {per}; every output holds blocks 0..{head} exactly "
              f"once ({ntx} txs, {nlogs} logs) ({time.monotonic() - t0:.0f}s)")
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
