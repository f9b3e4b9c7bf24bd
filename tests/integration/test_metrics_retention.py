"""Retention of the derived tables removes exactly the expired rows (SQLite and PostgreSQL).

A chain of blocks about every 25 minutes over ~3 days is backfilled with short retentions
(block rows 2 h, sets 1 h, 1m rows 4 h, 1h rows 30 h, 1d rows forever) and --reorg-window 10.
The rule, written again here from docs/SCHEMA.md: a row goes once its window ended more than
its retention before the newest block and can no longer change (it ends at or before the
block reorg-window below the newest); block rows leave by whole minutes, 1m rows by whole
hours and 1h rows by whole days (their windows are recomputed from them); the 1m retention is
at least block + 1 h, the 1h one at least block + 1 day. Every remaining row must equal the
recomputation from the node's blocks (tests/tools/metricscheck.py), and exactly the rows the
rule keeps must remain. Then more blocks are written by `run`, and the same holds again.
Last, the sets kept forever (--retention-sets 0) beside the 2 h block rows and 30 h hourly
rollups: a window SQLite only counted while it saw it whole (its set is its blocks' raw
transactions, and the block rows say which blocks) must have its set stored before those
rows go, and a PostgreSQL lazy window (its block range from block rows and rollups) before
its hourly rollups go: every hour's and day's set is then stored, whole.
"""
import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from metricscheck import TABLES, Expected, Mismatch, compare, read_pg, read_sqlite  # noqa: E402
from pg import Postgres  # noqa: E402

ORIGIN = "retention"
REORG_WINDOW = 10
KEEP = {"block": 7200, "sets": 3600, "1m": 4 * 3600, "1h": 30 * 3600, "1d": 0}
FLAGS = ["--retention-block", str(KEEP["block"]), "--retention-sets", str(KEEP["sets"]),
         "--retention-1m", str(KEEP["1m"]), "--retention-1h", str(KEEP["1h"]),
         "--retention-1d", str(KEEP["1d"]), "--reorg-window", str(REORG_WINDOW)]
GRAIN = {"1m": 60, "1h": 3600, "1d": 86400}


def cut(newest, frozen, keep, unit):
    if keep == 0 or newest <= keep:
        return 0
    c = min(newest - keep, frozen)
    return c - c % unit


def kept(exp, blocks):
    """exp's tables as the rule leaves them after the last block."""
    ts = [int(b["timestamp"], 16) for b in blocks]
    newest, frozen = ts[-1], ts[-1 - REORG_WINDOW]
    eff = {"1m": max(KEEP["1m"], KEEP["block"] + 3600), "1h": max(KEEP["1h"], KEEP["block"] + 86400),
           "1d": KEEP["1d"]}
    parent = {"1m": 3600, "1h": 86400, "1d": 86400}
    t = exp.tables
    c = cut(newest, frozen, KEEP["block"], 60)
    t["chain_metrics_block"] = {k: r for k, r in t["chain_metrics_block"].items()
                                if r["block_timestamp"] >= c}
    for g, length in GRAIN.items():
        c = cut(newest, frozen, eff[g], parent[g])
        t[f"chain_metrics_{g}"] = {w: r for w, r in t[f"chain_metrics_{g}"].items() if w >= c}
        c = cut(newest, frozen, eff[g], length)
        t[f"contract_metrics_{g}"] = {k: r for k, r in t[f"contract_metrics_{g}"].items()
                                      if k[0] >= c}
    sets = {g: cut(newest, frozen, KEEP["sets"], length) for g, length in GRAIN.items()}
    for name in ("active_addresses", "contract_senders"):
        t[name] = {k: v for k, v in t[name].items() if k[1] >= sets[k[0]]}
    return exp


def check(label, node, read):
    head = node.block_number()
    blocks = [node.block(n, True) for n in range(head + 1)]
    receipts = [node.receipts(n) for n in range(head + 1)]
    full = Expected(blocks, receipts, ORIGIN)
    before = {t: len(full.tables[t]) for t in TABLES}
    exp = kept(full, blocks)
    counts = compare(exp, read(), label=f"{label}: ")
    gone = {t: before[t] - counts[t] for t in TABLES if before[t] != counts[t]}
    for t in ("chain_metrics_block", "chain_metrics_1m", "active_addresses", "contract_senders"):
        if not gone.get(t):
            raise Mismatch(f"{label}: nothing of {t} expired: the chain is too short to test")
    if gone.get("chain_metrics_1d"):
        raise Mismatch(f"{label}: 1d rows expired though kept forever")
    print(f"{label}: exactly the unexpired rows remain (expired: "
          + " ".join(f"{t}={n}" for t, n in gone.items()) + ")")


