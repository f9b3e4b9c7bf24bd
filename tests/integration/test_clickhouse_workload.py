"""The anvil random workload into ClickHouse: every value checked against the node.

A real ClickHouse (Debian's 18.16 server, tests/tools/clickhouse.py: own config, temp dir, free
loopback ports) and an anvil node with random traffic (legacy / EIP-2930 / EIP-1559 txs, values
above 2^64, deployments, log-emitting and reverting calls). Each write goes into its own
database and must hold exactly the node's chain: blocks / transactions / logs read with FINAL
equal eth_getBlockByNumber + eth_getBlockReceipts column by column (FixedString hashes as
0x-hex, amounts as exact decimal text in String columns on 18.16, UInt64 gas), sum(_sign) equals
FINAL's row count, and the checkpoint is the head (tests/tools/rowcheck.py).
  migrate     `blockpipe migrate clickhouse://...` creates the schema (version 4), a second run
              says it is up to date; the tables' types are the ones for this server
  native      backfill with the default Native inserts; then with a URL that names no
              database: it goes to the default database, gtp
  rowbinary   the same with --clickhouse-url http://... --clickhouse-db --clickhouse-format
              rowbinary and gzip, then CLICKHOUSE_URL / CLICKHOUSE_DB from the environment
              with another SQLite output beside it
  tables      --clickhouse-tables blocks,logs writes those two only (transactions empty)
  refusals    a schema_migrations version newer than the program, a wrong password (refused
              at once, no retry) and a table list without blocks are refused with clear errors
"""

import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from pgcheck import Fail, blockpipe_bin, run  # noqa: E402
import rowcheck  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "11"))
MIN_TXS = 250
CHAIN = "31337"


def build_chain(node, rng):
    wl = Workload(node, seed=SEED)
    wl.setup()
    sent = 0
    while sent < MIN_TXS:
        k = rng.choice([0, 1, 5, 12, 20])
        wl.mine_batch(k)
        sent += k
        node.mine(rng.randrange(0, 3))
    return wl


def backfill(bp, node, head, *extra, env=None):
    rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                   "--batch-size", "25", *extra], env=env)
    if rc != 0:
        raise Fail(f"backfill {' '.join(extra)}: exit {rc}:\n{out[-3000:]}")
    return out


def expect_exact(ch, db, data, label):
    counts = rowcheck.ch_exact(ch, db, data, CHAIN, label)
    cps = rowcheck.ch_checkpoints(ch, db, CHAIN)
    want = {"clickhouse": (len(data) - 1, data[-1][0]["hash"])}
    if cps != want:
        raise Fail(f"{label}: checkpoints {cps}, want {want}")
    print(f"[{label}] OK: blocks={counts['blocks']} txs={counts['transactions']} "
          f"logs={counts['logs']}, every field")
    return counts


def migrate(bp, ch):
    url = ch.url("mig")
    for want in ("migrated from version 0 to 6", "is up to date (version 6"):
        rc, out = run([bp, "migrate", url])
        if rc != 0 or want not in out or "bp:bp@" in out:
            raise Fail(f"migrate: exit {rc}, want '{want}' (and no password):\n{out}")
    types = dict((n, t) for n, t in ch.sql(
        "SELECT name, type FROM system.columns WHERE database = 'mig' AND table = "
        "'transactions'"))
    want = {"value": "Nullable(String)", "hash": "FixedString(32)",
            "block_hash": "FixedString(32)", "to_address": "Nullable(FixedString(20))",
            "gas": "Nullable(UInt64)", "_sign": "Int8", "_seq": "UInt64"}
    got = {k: types.get(k) for k in want}
    if got != want:
        raise Fail(f"migrate: transactions column types {got}, want {want}")
    engine = ch.sql("SELECT engine FROM system.tables WHERE database = 'mig' AND name = "
                    "'logs'")
    if engine != [["CollapsingMergeTree"]]:
        raise Fail(f"migrate: logs engine {engine}")
    views = ch.sql("SELECT name FROM system.tables WHERE database = 'mig' AND engine = 'View'"
                   " ORDER BY name")
    if [v[0] for v in views] != sorted(["arch_transactions_current"] + [
            f"{k}_metrics_{g}_v" for k in ("chain", "contract") for g in ("1d", "1h", "1m")]):
        raise Fail(f"migrate: views {views}, want the six rollup views and the Arch one")
    print("[migrate] OK: version 6 (with the derived tables, the Arch tables and the views), then up to date; "
          "18.16 types (String amounts)")


