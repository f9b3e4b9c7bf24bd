#!/usr/bin/env python3
"""What the TTL upgrade costs at open: a database made before `_written` and the TTLs (or with
ttl=off), opened by a writer with ttl on, gets `ALTER TABLE ... ADD COLUMN IF NOT EXISTS
_written` and `MODIFY TTL` per derived table (bp_ch_derived_sync_ttl); the server applies the
new TTL to the rows already there (MATERIALIZE TTL, a mutation) unless
materialize_ttl_after_modify = 0.

On ClickHouse 26.5's engine (chDB behind tests/tools/chdb_http.py, one process): a database made
by `blockpipe migrate ...?ttl=off`, chain_metrics_block's `_written` dropped (a table as made
before it), then N rows of it (one chain, a block every 2 s: N / 43200 day partitions; the other
columns random from generateRandom, less compressible than real rows). Then:
- open: `blockpipe backfill --to 0` of an anvil chain with the defaults (ttl on): the wall time
  of the process (the open's ALTERs and one block), and whether the mutation was done when it
  returned (the open blocks on it or not);
- the mutation: from the process's end until system.mutations says done;
- the same table again with the two statements by hand and SETTINGS
  materialize_ttl_after_modify = 0 (what the open would do with it).
Prints a table for docs/PERFORMANCE.md: seconds, the server's peak RSS (VmHWM), load average.
    BLOCKPIPE=build/blockpipe python3 bench/clickhouse_ttl_upgrade.py [--rows 1000000,10000000]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tools"))
from anvil import Anvil  # noqa: E402
from chdb_http import Chdb  # noqa: E402

TABLE = "chain_metrics_block"
FIXED = {"origin_key": "'c'", "block_number": "rowNumberInAllBlocks()",
         "block_timestamp": "1700000000 + 2 * rowNumberInAllBlocks()", "_sign": "1",
         "_rev": "0"}


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


def mutations_left(ch, db):
    return int(ch.sql(f"SELECT count() FROM system.mutations WHERE database = '{db}' "
                      "AND is_done = 0")[0][0])


def wait_mutations(ch, db):
    t = time.monotonic()
    while mutations_left(ch, db):
        time.sleep(0.05)
    return time.monotonic() - t


def fill(ch, bp, db, rows):
    subprocess.run([bp, "migrate", ch.url(db, query="ttl=off")], check=True,
                   capture_output=True)
    ch.sql(f"ALTER TABLE {db}.{TABLE} DROP COLUMN IF EXISTS _written")
    cols = ch.sql(f"SELECT name, type FROM system.columns WHERE database = '{db}' AND "
                  f"table = '{TABLE}' ORDER BY position")
    struct = ", ".join(f"{n} {t}" for n, t in cols)
    sel = ", ".join(FIXED.get(n, n) for n, _ in cols)
    t = time.monotonic()
    ch.post(f"INSERT INTO {db}.{TABLE} SELECT {sel} FROM generateRandom('{struct}', 1, 16, 4) "
            f"LIMIT {rows}", timeout=3600,
            params={"max_partitions_per_insert_block": "0", "max_insert_threads": "2"})
    ch.merge(db, (TABLE,), timeout=3600)
    parts = ch.sql(f"SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE database = "
                   f"'{db}' AND table = '{TABLE}' AND active")[0]
    return time.monotonic() - t, int(parts[0]), int(parts[1])


def backfill(bp, node, ch, db):
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", ch.url(db), "--chain", "c",
                        "--from", "0", "--to", "0"], capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(f"backfill: {p.stderr[-2000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--how", default="open,reopen,materialize,no_materialize",
                    help="which of the runs (reopen: open's database again, the open's fixed "
                         "cost; materialize, no_materialize: the statements by hand)")
    a = ap.parse_args()
    bp = os.environ.get("BLOCKPIPE", os.path.join(HERE, "..", "build", "blockpipe"))
    out = []
    with Chdb() as ch, Anvil([]) as node:
        pid = ch.proc.pid
        for rows in (int(r) for r in a.rows.split(",")):
            ttl = None
            # the TTL the open sets (the defaults), from an open of an empty database
            if ttl is None:
                backfill(bp, node, ch, "up_ttltext")
                ttl = ch.sql("SELECT create_table_query FROM system.tables WHERE database = "
                             f"'up_ttltext' AND name = '{TABLE}'")[0][0]
                ttl = ttl[ttl.index(" TTL ") + 1:].split(" SETTINGS ")[0]
            for how in a.how.split(","):
                db = f"up_{how if how != 'reopen' else 'open'}_{rows}"
                load0 = os.getloadavg()[0]
                fill_s, parts, size = fill(ch, bp, db, rows) if how != "reopen" else (0, 0, 0)
                t = time.monotonic()
                if how in ("open", "reopen"):
                    backfill(bp, node, ch, db)
                else:
                    # the open's two statements, by hand, with or without the materialization
                    ch.sql(f"ALTER TABLE {db}.{TABLE} ADD COLUMN IF NOT EXISTS _written "
                           "DateTime DEFAULT now()")
                    ch.post(f"ALTER TABLE {db}.{TABLE} MODIFY {ttl}",
                            params={"materialize_ttl_after_modify": "1" if how == "materialize"
                                    else "0"}, timeout=3600)
                opened = time.monotonic() - t
                left = mutations_left(ch, db)
                mut = wait_mutations(ch, db)
                load1 = os.getloadavg()[0]
                out.append((rows, how, parts, size, fill_s, opened, left, mut, hwm(pid),
                            f"{load0:.1f}-{load1:.1f}"))
                print(out[-1], flush=True)
            for how in (h for h in a.how.split(",") if h != "reopen"):
                ch.sql(f"DROP DATABASE up_{how}_{rows}")
    print("| rows | how | parts | MiB on disk | open s | mutations left at return | "
          "mutation s after | server peak RSS MiB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in out:
        print(f"| {r[0]:,} | {r[1]} | {r[2]} | {r[3] / 2**20:.0f} | {r[5]:.2f} | {r[6]} | "
              f"{r[7]:.2f} | {r[8]} | {r[9]} |")


if __name__ == "__main__":
    main()
