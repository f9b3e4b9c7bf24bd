#!/usr/bin/env python3
"""PostgreSQL output benchmark: rows/s into PostgreSQL through blockpipe's sink vs the same
rows written by plain libpq doing exactly the sink's work: the same tables, primary keys and
indexes, the same server and durability, one transaction per batch of blocks with the
checkpoint read at BEGIN and upserted before COMMIT, binary COPY of each table (the
database's own limit for that work). Plus the measurements behind the sink's design, all in
that same transaction shape: binary vs text COPY, bytea vs hex text for hashes, direct COPY vs
staging tables + INSERT ... ON CONFLICT; and, for scale only, every row in one transaction.

Starts its own PostgreSQL (tests/tools/pg.py, default durability: fsync on,
synchronous_commit on). Every measurement loads empty tables with the same indexes. Rounds are
interleaved; medians of rows/s and the highest peak RSS of the client process are reported.
Replaces only its own section of docs/PERFORMANCE.md, between <!-- pg:begin --> and
<!-- pg:end -->; BENCH_QUICK=1 runs it small."""
import argparse
import os
import platform
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "tools"))
from pg import Postgres, pg_bin_dir  # noqa: E402
import perfdoc  # noqa: E402 (bench/ is sys.path[0] when run as a script)

TABLES = ("blocks", "transactions", "logs")
ORDER = {"blocks": ("number", "chain, number"),
         "transactions": ("block_number", "chain, block_number, transaction_index"),
         "logs": ("block_number", "chain, block_number, log_index")}


def parse(out, expect=None):
    """(rows, seconds) from pg_bench's line; every writer must store all the rows."""
    m = re.search(r"rows=(\d+) seconds=([\d.]+)", out)
    if not m:
        sys.exit(f"pg_bench: unexpected output {out!r}")
    if expect is not None and int(m.group(1)) != expect:
        sys.exit(f"pg_bench: stored {m.group(1)} rows, the sink's output has {expect}")
    return int(m.group(1)), float(m.group(2))


