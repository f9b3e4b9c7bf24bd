"""Retention of the derived tables with several chains in one output (issue 13 part 1).

Two anvil chains are backfilled by one `blockpipe backfill --config FILE` with a `chains:`
list into one SQLite file and one PostgreSQL database, with the short retentions of
test_metrics_retention.py: `ahead` has a block about every 83 minutes (its newest block ~10
days after genesis), `behind` one about every 25 minutes (~3 days). Their batches take turns
in the shared outputs, so a retention cut remembered from `ahead` (days later in chain time)
must not stop `behind`'s expired rows from being deleted: in both outputs, exactly the rows
the rule keeps must remain for each chain, each equal to its recomputation from its node
(tests/tools/metricscheck.py, the rule as test_metrics_retention.py writes it).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from metricscheck import TABLES, Expected, Mismatch, compare, read_pg, read_sqlite  # noqa: E402
from pg import Postgres  # noqa: E402
from test_metrics_retention import FLAGS, kept, mine  # noqa: E402

CHAINS = {"ahead": (1011, 5000), "behind": (1012, 1500)}  # chain id, seconds between blocks


def check(label, node, name, got):
    head = node.block_number()
    blocks = [node.block(n, True) for n in range(head + 1)]
    full = Expected(blocks, [node.receipts(n) for n in range(head + 1)], name)
    before = {t: len(full.tables[t]) for t in TABLES}
    counts = compare(kept(full, blocks), got, label=f"{label}: ")
    gone = {t: before[t] - counts[t] for t in TABLES if before[t] != counts[t]}
    for t in ("chain_metrics_block", "active_addresses"):
        if not gone.get(t):
            raise Mismatch(f"{label}: nothing of {t} expired: the chain is too short to test")
    print(f"{label}: exactly the unexpired rows remain (expired: "
          + " ".join(f"{t}={n}" for t, n in gone.items()) + ")")


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    nodes = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bp-chains-ret-") as tmp, Postgres() as pg:
            for i, (name, (cid, step)) in enumerate(CHAINS.items()):
                nodes[name] = Anvil(["--chain-id", str(cid)])
                wl = Workload(nodes[name], seed=7 + i)
                wl.setup()
                mine(nodes[name], wl, 170, step)
            db = os.path.join(tmp, "r.db")
            cfg = {"outputs": [f"sqlite:{db}", pg.url()], "batch_size": 20,
                   "chains": [{"name": n, "chain_id": c, "rpc": nodes[n].url}
                              for n, (c, _) in CHAINS.items()]}
            path = os.path.join(tmp, "chains.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            head = min(n.block_number() for n in nodes.values())
            p = subprocess.run([bp, "backfill", "--config", path, "--from", "0", "--to",
                                str(head)] + FLAGS, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise Mismatch(f"backfill exit {p.returncode}:\n{p.stderr[-3000:]}")
            for name, node in nodes.items():
                if node.block_number() != head:
                    raise Mismatch(f"{name}: head {node.block_number()}, want {head}")
                check(f"sqlite chain {name}", node, name, read_sqlite(db, name))
                check(f"postgres chain {name}", node, name, read_pg(pg, name))
    finally:
        for n in nodes.values():
            n.stop()
    print("PASS")


if __name__ == "__main__":
    main()
