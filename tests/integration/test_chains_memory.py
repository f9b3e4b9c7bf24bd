"""30 chains in one process stay within one memory budget (issue 13 part 1).

Thirty simnode chains (one simnode process each: chain ids 2000..2029, seeds of their own,
300 blocks of 40-60 transactions) are backfilled at once by one `blockpipe backfill --config
FILE` with a `chains:` list of 30 into one SQLite file (derived tables off: the shape of
bench/chains_bench.py, where glibc's default malloc arenas took the process to 244-272 MiB),
with max_memory 256MiB for the whole process. Its peak resident set (the kernel's: wait4
ru_maxrss, and VmHWM sampled while it runs) must stay under the budget. A test of memory, not
of time: nothing here is timed.

Every chain must be stored whole under its own name: for each chain its checkpoint is its
node's last block (number and hash), and its block and transaction counts are the node's;
two chains are compared row by row (tests/tools/rowcheck.py).

As test_memory_budget.py, the peak is measured on a release build of these sources (made
incrementally in BP_BUILD_DIR/rss-release): AddressSanitizer's shadow memory and quarantine
would be what is measured otherwise.
"""

import json
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rowcheck  # noqa: E402
from simnode import Simnode  # noqa: E402
from test_memory_budget import peak_rss, release_binary  # noqa: E402

CHAINS = 30
LAST = 299
BUDGET_MIB = 256


def fail(msg):
    raise AssertionError(msg)


def chain_counts(db):
    """{chain: (its checkpoints [(number, hash)], its blocks, the sum of their
    transaction_count, its transactions)}, counted by SQLite. Reading every row of the 30
    chains (450,000 transactions) into Python and filtering them once per chain cost as much
    CPU as chains x rows: with 6 chains 3.5 s against 0.9 s for these counts."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        out = {}
        for chain, number, h in con.execute("SELECT chain, number, hash FROM checkpoints"):
            out.setdefault(chain, [[], 0, 0, 0])[0].append((number, h))
        for chain, n, ntx in con.execute("SELECT chain, count(*), sum(transaction_count) FROM "
                                         "blocks GROUP BY chain"):
            out.setdefault(chain, [[], 0, 0, 0])[1:3] = [n, ntx]
        for chain, n in con.execute("SELECT chain, count(*) FROM transactions GROUP BY chain"):
            out.setdefault(chain, [[], 0, 0, 0])[3] = n
        return {c: tuple(v) for c, v in out.items()}
    finally:
        con.close()


def chain_rows(db, chains):
    """Every row of the three tables of these chains, as rowcheck.sqlite_rows reads them."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        out = {}
        marks = ",".join("?" * len(chains))
        for table in ("blocks", "transactions", "logs"):
            cur = con.execute(f"SELECT * FROM {table} WHERE chain IN ({marks})", chains)
            names = [d[0] for d in cur.description]
            out[table] = [dict(zip(names, row)) for row in cur]
        return out
    finally:
        con.close()


def main():
    print(__doc__.strip())
    bp = release_binary()
    nodes = []
    try:
        for i in range(CHAINS):
            nodes.append(Simnode(bp, ["--chain-id", str(2000 + i), "--seed", str(100 + i),
                                      "--block-time", "0", "--length", str(LAST + 1),
                                      "--txs-per-block", "40-60"]))
        with tempfile.TemporaryDirectory(prefix="bp-chains-mem-") as tmp:
            db = os.path.join(tmp, "chains.db")
            cfg = {"output": f"sqlite:{db}?metrics=off", "max_memory": f"{BUDGET_MIB}MiB",
                   "stats_interval": 5, "rpc_timeout": 120,
                   "chains": [{"name": f"c{i:02d}", "chain_id": 2000 + i, "rpc": n.urls[0]}
                              for i, n in enumerate(nodes)]}
            path = os.path.join(tmp, "chains.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            peak, log = peak_rss([bp, "backfill", "--config", path, "--from", "0", "--to", str(LAST)])
            if "beyond the budget" in log:
                fail(f"a block was fetched beyond the budget: {log[-2000:]}")
            finished = sum(f"chain 'c{i:02d}' finished" in log for i in range(CHAINS))
            if finished != CHAINS:
                fail(f"{finished} of {CHAINS} chains said they finished: {log[-3000:]}")
            stored = chain_counts(db)
            for i, node in enumerate(nodes):
                name = f"c{i:02d}"
                (last,) = node.rpc_batch([("eth_getBlockByNumber", [hex(LAST), False])])
                cps, nblocks, want_txs, txs = stored.get(name, ([], 0, 0, 0))
                if cps != [(LAST, last["hash"])]:
                    fail(f"chain {name}: checkpoints {cps}, want [({LAST}, {last['hash']})]")
                if nblocks != LAST + 1 or txs != want_txs:
                    fail(f"chain {name}: {nblocks} blocks and {txs} transactions stored, "
                         f"want {LAST + 1} and {want_txs}")
            rows = chain_rows(db, [f"c{i:02d}" for i in (0, CHAINS - 1)])
            for i in (0, CHAINS - 1):
                name = f"c{i:02d}"
                mine = {t: [r for r in rows[t] if r["chain"] == name]
                        for t in ("blocks", "transactions", "logs")}
                data = rowcheck.fetch(nodes[i].urls[0], range(LAST + 1))
                counts = rowcheck._compare_all(f"sqlite chain {name}", mine, data,
                                               rowcheck.sqlite_value, name)
                print(f"chain {name}: every row equals its node: {counts}")
            ntx = sum(c[3] for c in stored.values())
            print(f"{CHAINS} chains, {CHAINS * (LAST + 1)} blocks, {ntx} transactions: peak RSS "
                  f"{peak:.0f} MiB ({peak / CHAINS:.1f} MiB per chain), budget {BUDGET_MIB} MiB")
            if peak >= BUDGET_MIB:
                fail(f"peak RSS {peak:.0f} MiB with max_memory {BUDGET_MIB} MiB for {CHAINS} "
                     f"chains")
            print("OK")
    finally:
        for n in nodes:
            n.kill()


if __name__ == "__main__":
    main()