def refusals(bp, ch, node, head):
    ch.sql("CREATE DATABASE IF NOT EXISTS newer")
    ch.sql("CREATE TABLE newer.schema_migrations (version UInt32, description String, "
           "applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version")
    ch.sql("INSERT INTO newer.schema_migrations VALUES (7, 'from the future', now())")
    rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                   "--output", ch.url("newer")])
    if rc == 0 or "schema version 7 is newer than this blockpipe knows (6)" not in out:
        raise Fail(f"refusals: a newer schema: exit {rc}:\n{out[-2000:]}")
    rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                   "--output", ch.url("pw", password="wrong"), "--wait-for-db", "60"],
                  timeout=60)
    if rc == 0 or "cannot connect (attempt" in out or "wrong" in out.replace(
            "Wrong password", ""):
        raise Fail(f"refusals: a wrong password: exit {rc}, want a failure at once, no retry "
                   f"and no password shown:\n{out[-2000:]}")
    if "password" not in out.lower():
        raise Fail(f"refusals: the error does not name the password problem:\n{out[-2000:]}")
    rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", "1",
                   "--output", ch.url("x", query="tables=logs")])
    if rc != 2 or "the blocks table is needed" not in out:
        raise Fail(f"refusals: tables=logs: exit {rc}, want 2:\n{out[-2000:]}")
    print("[refusals] OK: newer schema, wrong password (no retry), no blocks table")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-ch-workload-")
    try:
        with ClickHouse() as ch, Anvil() as node:
            build_chain(node, rng)
            head = node.block_number()
            data = rowcheck.fetch(node.url, range(head + 1))
            print(f"chain: {head + 1} blocks, "
                  f"{sum(len(b['transactions']) for b, _ in data)} txs")
            migrate(bp, ch)
            backfill(bp, node, head, "--output", ch.url("native"))
            expect_exact(ch, "native", data, "native")
            # a URL without a database: the default, gtp (the queries name gtp.)
            backfill(bp, node, head, "--output", ch.url("").rstrip("/"))
            expect_exact(ch, "gtp", data, "no database in the URL: gtp")
            http = f"http://bp:bp@127.0.0.1:{ch.http_port}"
            out = backfill(bp, node, head, "--clickhouse-url", http + "?compression=gzip",
                           "--clickhouse-db", "rb", "--clickhouse-format", "rowbinary")
            if "RowBinary inserts (gzip)" not in out or "bp:bp@" in out:
                raise Fail(f"rowbinary: the log does not say RowBinary (gzip), or shows the "
                           f"password:\n{out[-2000:]}")
            expect_exact(ch, "rb", data, "rowbinary + gzip via --clickhouse-url")
            db = os.path.join(tmp.name, "side.db")
            env = dict(os.environ, CLICKHOUSE_URL=http, CLICKHOUSE_DB="envdb")
            backfill(bp, node, head, "--output", f"sqlite:{db}", env=env)
            expect_exact(ch, "envdb", data, "CLICKHOUSE_URL beside sqlite")
            rowcheck.sqlite_exact(db, data, CHAIN, "the SQLite output beside it")
            backfill(bp, node, head, "--output", ch.url("two"), "--clickhouse-tables",
                     "blocks,logs")
            n = ch.sql("SELECT count() FROM two.transactions")[0][0]
            logs = ch.sql("SELECT count() FROM two.logs FINAL")[0][0]
            want_logs = sum(len(r["logs"]) for _, rs in data for r in rs)
            if n != "0" or int(logs) != want_logs:
                raise Fail(f"tables: {n} transactions (want 0), {logs} logs (want {want_logs})")
            print(f"[tables] OK: blocks and {logs} logs, no transactions")
            refusals(bp, ch, node, head)
        print("OK")
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, rowcheck.Mismatch) as e:
        sys.exit(f"FAIL: {e}")
