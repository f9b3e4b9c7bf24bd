#!/usr/bin/env python3
"""PostgreSQL's tables hold exactly the column table's columns (`blockpipe --help-columns`), and
the derived tables exactly the derived column table's (`blockpipe --help-derived`): names in
order, the type each logical type maps to, NOT NULL and the primary keys. ClickHouse's raw
tables likewise (Nullable unless NOT NULL or in the sort key, which is the key columns and the
block hash; then _sign and _seq). (SQLite, etl-csv and JSON lines are checked by
unit/test_columns.)"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from pg import Postgres  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402

PG_TYPE = {"int64": ("bigint", None), "uint64": ("numeric", "20"), "uint256": ("numeric", "78"),
           "hash": ("bytea", None), "address": ("bytea", None), "bytes": ("bytea", None),
           "text": ("text", None), "json": ("jsonb", None), "bool": ("boolean", None),
           "float": ("double precision", None)}


def columns(blockpipe, flag="--help-columns", key_cell=4, least=50):
    """(table, column, type, key) of every row; a derived row naming several tables (the
    grains of a rollup) is one row per table, tables in the order they are listed."""
    out = subprocess.run([blockpipe, flag], check=True, capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`"):
            for t in cells[0].split(", "):
                rows.append((t, cells[1].strip("`"), cells[2], cells[key_cell]))
    if len(rows) < least:
        sys.exit(f"FAIL: {flag} gave {len(rows)} columns:\n{out}")
    return sorted(rows, key=lambda r: [t for t, *_ in rows].index(r[0]))


# ClickHouse 18.16 (no UInt256: amounts as exact decimal text)
CH_TYPE = {"int64": "UInt64", "uint64": "UInt64", "uint256": "String",
           "hash": "FixedString(32)", "address": "FixedString(20)", "bytes": "String",
           "text": "String", "json": "String", "bool": "UInt8"}
CH_SORT = {"blocks": ["chain", "number", "hash"],
           "transactions": ["chain", "block_number", "block_hash", "transaction_index"],
           "logs": ["chain", "block_number", "block_hash", "log_index"]}


def clickhouse(blockpipe, want):
    with ClickHouse() as ch:
        r = subprocess.run([blockpipe, "migrate", ch.url("s")], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            sys.exit(f"FAIL: clickhouse migrate: {r.stderr}")
        got = {t: ch.sql(f"SELECT name, type FROM system.columns WHERE database = 's' AND "
                         f"table = '{t}'") for t in CH_SORT}
        sort = {t: ch.sql(f"SELECT sorting_key FROM system.tables WHERE database = 's' AND "
                          f"name = '{t}'")[0][0] for t in CH_SORT}
    bad = []
    for t, cols in CH_SORT.items():
        mine = [(c, typ, flag) for tt, c, typ, flag in want if tt == t]
        names = [c for c, _, _ in mine] + ["_sign", "_seq"]
        if [n for n, _ in got[t]] != names:
            bad.append(f"clickhouse {t}: columns {[n for n, _ in got[t]]}, want {names}")
            continue
        for (c, typ, flag), (_, ctype) in zip(mine, got[t]):
            w = CH_TYPE[typ]
            if flag not in ("key", "not null") and c not in cols:
                w = f"Nullable({w})"
            if ctype != w:
                bad.append(f"clickhouse {t}.{c}: {ctype}, expected {w} for {typ} ({flag})")
        if got[t][-2:] != [["_sign", "Int8"], ["_seq", "UInt64"]]:
            bad.append(f"clickhouse {t}: bookkeeping columns {got[t][-2:]}")
        if sort[t] != ", ".join(cols):
            bad.append(f"clickhouse {t}: sorting key {sort[t]!r}, want {', '.join(cols)!r}")
    if bad:
        sys.exit("FAIL:\n" + "\n".join(bad))
    print(f"ok: {len(want)} ClickHouse columns match the column table")


def main():
    blockpipe = os.environ["BLOCKPIPE"]
    raw = columns(blockpipe)
    clickhouse(blockpipe, raw)
    want = raw + columns(blockpipe, "--help-derived", 3, 100)
    tables = list(dict.fromkeys(t for t, *_ in want))
    with Postgres() as pg:
        r = subprocess.run([blockpipe, "migrate", pg.url(query="schema=s")], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            sys.exit(f"FAIL: migrate: {r.stderr}")
        names = ",".join(f"'{t}'" for t in tables)
        got = pg.sql("select table_name, column_name, data_type, coalesce(numeric_precision::text,"
                     " ''), is_nullable from information_schema.columns where table_schema = 's'"
                     f" and table_name in ({names}) order by array_position(array[{names}],"
                     " table_name::text), ordinal_position")
        keys = {(t, c) for t, c in pg.sql(
            "select tc.table_name, kcu.column_name from information_schema.table_constraints tc"
            " join information_schema.key_column_usage kcu using (constraint_schema,"
            " constraint_name) where tc.constraint_schema = 's'"
            " and tc.constraint_type = 'PRIMARY KEY'")}
    bad = []
    if [(t, c) for t, c, *_ in want] != [(r[0], r[1]) for r in got]:
        bad.append(f"columns differ:\n want {[(t, c) for t, c, *_ in want]}\n got  "
                   f"{[(r[0], r[1]) for r in got]}")
    for (t, c, typ, flag), (_, _, dtype, prec, nullable) in zip(want, got):
        wtype, wprec = PG_TYPE[typ]
        if dtype != wtype or (wprec and prec != wprec):
            bad.append(f"{t}.{c}: {dtype}({prec}), expected {wtype}({wprec}) for {typ}")
        if (nullable == "NO") != (flag in ("key", "not null")):
            bad.append(f"{t}.{c}: is_nullable={nullable} but the table says '{flag}'")
        if ((t, c) in keys) != (flag == "key"):
            bad.append(f"{t}.{c}: primary key membership differs from the table ('{flag}')")
    if bad:
        sys.exit("FAIL:\n" + "\n".join(bad))
    print(f"ok: {len(want)} PostgreSQL columns of {len(tables)} tables match the column tables")


if __name__ == "__main__":
    main()
