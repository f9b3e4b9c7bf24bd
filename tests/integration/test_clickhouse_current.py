"""The ClickHouse output on a current server: ClickHouse 26.5's engine (chDB's libchdb.so) behind
tests/tools/chdb_http.py, whose HTTP transport alone is the test's own (Debian's 18.16 stays the
end-to-end server of the other ClickHouse tests). Fails, like every test here, when the library
is missing (scripts/install-deps.sh --test installs it).

1. Types: version() is 21.6 or later; every 256-bit column of the raw and derived tables is
   UInt256 in system.columns (18.16 gets decimal String).
2. tests/tools/metricsdrive.py's scenario (test_metrics_clickhouse's first part): anvil's random
   workload and token events over minutes, hours and days, a backfill crashed in its derived
   inserts and SIGKILLed, `run --confirmations 0` through reorgs of depth 1..5 and a SIGKILL;
   after the merges every row of every derived table equals the recomputation from the node
   (tests/tools/metricscheck.py), and the issue's three example queries (literally, with the
   `gtp.` prefix) and the six `_v` views whole return the recomputed rows.
3. TTL (ttl on, the default): a chain of ~3 days that ends 6 h before now is backfilled with
   short retentions (test_metrics_retention's: block rows 2 h, sets 1 h, minutes 4 h, hours
   30 h, days forever) and the default slack (7 days): SHOW CREATE TABLE of each table with a
   retention has TTL greatest(<end> + <retention>, _written + <slack>) with the retention's
   seconds (the effective ones: minutes at least block + 1 h) and the slack's. The windows open
   at the checkpoint are past their end + retention by the server's clock, as after a downtime
   longer than those retentions: after the mutations and OPTIMIZE ... FINAL (which applies the
   TTLs) the tables hold exactly the rows the chain-time plan keeps, each equal to the
   recomputation; a restart writing more blocks of the same minute and hour: the same (without
   the slack the open minute's block rows and the open hour's minutes went: short windows).
   Then ttl_slack=1 (MODIFY TTL), 2 s later and after OPTIMIZE ... FINAL exactly the rows
   whose end (the plan's: a block row's minute, a chain rollup's next-grain window, a contract
   rollup's window, a set's hour or day) plus the retention is before the server's clock are
   gone, and every row left equals the recomputation. Partition drops alone (18.16's way)
   would leave rows of the current partitions (the hours' partitions are 30 days long), so this
   part fails without the TTL. Then runs with other retentions change the TTL (ALTER TABLE
   ... MODIFY TTL), the hours kept forever remove theirs, and ttl=off removes them all; tables
   without _written (made before it) get it and their TTLs, the rows there a _written no older
   than the change.
4. test_clickhouse_retention_history's backfill of history 400 days old, with the TTLs (the
   default: the slack keeps the history) and with ttl=off (no TTL): exactly the rows the
   chain-time rule keeps (rounded to partitions) are left, each equal to the recomputation.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from chdb_http import Chdb  # noqa: E402
from metricscheck import TABLES, Expected, Mismatch, compare, read_clickhouse  # noqa: E402
from metricsdrive import Scenario  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS, ChBackend, retention_kept_ch, utc  # noqa: E402
import test_metrics_retention as R  # noqa: E402
import test_clickhouse_retention_history as H  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3131"))
DB = "gtp"
TTL_DB = "ttl"
SLACK = 604800  # ttl_slack's default


def check_types(ch, db):
    cols = ch.sql("SELECT table, name, type FROM system.columns WHERE database = "
                  f"'{db}' AND (type LIKE '%256%' OR name IN ('fees_paid_wei', 'value', "
                  "'amount_raw', 'gas_price', 'base_fee_per_gas'))")
    wide = [c for c in cols if "256" in c[2]]
    if not wide or any("UInt256" not in c[2] for c in wide):
        raise Mismatch(f"256-bit columns: {wide}")
    strings = [c for c in cols if c[1] == "fees_paid_wei" and "String" in c[2]]
    if strings:
        raise Mismatch(f"fees as String on a current server: {strings}")
    print(f"UInt256: {len(wide)} columns, e.g. "
          + ", ".join(f"{t}.{n} {ty}" for t, n, ty in wide[:4]))


# ---- TTL --------------------------------------------------------------------------------------

def effective():
    k = R.KEEP
    return {"block": k["block"], "sets": k["sets"], "1m": max(k["1m"], k["block"] + 3600),
            "1h": max(k["1h"], k["block"] + 86400), "1d": k["1d"]}


def ends(table, key, row):
    """The end of what the plan cuts the row by (bp_ch_derived_ttl's expression)."""
    if table == "chain_metrics_block":
        ts = row["block_timestamp"]
        return ts - ts % 60 + 60
    if table in ("active_addresses", "contract_senders"):
        unit = 86400 if key[0] == "1d" else 3600
        return key[1] - key[1] % unit + unit
    g = table[-2:]
    w = key if table.startswith("chain_") else key[0]
    if table.startswith("chain_"):
        unit = {"1m": 3600, "1h": 86400, "1d": 86400}[g]
        return w - w % unit + unit
    return w + R.GRAIN[g]


def keep_of(table):
    eff = effective()
    if table == "chain_metrics_block":
        return eff["block"]
    if table in ("active_addresses", "contract_senders"):
        return eff["sets"]
    if table.endswith(("_1m", "_1h", "_1d")) and not table.startswith("contract_metrics_block"):
        return eff[table[-2:]]
    return 0


def ttl_kept(full, got, t0, t1):
    """full's tables as the TTL leaves them merged between t0 and t1 (server clock): a row whose
    end + retention <= t0 is gone, one after t1 stays, one between may be either (as read)."""
    ambiguous = 0
    for t, rows in full.tables.items():
        keep = keep_of(t)
        if not keep:
            continue
        out = {}
        for k, r in rows.items():
            e = ends(t, k, r) + keep
            if e > t1 or (e > t0 and k in got[t]):
                out[k] = r
            ambiguous += t0 < e <= t1
        full.tables[t] = out
    return ambiguous


def show_ttl(ch, db, table):
    create = ch.sql(f"SHOW CREATE TABLE {db}.{table}")[0][0]
    m = re.search(r"\bTTL (.*?)(?:\n| SETTINGS|$)", create)
    return m.group(1) if m else None


def check_ttl_clauses(ch, db, eff, label, slack=SLACK):
    want = {"chain_metrics_block": eff["block"], "contract_metrics_block": eff["block"],
            "active_addresses": eff["sets"], "contract_senders": eff["sets"]}
    for g in ("1m", "1h", "1d"):
        want[f"chain_metrics_{g}"] = want[f"contract_metrics_{g}"] = eff[g]
    want["token_transfers"] = want["ml_predictions"] = 0
    for t, secs in want.items():
        ttl = show_ttl(ch, db, t)
        if not secs:
            if ttl:
                raise Mismatch(f"{label}: {t} has TTL {ttl}, want none")
            continue
        if not ttl or not re.search(rf"^greatest\(.*toIntervalSecond\({secs}\),\s*`?_written`?"
                                    rf"\s*\+\s*toIntervalSecond\({slack}\)\)$", ttl):
            raise Mismatch(f"{label}: {t}: TTL {ttl!r}, want one of {secs} s, slack {slack} s")
    print(f"{label}: TTL clauses as the retentions say (slack {slack} s): "
          + " ".join(f"{t}={s}" for t, s in want.items()))


def backfill(bp, node, ch, head, flags, label, query=""):
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", ch.url(TTL_DB, query=query),
                        "--chain", R.ORIGIN, "--from", "0", "--to", str(head), "--batch-size", "20"]
                       + flags, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise Mismatch(f"{label}: backfill exit {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stderr


def mine_now(node, wl, n):
    """n blocks at the server's present (after the chain's last one)."""
    for _ in range(n):
        last = int(node.block("latest")["timestamp"], 16)
        node.rpc("evm_setNextBlockTimestamp", [max(last + 1, int(time.time()))])
        wl.mine_batch(2)
    return node.block_number()


def mutations_done(ch, db, timeout=120):
    deadline = time.monotonic() + timeout
    while ch.sql(f"SELECT count() FROM system.mutations WHERE database = '{db}'"
                 " AND is_done = 0") != [["0"]]:
        if time.monotonic() > deadline:
            raise Mismatch(f"mutations of {db} not done within {timeout}s")
        time.sleep(0.2)


def node_rows(node):
    head = node.block_number()
    blocks = [node.block(n, True) for n in range(head + 1)]
    receipts = [node.receipts(n) for n in range(head + 1)]
    return blocks, Expected(blocks, receipts, R.ORIGIN)


def plan_kept(bp, ch, node, label):
    """After the merges (OPTIMIZE FINAL applies the TTLs) the tables hold exactly the rows the
    chain-time plan keeps, each equal to the recomputation."""
    mutations_done(ch, TTL_DB)
    ch.merge(TTL_DB, PER_BLOCK + ROLLUPS)
    blocks, full = node_rows(node)
    counts = compare(retention_kept_ch(full, blocks), read_clickhouse(ch, TTL_DB, R.ORIGIN),
                     label=f"{label}: ")
    print(f"{label}: the rows the chain-time plan keeps, exact: "
          + " ".join(f"{t}={n}" for t, n in counts.items() if n))


def ttl(bp, ch):
    span = 170 * 1540
    start = int(time.time()) - span - 6 * 3600  # the chain ends about 6 h before now
    with Anvil(["--timestamp", start]) as node:
        wl = Workload(node, seed=5)
        wl.setup()
        R.mine(node, wl, 170, 1500)
        head = node.block_number()
        newest = int(node.block(head)["timestamp"], 16)
        if not time.time() - 86400 < newest < time.time() - 5 * 3600:
            raise Mismatch(f"the chain does not end 5 to 24 h before now: newest block {newest}")
        # history older than the retentions by the clock, with the defaults (ttl on, slack
        # 7 days): the TTLs are in place while it is written and keep every row the plan keeps
        backfill(bp, node, ch, head, R.FLAGS, "TTL, history")
        check_ttl_clauses(ch, TTL_DB, effective(), "history, the defaults")
        check_types(ch, TTL_DB)
        # the windows open at the checkpoint (its minute's block rows, its hour's minutes) are
        # past their end + retention by the server's clock, as after a downtime longer than
        # those retentions: the merges (TTL applied) take none of them
        plan_kept(bp, ch, node, "after a downtime of 6 h")
        # a restart: more blocks of the same minute and hour, recomputed from the rows there
        R.mine(node, wl, 3, 5)
        backfill(bp, node, ch, node.block_number(), R.FLAGS, "restart")
        plan_kept(bp, ch, node, "restart after the downtime")
        # a slack of 1 s (MODIFY TTL: the expression changed): 2 s later exactly the rows whose
        # end + retention is past go at the merges, the rest stays exact
        backfill(bp, node, ch, node.block_number(), R.FLAGS, "slack 1 s", "ttl_slack=1")
        check_ttl_clauses(ch, TTL_DB, effective(), "ttl_slack=1", 1)
        time.sleep(2)
        mutations_done(ch, TTL_DB)
        blocks, full = node_rows(node)
        full = retention_kept_ch(full, blocks)
        t0 = int(ch.sql("SELECT toUnixTimestamp(now())")[0][0])
        ch.merge(TTL_DB, PER_BLOCK + ROLLUPS)
        got = read_clickhouse(ch, TTL_DB, R.ORIGIN)
        t1 = int(ch.sql("SELECT toUnixTimestamp(now())")[0][0])
        before = {t: len(full.tables[t]) for t in TABLES}
        ambiguous = ttl_kept(full, got, t0, t1)
        counts = compare(full, got, label="TTL: ")
        gone = {t: before[t] - counts[t] for t in TABLES if before[t] != counts[t]}
        for t in ("chain_metrics_block", "chain_metrics_1m", "chain_metrics_1h",
                  "contract_metrics_1h", "active_addresses", "contract_senders"):
            if not gone.get(t):
                raise Mismatch(f"TTL: nothing of {t} expired: the chain is too short")
        for t in ("chain_metrics_1h", "contract_metrics_1h"):
            if not counts.get(t):
                raise Mismatch(f"TTL: every row of {t} went")
        if gone.get("chain_metrics_1d"):
            raise Mismatch("TTL: 1d rows expired though kept forever")
        print(f"TTL: exactly the rows past their retention by the server's clock (and written "
              f"more than the slack ago) went ({ambiguous} at the edge during the merge), every "
              "row left exact: " + " ".join(f"{t}={n}" for t, n in gone.items()))
        # another retention: MODIFY TTL; the hours forever: their TTL removed; ttl=off: none
        flags = [f if f != str(R.KEEP["1h"]) else str(40 * 3600) for f in R.FLAGS]
        backfill(bp, node, ch, mine_now(node, wl, 1), flags, "other retention")
        check_ttl_clauses(ch, TTL_DB, dict(effective(), **{"1h": 40 * 3600}),
                          "--retention-1h 144000")
        flags = [f if f != str(R.KEEP["1h"]) else "0" for f in R.FLAGS]
        backfill(bp, node, ch, mine_now(node, wl, 1), flags, "1h forever")
        check_ttl_clauses(ch, TTL_DB, dict(effective(), **{"1h": 0}), "--retention-1h 0")
        backfill(bp, node, ch, mine_now(node, wl, 1), flags, "ttl=off", "ttl=off")
        check_ttl_clauses(ch, TTL_DB, {k: 0 for k in effective()}, "ttl=off")
        # tables made before _written: a writer with ttl on adds it, then sets the TTLs; the rows
        # there are kept (they read the column's default when the TTL is applied)
        for t in PER_BLOCK + ROLLUPS:
            ch.sql(f"ALTER TABLE {TTL_DB}.{t} DROP COLUMN IF EXISTS _written")
        t0 = int(ch.sql("SELECT toUnixTimestamp(now())")[0][0])
        backfill(bp, node, ch, mine_now(node, wl, 1), R.FLAGS, "tables without _written")
        check_ttl_clauses(ch, TTL_DB, effective(), "tables without _written")
        mutations_done(ch, TTL_DB)
        ch.merge(TTL_DB, PER_BLOCK + ROLLUPS)
        for t in (t for t in PER_BLOCK + ROLLUPS if show_ttl(ch, TTL_DB, t)):
            first = ch.sql(f"SELECT count(), toUnixTimestamp(min(_written)) FROM {TTL_DB}.{t}")[0]
            if int(first[0]) and int(first[1]) < t0:
                raise Mismatch(f"{t}: a row written before the ALTER at {t0} has _written {first[1]}")
        print("tables without _written: the column added, the TTLs set, every row's _written "
              "at or after the ALTER (kept at least the slack)")


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with Chdb() as ch, tempfile.TemporaryDirectory(prefix="bp-ch-current-") as tmp:
        version = ch.sql("SELECT version()")[0][0]
        major, minor = (int(x) for x in version.split(".")[:2])
        print(f"ClickHouse {version} (chDB's engine, chdb_http.py's HTTP)")
        if (major, minor) < (21, 6):
            raise Mismatch(f"version() {version}: not a current server")
        ttl(blockpipe, ch)
        H.history(blockpipe, ch, "", "history", ttl=True)
        H.history(blockpipe, ch, "ttl=off", "history_off")
        sc = Scenario(blockpipe, ChBackend(ch, DB), tmp, SEED, ml=False)
        try:
            sc.run(utc)
            ch.merge(DB, PER_BLOCK + ROLLUPS)
            exp = sc.check("all merged")
            sc.queries(exp, utc)
        finally:
            sc.close()
        check_types(ch, DB)
    print("PASS")


if __name__ == "__main__":
    main()
