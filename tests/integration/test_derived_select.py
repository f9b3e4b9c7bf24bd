"""derived=LIST (`--derived`): an output writes only the groups of derived tables it selects,
exact, in every SQL output: SQLite, PostgreSQL and ClickHouse (a real Debian
clickhouse-server). `python3 test_derived_select.py sqlite postgres clickhouse` (the default:
all three) names the outputs to run.

The rule (docs/ARCHITECTURE.md, "Chain analytics", "The selection"): the groups are
chain_metrics, active_addresses, prices (these three go together), contract_metrics,
token_transfers, ml_predictions; an unselected group's tables get no rows; the selection of a
database whose derived tables hold rows cannot change (a group turned on later would count
only part of its windows): blockpipe refuses to open it, naming the group and the option.

Per output (each without contract_metrics and token_transfers: the contract tables stay empty
though the chain has rows for them, also through the reorg's REVERTs and the minutes counted
from raw transactions), written beside a second output, a SQLite file with every group, by the same process (so the metrics module
computes every group, and the output under test must leave out the rows computed for the
other one):
1. anvil blocks spread over minutes, hours and days (tests/tools/metricsdrive.py's chain:
   random workload and token events); a backfill with the selection in the output's URL
   (`?derived=...`): the selected tables equal the recomputation from the node
   (tests/tools/metricscheck.py), the others hold no row; the other output's every table
   equals the recomputation.
2. anvil reorgs the last 4 blocks and mines 2 more; `run --confirmations 0` follows to the
   head: the same, from the canonical blocks.
3. `run` with every group (the default) exits 2 naming the first group it would add and the
   option; a list without a group's needs (`--derived chain_metrics,prices`) exits 2 naming
   what is missing. Neither wrote anything: the tables are as in 2.
Before them, once: a list naming ml_predictions without `--ml on` exits 2 at start naming both
options (its table would be recorded as written while nothing scores it).
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metricscheck import (TABLES, Expected, Mismatch, _expected_view, compare,  # noqa: E402
                          read_sqlite)
from metricsdrive import ORIGIN, each_output, tail  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4545"))
DB = "gtp"
FOLLOW = ("--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "4")
CORE = ["chain_metrics", "active_addresses", "prices"]
# the selection per output, and the tables it has (the rest must stay empty)
SELECT = {"sqlite": CORE, "clickhouse": CORE, "postgres": CORE}
GROUP_OF = {"chain_metrics_block": "chain_metrics", "chain_metrics_1m": "chain_metrics",
            "chain_metrics_1h": "chain_metrics", "chain_metrics_1d": "chain_metrics",
            "contract_metrics_1m": "contract_metrics", "contract_metrics_1h": "contract_metrics",
            "contract_metrics_1d": "contract_metrics", "contract_senders": "contract_metrics",
            "active_addresses": "active_addresses", "token_transfers": "token_transfers"}


def check(sc, upto, label):
    """The selected tables equal the recomputation from blocks 0..upto-1; the others are
    empty (and the recomputation has rows for them: the test leaves something out)."""
    groups = SELECT[sc.be.label]
    blocks, receipts = sc.node_chain()
    exp = Expected(blocks[:upto], receipts[:upto], ORIGIN)
    got = sc.be.read(ORIGIN)
    selected = [t for t in TABLES if GROUP_OF[t] in groups]
    try:
        counts = compare(exp, got, only=selected, label=f"{sc.be.label}, {label}: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None
    left = [t for t in TABLES if t not in selected]
    for t in left:
        if got[t]:
            raise Mismatch(f"{sc.be.label}, {label}: {t} is not selected (derived="
                           f"{','.join(groups)}) but holds {len(got[t])} rows")
    want = {t: len(_expected_view(exp, t)) for t in left}
    if not any(want.values()):
        raise Mismatch(f"{sc.be.label}: the chain has no rows for {left}: nothing was left out")
    if got.get("ml_predictions"):
        raise Mismatch(f"{sc.be.label}: ml_predictions has rows without --ml")
    print(f"{sc.be.label}, {label}: {', '.join(groups)} equal the recomputation from blocks "
          f"0..{upto - 1} (" + " ".join(f"{t}={n}" for t, n in counts.items() if n) + "); "
          + ", ".join(f"{t} empty (would hold {want[t]})" for t in left), flush=True)


def check_all(sc, path, upto, label):
    """The output with every group: every table equals the recomputation."""
    blocks, receipts = sc.node_chain()
    exp = Expected(blocks[:upto], receipts[:upto], ORIGIN)
    try:
        compare(exp, read_sqlite(path, ORIGIN), label=f"{sc.be.label}, beside it, {label}: ")
    except Mismatch as e:
        raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(sc.err_path)}") from None


def both(sc, path, verb, *extra):
    """sc.cmd with the selection in the tested output's URL and the all-groups file beside."""
    cmd = sc.cmd(verb, *extra)
    i = cmd.index("--output") + 1
    derived = ",".join(SELECT[sc.be.label])
    cmd[i] += ("&" if "?" in cmd[i] else "?") + "derived=" + derived
    return cmd + ["--output", f"sqlite:{path}"]


