"""Metrics switched off and on again within one minute (a restart with the flag changed): the
minute counts only the blocks applied with metrics on, in SQLite and PostgreSQL.
`python3 test_metrics_offon.py sqlite postgres` (the default: both) names the outputs to run.

The rule (docs/ARCHITECTURE.md, "Chain analytics", `--metrics off`): the derived tables hold
exactly the canonical blocks among those applied with metrics on; the blocks applied with it
off are in no window. A minute the metrics module did not see begin (after a restart) is
counted from the output's own tables: its distinct senders and its contract rows from the raw
transactions of the minute's blocks that have a chain_metrics_block row (before the fix: of
every block between the minute's first and last such row, so the blocks indexed while metrics
was off, in the middle of the minute, were counted).

anvil (tests/tools/metricsdrive.py's random workload and token events), then six blocks in
one fresh minute: two backfilled with metrics on, two with metrics off (calls of the token
contracts among them, so their contract rows and senders show if counted), two with metrics
on again. Every derived table equals the recomputation from the node's blocks without the two
metrics-off ones (tests/tools/metricscheck.py).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metricscheck import Expected, Mismatch, compare  # noqa: E402
from metricsdrive import ORIGIN, each_output, tail  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4343"))


def mine_at(sc, ts, txs, tokens):
    """One block at ts with txs random transactions and tokens token-contract calls."""
    sc.node.rpc("evm_setNextBlockTimestamp", [ts])
    for _ in range(tokens):
        sc.em.send()
    for _ in range(txs):
        sc.wl.random_tx()
    sc.node.mine()
    sc.wl.collect_deploys()
    sc.wl.check_pool_empty()
    sc.ts = ts


def backfill(sc, lo, hi, metrics):
    p = sc.spawn(sc.cmd("backfill", "--from", str(lo), "--to", str(hi), "--metrics", metrics))
    if p.wait(120) != 0:
        raise Mismatch(f"{sc.be.label}: backfill {lo}..{hi} --metrics {metrics} exited "
                       f"{p.returncode}:\n{tail(sc.err_path)}")


def scenario(sc, server):
    label = sc.be.label
    minute = (sc.ts // 60 + 2) * 60
    mine_at(sc, minute + 1, 2, 1)
    mine_at(sc, minute + 2, 2, 0)
    on1 = sc.node.block_number()
    backfill(sc, 0, on1, "on")
    mine_at(sc, minute + 3, 4, 3)
    mine_at(sc, minute + 4, 4, 3)
    off = sc.node.block_number()
    backfill(sc, on1 + 1, off, "off")
    mine_at(sc, minute + 5, 2, 1)
    mine_at(sc, minute + 6, 2, 0)
    head = sc.node.block_number()
    backfill(sc, off + 1, head, "on")

    blocks, receipts = sc.node_chain()
    keep = [i for i in range(head + 1) if not on1 < i <= off]
    exp = Expected([blocks[i] for i in keep], [receipts[i] for i in keep], ORIGIN)
    try:
        counts = compare(exp, sc.be.read(ORIGIN), label=f"{label}, metrics on/off/on: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None
    print(f"{label}: blocks {on1 + 1}..{off} (metrics off) are in no window of minute {minute}; "
          "the derived tables equal the recomputation without them: "
          + " ".join(f"{t}={n}" for t, n in counts.items() if n), flush=True)


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    each_output(blockpipe, "metrics-offon", SEED, scenario, ("sqlite", "postgres"))
    print("PASS")


if __name__ == "__main__":
    main()
