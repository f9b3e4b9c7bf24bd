"""ClickHouse: a batch that fails to encode mid-INSERT leaves nothing visible.

The encoders follow the column types the server has; a value that does not fit one stops the
output. Each table's rows are one INSERT per batch, encoded a part at a time while it is sent,
so by then earlier tables of the batch are written and parts of this one have reached the
server (which, 18.16 at least, commits what it parsed of a chunked body cut at a chunk's end).
Those rows must not stay visible until the next start's recovery: the output takes the batch
back before it stops. Here a table is made with block_number UInt8, so block 256 does not fit:
blocks 240..249 are backfilled, then 250..269 with 1-block parts (the batch that holds block
256 has sent its rows of the tables before by then); the backfill must fail naming the
column, and every table (raw, and derived with the second table) must hold exactly what it
held after the first backfill. Once for the raw `transactions` (blocks, the
table before it, already written) and once for the derived `contract_metrics_block` (the raw
tables and chain_metrics_block written)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
TABLES = ("blocks", "transactions", "logs", "chain_metrics_block", "contract_metrics_block",
          "token_transfers", "active_addresses", "contract_senders")


def fail(msg):
    sys.exit("FAIL: " + msg)


def narrow(ch, db, table):
    """table re-made with block_number UInt8 (the migration keeps a table that exists)."""
    ddl = ch.sql(f"SHOW CREATE TABLE {db}.{table}")[0][0]
    if "block_number UInt64" not in ddl:
        fail(f"{table}'s DDL has no 'block_number UInt64': {ddl}")
    ch.sql(f"DROP TABLE {db}.{table}")
    ch.sql(ddl.replace("block_number UInt64", "block_number UInt8", 1))


def signs(ch, db):
    return {t: ch.sql(f"SELECT count(), sum(_sign) FROM {db}.{t}")[0] for t in TABLES}


def backfill(ch, node, db, first, last, env=None):
    return subprocess.run([BP, "backfill", "--rpc", node.urls[0], "--from", str(first), "--to",
                           str(last),
                           "--batch-size", "100", "--metrics", "on", "--output", ch.url(db)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


def case(ch, node, db, table):
    p = subprocess.run([BP, "migrate", ch.url(db)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail(f"migrate exited {p.returncode}: {p.stderr[-2000:]}")
    narrow(ch, db, table)
    p = backfill(ch, node, db, 240, 249)
    if p.returncode != 0:
        fail(f"{db}: the first backfill exited {p.returncode}: {p.stderr[-3000:]}")
    before = signs(ch, db)
    if before["blocks"] != ["10", "10"] or before[table][0] == "0":
        fail(f"{db}: after blocks 240..249 the tables hold {before}")
    p = backfill(ch, node, db, 250, 269, {"BP_CH_PART_BYTES": "1"})
    if p.returncode == 0 or f"column {table}.block_number" not in p.stderr:
        fail(f"{db}: the backfill of 250..269 exited {p.returncode} without naming "
             f"{table}.block_number: {p.stderr[-3000:]}")
    after = signs(ch, db)
    # the batch's rows may be there with their -1 rows (count), never counting (sum of signs)
    changed = {t: (before[t], after[t]) for t in TABLES if after[t][1] != before[t][1]}
    if changed:
        fail(f"{db}: the failed batch left rows counting in {changed} (count, sum(_sign) "
             f"before, after)\n{p.stderr[-2000:]}")
    left = ch.sql(f"SELECT count() FROM (SELECT number, hash FROM {db}.blocks GROUP BY number, "
                  f"hash HAVING sum(_sign) != 0 AND number > 249)")
    if left != [["0"]]:
        fail(f"{db}: blocks above 249 still count: {left}")
    print(f"{db}: {table} failed at block 256; counting rows as before: {after['blocks']} blocks")


def main():
    print(__doc__.strip().splitlines()[0])
    node = Simnode(BP, ["--length", "270", "--txs-per-block", "20-60", "--block-time", "0"])
    try:
        with ClickHouse() as ch:
            case(ch, node, "encraw", "transactions")
            case(ch, node, "encder", "contract_metrics_block")
    finally:
        node.kill()
    print("OK: nothing of the failed batch counts, raw or derived")


if __name__ == "__main__":
    main()
