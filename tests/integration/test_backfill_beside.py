"""A second process backfills a range of a chain into the PostgreSQL a follower of the same
chain writes (issue 13 part 2; docs/ARCHITECTURE.md "Chains over several hosts").

A simnode chain (a block every 0.2 s, head at 300 at start) is followed by `blockpipe run
--start-block 200` into PostgreSQL. While it runs:
- `blockpipe backfill --from 0 --to 250` under the follower's checkpoint name with
  `--lock-wait 0` must refuse (exit 1), naming the chain, the holder and the way out: a
  checkpoint name of its own;
- the same backfill with `--checkpoint-name backfill` runs beside the follower (blocks
  200..250 overlap what the follower wrote: its batches meet stored rows and go through the
  staging path) and exits 0.
Then the follower is stopped at the node's head: the chain's blocks are exactly 0..checkpoint,
each the node's, its transactions the node's (none twice, none missing); the follower's
checkpoint is the node's block and the backfill's is block 250.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, hx, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_shards import Proc, check_chain, head  # noqa: E402


def checkpoints(pg):
    try:
        return {o: int(n) for o, n in pg.sql("SELECT output, number FROM checkpoints")}
    except RuntimeError:
        return {}


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-beside-")
    node = follower = None
    with Postgres() as pg:
        try:
            node = Simnode(bp, ["--chain-id", "4000", "--seed", "11", "--block-time", "0.2",
                                "--start-head", "300", "--txs-per-block", "1-4"])
            common = ["--rpc", node.urls[0], "--output", pg.url(), "--chain", "x"]
            follower = Proc(bp, tmp.name, "follower",
                            common + ["--start-block", "200", "--poll-interval", "0.2"])
            wait_for(lambda: follower.alive() and checkpoints(pg).get("postgres", 0) >= 250,
                     120, "the follower past block 250")
            back = common + ["--from", "0", "--to", "250"]
            p = subprocess.run([bp, "backfill", *back, "--lock-wait", "0"], capture_output=True,
                               text=True, timeout=120)
            if p.returncode != 1 or "chain 'x' is already written to output" not in p.stderr \
                    or f"pid {follower.pid}" not in p.stderr \
                    or "checkpoint name of its own" not in p.stderr:
                raise Fail(f"backfill under the follower's checkpoint name exited "
                           f"{p.returncode}, want 1 naming the holder and the way out:\n"
                           f"{p.stderr[-2000:]}")
            print("refused:", [ln for ln in p.stderr.splitlines() if "already written" in ln][0])
            p = subprocess.run([bp, "backfill", *back, "--checkpoint-name", "backfill"],
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise Fail(f"backfill beside the follower exited {p.returncode}:\n"
                           f"{p.stderr[-3000:]}")
            staged = "through the staging tables" in p.stderr
            print(f"backfill 0..250 beside the follower: exit 0 (met the follower's rows and "
                  f"staged: {staged})")
            target = head(node)
            wait_for(lambda: follower.alive() and checkpoints(pg)["postgres"] >= target, 120,
                     f"the follower at {target}")
            follower.stop()
            cps = checkpoints(pg)
            if cps.get("backfill") != 250:
                raise Fail(f"checkpoints {cps}: want the backfill's at 250")
            n = check_chain(pg, node, "x", cps["postgres"])
            rows = pg.sql(f"SELECT count(*), count(DISTINCT {hx('hash')}) FROM blocks")
            print(f"blocks 0..{cps['postgres']} once each ({rows[0]}), {n} transactions: ok")
        finally:
            if follower:
                follower.kill()
            if node:
                node.kill()
            tmp.cleanup()
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"FAIL: {e}")
        sys.exit(1)
