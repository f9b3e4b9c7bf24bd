#!/usr/bin/env python3
"""PostgreSQL's tables hold exactly the column table's columns (`blockpipe --help-columns`), and
the derived tables exactly the derived column table's (`blockpipe --help-derived`): names in
order, the type each logical type maps to, NOT NULL and the primary keys. (SQLite, etl-csv and
JSON lines are checked by unit/test_columns.)"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from pg import Postgres  # noqa: E402

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


def main():
    blockpipe = os.environ["BLOCKPIPE"]
    want = columns(blockpipe) + columns(blockpipe, "--help-derived", 3, 100)
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