def mine(node, wl, n, step):
    ts = int(node.block("latest")["timestamp"], 16)
    for i in range(n):
        ts += step + 37 * (i % 3)
        node.rpc("evm_setNextBlockTimestamp", [ts])
        wl.mine_batch(1 + i % 4)


def scenario(bp, node, wl, output, read, label):
    head = node.block_number()
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", output, "--chain", ORIGIN,
                        "--from", "0", "--to", str(head), "--batch-size", "20"] + FLAGS,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise Mismatch(f"{label}: backfill exit {p.returncode}:\n{p.stderr[-3000:]}")
    check(f"{label} after the backfill", node, read)
    proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", output, "--chain", ORIGIN,
                             "--poll-interval", "0.2"] + FLAGS,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        mine(node, wl, 15, 1500)
        last = node.block_number()
        wait_until(lambda: read()["chain_metrics_1d"] and any(
            r["last_block"] == last for r in read()["chain_metrics_1d"].values()), 120,
            f"{label}: block {last} in the rollups")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise Mismatch(f"{label}: run exit {proc.returncode}:\n{err[-3000:]}")
    check(f"{label} after following", node, read)


def sets_outlive_blocks(bp, node, tmp, pg=None):
    """With the sets kept forever, every hour's and day's set whose block rows (SQLite) or
    hourly rollups (PostgreSQL: a lazy window's block range) expired is stored whole."""
    label = "postgres" if pg else "sqlite"
    output = pg.url(query="schema=forever") if pg else f"sqlite:{os.path.join(tmp, 'forever.db')}"
    flags = list(FLAGS)
    flags[flags.index("--retention-sets") + 1] = "0"
    head = node.block_number()
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", output, "--chain",
                        ORIGIN, "--from", "0", "--to", str(head), "--batch-size", "20"] + flags,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise Mismatch(f"{label}, sets kept forever: backfill exit {p.returncode}:\n"
                       f"{p.stderr[-3000:]}")
    blocks = [node.block(n, True) for n in range(head + 1)]
    full = Expected(blocks, [node.receipts(n) for n in range(head + 1)], ORIGIN)
    ts = [int(b["timestamp"], 16) for b in blocks]
    newest, frozen = ts[-1], ts[-1 - REORG_WINDOW]
    # SQLite: a counted window's blocks are its block rows; PostgreSQL: a lazy one's range
    # comes from its hourly rollups once the block rows are gone (they leave by whole days)
    gone_below = (cut(newest, frozen, max(KEEP["1h"], KEEP["block"] + 86400), 86400) if pg
                  else cut(newest, frozen, KEEP["block"], 60))
    want = {}
    for (g, w, a) in full.tables["active_addresses"]:
        if w + GRAIN[g] <= gone_below:
            want.setdefault((g, w), set()).add(a.lower())
    got = {}
    if pg:
        rows = pg.sql("SELECT grain, window_start, '0x' || encode(address, 'hex') FROM "
                      f"forever.active_addresses WHERE origin_key = '{ORIGIN}'")
    else:
        con = sqlite3.connect(output.split(":", 1)[1])
        try:
            rows = con.execute("SELECT grain, window_start, address FROM active_addresses "
                               "WHERE origin_key = ?", (ORIGIN,)).fetchall()
        finally:
            con.close()
    for g, w, a in rows:
        got.setdefault((g, int(w)), set()).add(a.lower())
    if not want:
        raise Mismatch(f"{label}, sets kept forever: no window's rows expired: the chain is too "
                       "short to test")
    bad = [k for k in want if got.get(k) != want[k]]
    if bad:
        raise Mismatch(f"{label}, sets kept forever: {len(bad)} of {len(want)} windows whose "
                       f"rows expired lack their whole set, e.g. {sorted(bad)[:3]}")
    print(f"{label}, sets kept forever: the {len(want)} hour/day sets whose rows expired are "
          f"stored whole")


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-retention-") as tmp, Anvil() as node:
        wl = Workload(node, seed=5)
        wl.setup()
        mine(node, wl, 170, 1500)
        db = os.path.join(tmp, "r.db")
        scenario(bp, node, wl, f"sqlite:{db}", lambda: read_sqlite(db, ORIGIN), "sqlite")
        sets_outlive_blocks(bp, node, tmp)
        with Postgres() as pg:
            scenario(bp, node, wl, pg.url(), lambda: read_pg(pg, ORIGIN), "postgres")
            sets_outlive_blocks(bp, node, tmp, pg)
    print("PASS")


if __name__ == "__main__":
    main()
