#!/usr/bin/env python3
"""PostgreSQL output benchmark: rows/s into PostgreSQL through blockpipe's sink vs a plain libpq
COPY of the same rows from a file (the database's own limit on this machine), for blocks of
200 transactions; plus the design measurements behind the sink: binary vs text COPY, bytea vs
hex text for hashes, direct COPY vs staging tables + INSERT ... ON CONFLICT.

Starts its own PostgreSQL (tests/tools/pg.py, default durability settings: fsync on,
synchronous_commit on). Every measurement loads empty tables with the same indexes. Rounds are
interleaved; medians are reported. Replaces only its own section of docs/PERFORMANCE.md,
between <!-- pg:begin --> and <!-- pg:end -->."""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from pg import Postgres, pg_bin_dir  # noqa: E402
import perfdoc  # noqa: E402 (bench/ is sys.path[0] when run as a script)

TABLES = ("blocks", "transactions", "logs")


def parse(out):
    m = re.search(r"rows=(\d+) seconds=([\d.]+)", out)
    if not m:
        sys.exit(f"pg_bench: unexpected output {out!r}")
    return int(m.group(1)), float(m.group(2))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


class Bench:
    def __init__(self, a, pg, tmp):
        self.a, self.pg, self.tmp = a, pg, tmp
        self.n = 0
        self.conninfo = pg.url()

    def schema(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def sink(self, mode="auto"):
        """rows/s through the sink into a fresh schema; returns (rows/s, schema)."""
        s = self.schema("sink")
        out = run([self.a.pg_bench, "sink", self.pg.url(query=f"schema={s}&mode={mode}"),
                   str(self.a.blocks), str(self.a.txs), str(self.a.batch)])
        rows, secs = parse(out)
        return rows / secs, s

    def empty_schema(self, like):
        """A fresh schema with the sink's tables and indexes (blockpipe migrate)."""
        s = self.schema("copy")
        run([self.a.blockpipe, "migrate", self.pg.url(), "--pg-schema", s])
        return s

    def dump(self, schema, fmt, select=None):
        files = {}
        for t in TABLES:
            path = os.path.join(self.tmp, f"{schema}.{t}.{fmt}")
            src = f"({select[t]})" if select else f"{schema}.{t}"
            run([os.path.join(pg_bin_dir(), "psql"), "-X", "-q", self.pg.url(), "-c",
                 f"\\copy {src} TO '{path}' (FORMAT {fmt})"])
            files[t] = path
        return files

    def copy(self, schema, files, fmt):
        rows = secs = 0
        for t in TABLES:
            r, s = parse(run([self.a.pg_bench, "copy", self.conninfo, f"{schema}.{t}",
                              files[t], fmt]))
            rows, secs = rows + r, secs + s
        return rows / secs

    def size(self, schema):
        return int(self.pg.sql(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
            f" ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relkind = 'r'")[0][0])

    def text_hash_schema(self, src):
        """The same tables with every bytea column as '0x' hex text, same keys and indexes;
        returns (schema, select per table that converts src's rows)."""
        s = self.schema("hex")
        self.pg.sql(f"CREATE SCHEMA {s}")
        select = {}
        for t in TABLES:
            cols = self.pg.sql(f"SELECT column_name, data_type FROM information_schema.columns"
                               f" WHERE table_schema = '{src}' AND table_name = '{t}'"
                               f" ORDER BY ordinal_position")
            exprs = [f"'0x' || encode({c}, 'hex') AS {c}" if ty == "bytea" else c
                     for c, ty in cols]
            select[t] = f"SELECT {', '.join(exprs)} FROM {src}.{t}"
            self.pg.sql(f"CREATE TABLE {s}.{t} AS {select[t]} WITH NO DATA")
        self.pg.sql(
            f"ALTER TABLE {s}.blocks ADD PRIMARY KEY (chain, number);"
            f"CREATE INDEX ON {s}.blocks(hash);"
            f"ALTER TABLE {s}.transactions ADD PRIMARY KEY (chain, block_number, transaction_index);"
            f"CREATE INDEX ON {s}.transactions(hash);"
            f"CREATE INDEX ON {s}.transactions(from_address, block_number);"
            f"CREATE INDEX ON {s}.transactions(to_address, block_number);"
            f"ALTER TABLE {s}.logs ADD PRIMARY KEY (chain, block_number, log_index);"
            f"CREATE INDEX ON {s}.logs(address, topic0, block_number)")
        return s, select


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-bench", dest="pg_bench", required=True)
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--blocks", type=int, default=400)
    ap.add_argument("--txs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if not pg_bin_dir():
        print("pg_bench: no PostgreSQL server installed (bash scripts/install-deps.sh --test); "
              "skipping the PostgreSQL benchmark")
        return

    res = {k: [] for k in ("sink", "staging", "copy_bin", "copy_text", "copy_hex")}
    sizes = {}
    with Postgres(fast=False) as pg, tempfile.TemporaryDirectory() as tmp:
        b = Bench(a, pg, tmp)
        _, first = b.sink()  # warm-up, and the rows every plain COPY loads
        files = {f: b.dump(first, f) for f in ("binary", "text")}
        hex_src, select = b.text_hash_schema(first)
        hex_files = b.dump(first, "binary", select)
        pg.sql(f"DROP SCHEMA {hex_src} CASCADE")
        for r in range(a.rounds):
            v, s = b.sink()
            res["sink"].append(v)
            sizes["bytea"] = b.size(s)
            pg.sql(f"DROP SCHEMA {s} CASCADE")
            v, s = b.sink("staging")
            res["staging"].append(v)
            pg.sql(f"DROP SCHEMA {s} CASCADE")
            for fmt, key in (("binary", "copy_bin"), ("text", "copy_text")):
                s = b.empty_schema(first)
                res[key].append(b.copy(s, files[fmt], fmt))
                pg.sql(f"DROP SCHEMA {s} CASCADE")
            s, _ = b.text_hash_schema(first)
            res["copy_hex"].append(b.copy(s, hex_files, "binary"))
            sizes["text"] = b.size(s)
            pg.sql(f"DROP SCHEMA {s} CASCADE")
            print(f"round {r + 1}: " + " ".join(f"{k}={v[-1]:.0f}" for k, v in res.items()),
                  flush=True)
        rows = sum(int(pg.sql(f"SELECT count(*) FROM {first}.{t}")[0][0]) for t in TABLES)

    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["copy_bin"]
    text = f"""## PostgreSQL output (write-bound)

Measured by `make bench` (bench/pg_bench.py, bench/pg_bench.c) on {os.cpu_count()} cores
({platform.machine()}), PostgreSQL 15 on the same machine with default durability (fsync on,
synchronous_commit on). {a.blocks} synthetic blocks of {a.txs} transactions (about one log per
transaction: {rows} rows in blocks + transactions + logs), written in batches of {a.batch}
blocks into empty tables with the schema's primary keys and indexes; median of {a.rounds}
interleaved rounds. "plain COPY" is one libpq `COPY ... FROM STDIN` per table of a file
holding exactly the same rows (dumped from the sink's own output): the database's limit.

| what | rows/s | vs plain binary COPY |
|---|---|---|
| plain libpq COPY, binary format (bytea hashes) | {med['copy_bin']:.0f} | 1.00 |
| plain libpq COPY, text format (bytea hashes) | {med['copy_text']:.0f} | {med['copy_text'] / base:.2f} |
| plain libpq COPY, binary, hashes as 0x-hex `text` | {med['copy_hex']:.0f} | {med['copy_hex'] / base:.2f} |
| **blockpipe sink → PostgreSQL** (binary COPY straight into the tables) | **{med['sink']:.0f}** | **{med['sink'] / base:.2f}** |
| blockpipe sink, staging tables + `INSERT ... ON CONFLICT DO NOTHING` | {med['staging']:.0f} | {med['staging'] / base:.2f} |

Target: the sink at >= 0.70 of plain COPY. Table + index size of the same rows: bytea
{sizes['bytea'] / 2**20:.0f} MiB, hex text {sizes['text'] / 2**20:.0f} MiB.

How the sink's design was chosen (read the ratios; single rows/s figures are noisy here):
- binary vs text COPY of the same rows: text at {med['copy_text'] / base:.2f} of binary on
  the server. Binary is kept: it needs no escaping of text and JSON values and no decimal
  text for bigint; the two formats cost the server about the same.
- bytea vs 0x-hex text for hashes, addresses and byte strings: text at
  {med['copy_hex'] / base:.2f} of bytea in rows/s and {sizes['text'] / sizes['bytea']:.2f}x
  the disk (heap and every hash/address index), so bytea.
- staging every batch (COPY into a temp table, then `INSERT ... SELECT ... ON CONFLICT DO
  NOTHING`) writes every row twice: {med['staging'] / med['sink']:.2f} of direct COPY. So
  the sink copies straight into the tables and stages only a batch that meets rows already
  stored (another process wrote them: the unique violation rolls the transaction back and
  the batch is written again through staging); a batch the checkpoint already covers (a
  retry after a lost COMMIT reply) is skipped by the checkpoint read in the BEGIN round trip.
- the sink can beat the plain COPY baseline: the baseline loads each table in one statement
  (one large transaction), the sink commits every {a.batch} blocks.
"""
    perfdoc.write_section(a.out, "pg", text)
    print(text)


if __name__ == "__main__":
    main()