def refused(sc, args, says, label):
    with open(sc.err_path) as f:
        start = len(f.read())
    rc = sc.exit_code(sc.cmd("run", *args, *FOLLOW), 60)
    with open(sc.err_path) as f:
        err = f.read()[start:]
    if rc != 2 or not all(s in err for s in says):
        raise Mismatch(f"{sc.be.label}, {label}: run {' '.join(args)} exited {rc}, want 2 with "
                       f"{says} in its message:\n{err[-2000:]}")
    line = next((ln for ln in err.splitlines() if says[0] in ln), "")
    print(f"{sc.be.label}, {label}: refused: {line.strip()[:240]}", flush=True)


def mine_and_backfill(sc, beside, blocks):
    """blocks mined, then blocks 0..head backfilled (the selection, the all-groups file at
    beside); the head."""
    for _ in range(blocks):
        sc.mine()
    head = sc.node.block_number()
    p = sc.spawn(both(sc, beside, "backfill", "--from", "0", "--to", str(head), "--batch-size",
                      "5"))
    if p.wait(300) != 0:
        raise Mismatch(f"{sc.be.label}: backfill exited {p.returncode}:\n{tail(sc.err_path)}")
    return head


def scenario(sc, server):
    label = sc.be.label
    beside = os.path.join(sc.tmp, "all.db")
    head = mine_and_backfill(sc, beside, 24)
    check(sc, head + 1, "backfilled")
    check_all(sc, beside, head + 1, "backfilled")

    sc.reorg_tokens(4, 2)
    sc.follow_to_head(both(sc, beside, "run", *FOLLOW), f"{label}, a reorg")
    head = sc.node.block_number()
    check(sc, head + 1, "a reorg of 4 blocks followed")
    check_all(sc, beside, head + 1, "a reorg of 4 blocks followed")

    refused(sc, (), ["contract_metrics is selected", "derived (--derived"], "every group")
    refused(sc, ("--derived", "chain_metrics,prices"),
            ["chain_metrics needs active_addresses", "derived (--derived"], "a need left out")
    check(sc, head + 1, "after the refusals")


def ml_refused(bp, tmp):
    """--derived with ml_predictions and --ml off: refused before any node is asked."""
    p = subprocess.run([bp, "run", "--rpc", "http://127.0.0.1:9", "--output",
                        "sqlite:" + os.path.join(tmp, "ml.db"), "--derived",
                        ",".join(CORE + ["ml_predictions"])],
                       capture_output=True, text=True, timeout=60)
    says = ["selects ml_predictions", "--ml (ML_PREDICTIONS)", "derived (--derived, DERIVED)"]
    if p.returncode != 2 or not all(s in p.stderr for s in says):
        raise Mismatch(f"ml_predictions without --ml on: exited {p.returncode}, want 2 with "
                       f"{says}:\n{p.stderr[-2000:]}")
    print("ml_predictions without --ml on: refused: "
          + next(ln for ln in p.stderr.splitlines() if says[0] in ln)[:200], flush=True)


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-derived-ml-") as tmp:
        ml_refused(blockpipe, tmp)
    each_output(blockpipe, "derived", SEED, scenario, db=DB)
    print("PASS")


if __name__ == "__main__":
    main()
