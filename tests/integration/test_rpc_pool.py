"""An RPC pool: a preferred endpoint that fails every request and a healthy fallback.

rpc[0] (priority 0, preferred) is a fault proxy in front of anvil that answers eth_chainId
(an endpoint must name the chain before it gets requests) and its head polls ("latest")
unharmed -- so it is healthy and preferred when the backfill starts, whichever request comes
first -- and every other block request with HTTP 500, a reset connection or garbage (each of
the three seen at least once); rpc[1]
(priority 1) is anvil itself. Both are given as inline JSON objects to --rpc. The backfill
must end exact (every block, tx and log as the node has them, field by field, and the
checkpoint at the head), the failing endpoint must be ejected (said on stderr and counted in
the per-endpoint stats lines), and the healthy one must have carried the blocks.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
import rowcheck  # noqa: E402

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, tempfile.TemporaryDirectory(prefix="bp-pool-") as tmp:
        wl = Workload(node, seed=21)
        wl.setup()
        for _ in range(40):
            wl.mine_batch(3)
        head = node.block_number()
        stats = os.path.join(tmp, "faults.json")
        proxy = subprocess.Popen([sys.executable, os.path.join(TOOLS, "faultproxy.py"),
                                  "--upstream", node.url, "--faults", "http500,reset,garbage",
                                  "--every", "1", "--stats-file", stats, "--lifetime", "300",
                                  "--only-methods",
                                  "eth_getBlockByNumber,eth_getBlockReceipts", "--pass-latest"],
                                 stdout=subprocess.PIPE, text=True)
        try:
            port = int(proxy.stdout.readline().split()[1])
            bad = json.dumps({"url": f"http://127.0.0.1:{port}", "max_workers": 4,
                              "priority": 0})
            good = json.dumps({"url": node.url, "max_workers": 2, "priority": 1})
            db = os.path.join(tmp, "bp.db")
            p = subprocess.run([bp, "backfill", "--rpc", bad, "--rpc", good, "--from", "0",
                                "--to", str(head), "--output", f"sqlite:{db}",
                                "--max-retries", "20", "--stats-interval", "0.5",
                                "--rpc-timeout", "5"],
                               capture_output=True, text=True, timeout=240)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
        err = p.stderr
        if p.returncode != 0:
            raise AssertionError(f"backfill exited {p.returncode}\n{err[-3000:]}")
        if not re.search(r"rpc http://127\.0\.0\.1:\d+ ejected", err):
            raise AssertionError(f"the failing endpoint was never ejected:\n{err[-3000:]}")
        last = {}
        for m in re.finditer(r"stats rpc\[(\d)\] \S+ state=(\w+) .*? requests=(\d+) "
                             r"errors=(\d+) .*? ejections=(\d+) blocks=(\d+)", err):
            last[int(m.group(1))] = m.groups()[1:]
        if set(last) != {0, 1}:
            raise AssertionError(f"no per-endpoint stats lines for both endpoints:\n{err[-2000:]}")
        _, _, errors0, ej0, blocks0 = last[0]
        _, _, _, _, blocks1 = last[1]
        if int(ej0) < 1 or int(errors0) < 1 or int(blocks0) != 0:
            raise AssertionError(f"rpc[0] stats wrong: {last[0]}")
        if int(blocks1) < head + 1:
            raise AssertionError(f"rpc[1] carried {blocks1} blocks, want >= {head + 1}")
        counts = rowcheck.sqlite_exact(db, rowcheck.fetch(node.url, range(head + 1)), "31337")
        cp = rowcheck.sqlite_checkpoints(db)
        if cp != {"sqlite": (head, node.block(head, False)["hash"])}:
            raise AssertionError(f"checkpoint {cp}, want the head {head}")
        with open(stats) as f:
            faults = json.load(f)
        unused = [k for k in ("http500", "reset", "garbage") if faults[k] < 1]
        if unused:
            raise AssertionError(f"rpc[0] never answered with {unused}: {faults}")
        print(f"OK: {head + 1} blocks, {counts['transactions']} txs, {counts['logs']} logs "
              f"exact, every field; rpc[0] ejected {ej0}x with {errors0} errors ({faults}); "
              f"rpc[1] carried {blocks1} blocks")

if __name__ == "__main__":
    main()
