"""etl-csv:DIR/{chain}: a `chains:` run writes each chain into a directory of its own (issue 13).

ethereum-etl's CSV files have no chain column, so one etl-csv directory cannot hold two chains:
1. `etl-csv:DIR` shared by the two chains of a `chains:` list is refused at start (exit 2),
   the message naming the output and the {chain} way out;
2. `etl-csv:DIR/{chain}` with two anvil chains (chain ids 1311, 1312, random workloads):
   `blockpipe run --config FILE` makes DIR/c1 and DIR/c2, each with its own checkpoint.json
   naming only its chain; once both are at their node's head each directory holds exactly its
   own node's chain (tests/tools/rowcheck.py csv_exact: every block once, every transaction,
   receipt and log cell equal, nothing else);
3. c2 is reorganised (anvil_reorg depth 3) while c1 gets blocks: c2's directory has the
   revert lines, c1's none, and both are their node's chains again;
4. stopped (SIGINT, exit 0) and started again after both nodes mined more: each chain
   resumes from its own directory's checkpoint - every block still once.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from anvil import Anvil, Workload  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from streamcheck import reorg_txs  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1311"))
NAMES = ["c1", "c2"]
HANG = 90


def config(path, nodes, outputs):
    chains = [{"name": n, "chain_id": 1311 + i, "rpc": nodes[n].url, "start_block": 0,
               "reorg_window": 16} for i, n in enumerate(NAMES)]
    cfg = {"outputs": outputs, "confirmations": 0, "poll_interval": 0.2, "stats_interval": 2,
           "max_memory": "256MiB", "workers": 2, "chains": chains}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML


def dir_checkpoint(d):
    """{chain: (number, hash)} of one directory's checkpoint.json ({} before the first)."""
    try:
        with open(os.path.join(d, "checkpoint.json")) as f:
            return {c: (v["number"], v["hash"]) for c, v in json.load(f)["chains"].items()}
    except (OSError, ValueError, KeyError):
        return {}


def caught_up(nodes, root, proc, log, label):
    want = {}
    for name, node in nodes.items():
        h = node.block_number()
        want[name] = {name: (h, node.block(h, False)["hash"])}

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(log)}")
        return all(dir_checkpoint(os.path.join(root, n)) == want[n] for n in NAMES)
    try:
        wait_for(ok, HANG, f"{label}: each chain's directory checkpointed at its head", 0.3)
    except Fail as e:
        have = {n: dir_checkpoint(os.path.join(root, n)) for n in NAMES}
        raise Fail(f"{e}\nwant {want}\nhave {have}\n{tail(log)}") from None


def check(nodes, root, label):
    """Each directory is its node's chain, nothing else; returns its revert lines."""
    reverts = {}
    for name, node in nodes.items():
        d = os.path.join(root, name)
        head = node.block_number()
        counts = rowcheck.csv_exact(d, rowcheck.fetch(node.url, range(head + 1)),
                                    label=f"{label}: {d}")
        with open(os.path.join(d, "reverts.csv")) as f:
            reverts[name] = max(0, len(f.readlines()) - 1)  # the header, when there are rows
        print(f"{label}: {d}: blocks 0..{head}, {counts}, {reverts[name]} reverts")
    return reverts


def refused(bp, tmp, nodes):
    path = os.path.join(tmp, "shared.json")
    out = os.path.join(tmp, "shared")
    config(path, nodes, [f"etl-csv:{out}"])
    p = subprocess.run([bp, "run", "--config", path], capture_output=True, text=True,
                       timeout=HANG, stdin=subprocess.DEVNULL)
    msg = p.stdout + p.stderr
    if p.returncode != 2 or f"etl-csv:{out}" not in msg or "{chain}" not in msg \
            or "chain column" not in msg:
        raise Fail(f"etl-csv:DIR shared by two chains: exit {p.returncode}, want 2 naming the "
                   f"output, the chain column and {{chain}}:\n{msg[-2000:]}")
    print("etl-csv:DIR shared by two chains refused:",
          next(ln for ln in msg.splitlines() if "{chain}" in ln))


def start(bp, path, log):
    with open(log, "a") as err:
        return subprocess.Popen([bp, "run", "--config", path], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)


def stop(proc, log, label):
    proc.send_signal(signal.SIGINT)
    if proc.wait(HANG) != 0:
        raise Fail(f"{label}: exit {proc.returncode} after SIGINT:\n{tail(log)}")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    proc = None
    with tempfile.TemporaryDirectory(prefix="bp-chains-etlcsv-") as tmp, \
            Anvil(["--chain-id", "1311"]) as n1, Anvil(["--chain-id", "1312"]) as n2:
        nodes = dict(zip(NAMES, (n1, n2)))
        wls = {n: Workload(node, seed=SEED + i) for i, (n, node) in enumerate(nodes.items())}
        for wl in wls.values():
            wl.setup()
            for _ in range(rng.randrange(3, 6)):
                wl.mine_batch(rng.randrange(0, 5))
        refused(bp, tmp, nodes)
        root = os.path.join(tmp, "csv")
        os.mkdir(root)
        path = os.path.join(tmp, "chains.json")
        config(path, nodes, ["etl-csv:" + os.path.join(root, "{chain}")])
        log = os.path.join(tmp, "run.log")
        try:
            proc = start(bp, path, log)
            caught_up(nodes, root, proc, log, "initial sync")
            if sorted(os.listdir(root)) != NAMES:
                raise Fail(f"{root} holds {sorted(os.listdir(root))}, want a directory per "
                           f"chain {NAMES}")
            check(nodes, root, "initial sync")
            n2.rpc("anvil_reorg", [3, reorg_txs(rng, wls["c2"], 3)])
            wls["c2"].after_reorg()
            wls["c2"].mine_batch(1)
            wls["c1"].mine_batch(2)
            caught_up(nodes, root, proc, log, "c2 reorganised")
            reverts = check(nodes, root, "c2 reorganised")
            if reverts["c2"] == 0 or reverts["c1"] != 0:
                raise Fail(f"c2's reorg: want revert lines in c2's directory alone, have "
                           f"{reverts}")
            stop(proc, log, "first run")
            for wl in wls.values():
                wl.mine_batch(rng.randrange(1, 4))
            proc = start(bp, path, log)
            caught_up(nodes, root, proc, log, "restarted")
            check(nodes, root, "restarted")
            stop(proc, log, "second run")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    print("OK: etl-csv:DIR/{chain}: a directory per chain, each its own chain once, reverts "
          "and restart per chain; etl-csv:DIR shared by two chains refused naming {chain}")


if __name__ == "__main__":
    try:
        main()
    except (Fail, rowcheck.Mismatch, subprocess.TimeoutExpired, TimeoutError,
            RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
