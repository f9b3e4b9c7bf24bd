"""`run` whose block uses up --max-retries waits on it, says so, and goes on once it heals.

anvil with a few blocks behind a switchable proxy (tests/tools/rpcgate.py) that answers
HTTP 500 to every request naming block K. `blockpipe run --max-retries 1
--failed-retry-interval 5` must:
- log that block K failed 2 times and that the chain waits on it (next try in 5 s), and keep
  running (a backfill would stop here; `run` must not);
- write nothing past the hole: every output stays at K-1 while blocks above K are mined;
- try K again after the pause, and again (a later line says it failed 3 or more times);
- say `waiting_on=K (... HTTP 500 ...)` on its stats lines (the three after such a failure:
  a stats line printed while the block is being fetched again does not say it).
Then the proxy heals: the next try (at most 5 s later) must fetch K, the outputs must reach
the node's head, a later stats line must no longer say waiting_on, and after SIGINT (exit 0)
every output must hold exactly the node's chain, each block once. (The pause is 30 s by
default; the test sets it short only so as not to sleep 30 s.)
"""

import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outcheck import Fail, Outputs, Proc, blockpipe_bin, node_chain  # noqa: E402
from rpcgate import RpcGate  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "515"))
RETRY_WAIT = 5  # --failed-retry-interval: run retries a block that used up --max-retries


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="bp-runretry-")
    node, proc, gate = Anvil(), None, None
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(10):
            wl.mine_batch(rng.randrange(1, 4))
        k = node.block_number() - 3
        gate = RpcGate(node.url)
        gate.fail_block = k
        outs = Outputs(tmp.name, kinds=("sqlite", "jsonl"))
        cmd = [bp, "run", "--rpc", gate.url, "--start-block", "0", "--max-retries", "1",
               "--failed-retry-interval", str(RETRY_WAIT), "--poll-interval", "0.2",
               "--stats-interval", "0.5"] + outs.args()
        print(f"block {k} answers HTTP 500; running: {' '.join(cmd)}", flush=True)
        proc = Proc(cmd, os.path.join(tmp.name, "bp.log"))
        said = f"block {k} failed 2 times, the chain waits on it (next try in {RETRY_WAIT} s"
        proc.wait_line(lambda ln: said in ln, 60, said)
        for _ in range(3):
            wl.mine_batch(rng.randrange(1, 4))
        hole = (k - 1, node.block(k - 1, False)["hash"])
        outs.wait(hole, proc, "writing up to the hole", 30)
        proc.new_lines()  # the stats lines from before
        again = re.compile(rf"block {k} failed ([3-9]|\d\d+) times, the chain waits on it")
        line, _ = proc.wait_line(again.search, RETRY_WAIT + 30, f"block {k} tried again")
        print(f"tried again after the pause: {line[line.index(f'block {k} failed'):][:60]}",
              flush=True)
        for _ in range(3):  # three stats lines later it still waits, and wrote nothing more
            line, _ = proc.wait_line(lambda ln: "stats head=" in ln, 30, "a stats line")
            if f"waiting_on={k} (" not in line or "HTTP 500" not in line:
                raise Fail(f"the stats line does not say it waits on {k} and why: {line}")
        cps = outs.checkpoints()
        if any(cp != hole for cp in cps.values()):
            raise Fail(f"outputs at {cps} while block {k} is missing, want {hole}:\n"
                       f"{proc.tail()}")
        print(f"block {k} used up its retries: run goes on, waits on it (stats: "
              f"{line.split('waiting_on=')[1][:60]}...), outputs stay at {k - 1}", flush=True)

        gate.fail_block = None
        healed = time.monotonic()
        head = node.block_number()
        want = (head, node.block(head, False)["hash"])
        outs.wait(want, proc, "after the endpoint healed", RETRY_WAIT + 60)
        proc.new_lines()  # what was logged before it caught up
        line, _ = proc.wait_line(lambda ln: "stats head=" in ln, 10, "a stats line")
        if "waiting_on=" in line:
            raise Fail(f"still waiting after catching up: {line}")
        print(f"healed: block {k} fetched on its next try, outputs at the head {head} "
              f"{time.monotonic() - healed:.0f}s later", flush=True)
        proc.stop()
        ntx, nlogs = outs.check(node_chain(node, head), "after healing")
        if not re.search(r"attempt 1 of 2", open(proc.err_path).read()):
            raise Fail("no retry was logged before the block counted as failed")
        print(f"OK: outputs = the chain 0..{head} exactly once ({ntx} txs, {nlogs} logs) "
              f"({time.monotonic() - t0:.0f}s)")
    except Fail as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if proc is not None:
            proc.close()
        if gate is not None:
            gate.close()
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