class Bench:
    def __init__(self, a, pg, tmp):
        self.a, self.pg, self.tmp = a, pg, tmp
        self.n = 0
        self.rows = None  # what the first sink run stored: every later run must store as many
        self.batches = [(lo, min(lo + a.batch - 1, a.blocks))
                        for lo in range(1, a.blocks + 1, a.batch)]

    def schema(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def sink(self, mode="auto"):
        """(rows/s, peak RSS MiB, schema) through the sink into a fresh schema."""
        s = self.schema("sink")
        r = perfdoc.timed([self.a.pg_bench, "sink",
                           self.pg.url(query=f"schema={s}&mode={mode}"), str(self.a.blocks),
                           str(self.a.txs), str(self.a.batch)])
        rows, secs = parse(r.out, self.rows)
        return rows / secs, r.rss_mib, s

    def empty_schema(self):
        """A fresh schema with the sink's tables and indexes (blockpipe migrate)."""
        s = self.schema("copy")
        perfdoc.timed([self.a.blockpipe, "migrate", self.pg.url(), "--pg-schema", s])
        return s

    def dump(self, src, fmt, batches, select=None):
        """The rows of src as COPY files per batch (DIR/<i>.<table>, DIR/<i>.checkpoint, as
        pg_bench copy reads them), in key order (the order the sink inserts); returns DIR."""
        d = tempfile.mkdtemp(dir=self.tmp, prefix=f"{fmt}-")
        script = []
        for i, (lo, hi) in enumerate(batches):
            for t in TABLES:
                col, order = ORDER[t]
                what = select[t] if select else f"SELECT * FROM {src}.{t}"
                script.append(f"\\copy ({what} WHERE {col} BETWEEN {lo} AND {hi} ORDER BY "
                              f"{order}) TO '{d}/{i}.{t}' (FORMAT {fmt})")
            script.append(f"\\copy (SELECT number, encode(hash, 'hex') FROM {src}.blocks WHERE "
                          f"number = {hi}) TO '{d}/{i}.checkpoint'")
        path = os.path.join(self.tmp, "dump.sql")
        with open(path, "w") as f:
            f.write("\n".join(script) + "\n")
        perfdoc.timed([os.path.join(pg_bin_dir(), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                       self.pg.url(), "-f", path])
        return d

    def copy(self, schema, files, fmt, batches):
        """(rows/s, peak RSS MiB) of the plain libpq writer into schema."""
        r = perfdoc.timed([self.a.pg_bench, "copy", self.pg.url(), schema, files,
                           str(len(batches)), fmt])
        rows, secs = parse(r.out, self.rows)
        return rows / secs, r.rss_mib

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
            f"CREATE TABLE {s}.checkpoints (LIKE {src}.checkpoints INCLUDING ALL);"
            f"ALTER TABLE {s}.blocks ADD PRIMARY KEY (chain, number);"
            f"CREATE INDEX ON {s}.blocks(hash);"
            f"ALTER TABLE {s}.transactions ADD PRIMARY KEY (chain, block_number, transaction_index);"
            f"CREATE INDEX ON {s}.transactions(hash);"
            f"CREATE INDEX ON {s}.transactions(from_address, block_number);"
            f"CREATE INDEX ON {s}.transactions(to_address, block_number);"
            f"ALTER TABLE {s}.logs ADD PRIMARY KEY (chain, block_number, log_index);"
            f"CREATE INDEX ON {s}.logs(address, topic0, block_number)")
        return s, select


KEYS = ("copy_bin", "sink", "copy_text", "copy_hex", "staging", "copy_one")


def measure(a, pg, tmp):
    b = Bench(a, pg, tmp)
    _, _, first = b.sink()  # warm-up, and the rows every plain writer loads
    b.rows = sum(int(pg.sql(f"SELECT count(*) FROM {first}.{t}")[0][0]) for t in TABLES)
    one = [(1, a.blocks)]
    files = {"binary": b.dump(first, "binary", b.batches), "text": b.dump(first, "text", b.batches),
             "one": b.dump(first, "binary", one)}
    hex_src, select = b.text_hash_schema(first)
    files["hex"] = b.dump(first, "binary", b.batches, select)
    pg.sql(f"DROP SCHEMA {hex_src} CASCADE")
    res = {k: [] for k in KEYS}
    sizes = {}
    for r in range(a.rounds):
        v, m, s = b.sink()
        res["sink"].append((v, m))
        sizes["bytea"] = b.size(s)
        pg.sql(f"DROP SCHEMA {s} CASCADE")
        v, m, s = b.sink("staging")
        res["staging"].append((v, m))
        pg.sql(f"DROP SCHEMA {s} CASCADE")
        for key, fmt, f, batches in (("copy_bin", "binary", files["binary"], b.batches),
                                     ("copy_text", "text", files["text"], b.batches),
                                     ("copy_one", "binary", files["one"], one)):
            s = b.empty_schema()
            res[key].append(b.copy(s, f, fmt, batches))
            pg.sql(f"DROP SCHEMA {s} CASCADE")
        s, _ = b.text_hash_schema(first)
        res["copy_hex"].append(b.copy(s, files["hex"], "binary", b.batches))
        sizes["text"] = b.size(s)
        pg.sql(f"DROP SCHEMA {s} CASCADE")
        print(f"round {r + 1}: " + " ".join(f"{k}={v[-1][0]:.0f}/{v[-1][1]:.0f}MiB"
                                            for k, v in res.items()), flush=True)
    return res, sizes, b.rows


def section(a, res, sizes, rows):
    med = {k: statistics.median(v for v, _ in res[k]) for k in KEYS}
    rss = {k: max(m for _, m in res[k]) for k in KEYS}
    base = med["copy_bin"]

    def row(key, label, bold=False):
        b = "**" if bold else ""
        return (f"| {b}{label}{b} | {b}{med[key]:.0f}{b} | {rss[key]:.0f} | "
                f"{b}{med[key] / base:.2f}{b} |")

    ntx = len(range(1, a.blocks + 1, a.batch))
    return f"""Measured by `make bench` (bench/pg_bench.py, bench/pg_bench.c) on
{os.cpu_count()} cores ({platform.machine()}), PostgreSQL 15 on the same machine with default durability (fsync on,
synchronous_commit on). {a.blocks} synthetic blocks of {a.txs} transactions (about one log per
transaction: {rows} rows in blocks + transactions + logs) into empty tables with the schema's
primary keys and indexes; median of {a.rounds} interleaved rounds.

The limit ("plain libpq") does the sink's work and nothing else: the same rows (dumped from
the sink's own output, in key order), the same tables, keys, indexes, server and durability,
and the same transaction shape — {ntx} transactions of {a.batch} blocks, each `BEGIN` + a read
of the checkpoint row, one `COPY ... FROM STDIN` per table, the checkpoint upsert +
`COMMIT`. Only the database work is timed on either side (the sink's blocks are built, the
baseline's files read, before each batch's clock starts). Peak RSS is the client process's
(wait4 on its PID): bench_pg holding one batch (the sink's synthetic blocks, or the
baseline's COPY files); the server is the same for every row.

| what | rows/s | peak RSS MiB | vs plain libpq |
|---|---|---|---|
{row("copy_bin", "plain libpq: binary COPY, bytea hashes, the sink's transactions (the limit)")}
{row("sink", "blockpipe sink → PostgreSQL (binary COPY straight into the tables)", True)}
{row("copy_text", "plain libpq: text COPY, same transactions")}
{row("copy_hex", "plain libpq: binary COPY, hashes as 0x-hex `text`, same transactions")}
{row("staging", "blockpipe sink, staging tables + `INSERT ... ON CONFLICT DO NOTHING`")}
{row("copy_one", "not the limit, for scale: plain libpq, binary COPY of every row in one "
        "transaction")}

Target: the sink at >= 0.70 of the limit. Table + index size of the same rows: bytea
{sizes['bytea'] / 2**20:.0f} MiB, hex text {sizes['text'] / 2**20:.0f} MiB.

Until issue 15 the baseline was the last row (one COPY per table of all rows, one
transaction) and the sink measured 1.33× of it: a different piece of work, not a limit. Here
one transaction for everything measured {med['copy_one'] / base:.2f} of {a.batch}-block
transactions.

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
"""


def main(a):
    if not pg_bin_dir():
        sys.exit("no PostgreSQL server installed (/usr/lib/postgresql/*/bin or $BP_PG_BIN; "
                 "bash scripts/install-deps.sh --test)")
    with Postgres(fast=False) as pg, tempfile.TemporaryDirectory() as tmp:
        res, sizes, rows = measure(a, pg, tmp)
    perfdoc.publish(a.out, "pg", section(a, res, sizes, rows))
    print(perfdoc.read_section(a.out, "pg"))


def args():
    q = perfdoc.quick()
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-bench", dest="pg_bench", required=True)
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--blocks", type=int, default=40 if q else 400)
    ap.add_argument("--txs", type=int, default=50 if q else 200)
    ap.add_argument("--batch", type=int, default=10 if q else 100)
    ap.add_argument("--rounds", type=int, default=1 if q else 3)
    return ap.parse_args()


if __name__ == "__main__":
    a = args()
    perfdoc.guarded(a.out, "pg", lambda: main(a))
