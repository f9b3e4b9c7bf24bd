"""ClickHouse: a database of schema version 2 is upgraded to 5 in place, its columns in the order
of one made new.

`blockpipe migrate` makes a new database (version 5); the columns version 3 added are dropped
and the schema_migrations rows of 3 to 5 removed (what a version 2 database looks like; version
4's Arch tables and version 5's resync_floor columns stay: every step is IF NOT EXISTS or looks
first); `migrate` again must say "migrated from version 2 to 5" and leave every raw table
with exactly the columns, in the order, of the new one (ALTER ... ADD COLUMN ... AFTER the column before it)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from clickhouse import ClickHouse  # noqa: E402

V3 = [("blocks", "extra"), ("logs", "extra"), ("transactions", "source_hash"),
      ("transactions", "receipt_l1_fee"), ("transactions", "receipt_extra")]


def columns(ch):
    return [(t, r[0], r[1]) for t in ("blocks", "transactions", "logs")
            for r in ch.sql(f"DESCRIBE TABLE s.{t}")]


def migrate(bp, ch, want):
    r = subprocess.run([bp, "migrate", ch.url("s")], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or want not in r.stderr + r.stdout:
        sys.exit(f"FAIL: migrate exited {r.returncode}, want 0 and {want!r}:\n{r.stderr[-2000:]}")


def main():
    print(__doc__.strip().splitlines()[0])
    bp = os.environ["BLOCKPIPE"]
    with ClickHouse() as ch:
        migrate(bp, ch, "migrated from version 0 to 5")
        new = columns(ch)
        for t, c in V3:
            ch.sql(f"ALTER TABLE s.{t} DROP COLUMN {c}")
        ch.sql("CREATE TABLE s.sm2 AS s.schema_migrations")
        ch.sql("INSERT INTO s.sm2 SELECT * FROM s.schema_migrations WHERE version < 3")
        ch.sql("DROP TABLE s.schema_migrations")
        ch.sql("RENAME TABLE s.sm2 TO s.schema_migrations")
        if len(columns(ch)) != len(new) - len(V3):
            sys.exit("FAIL: the version 3 columns were not dropped")
        migrate(bp, ch, "migrated from version 2 to 5")
        got = columns(ch)
        if got != new:
            sys.exit(f"FAIL: upgraded columns differ from a new database's:\n{got}\n{new}")
    print(f"OK: {len(new)} columns, same names, types and order")


if __name__ == "__main__":
    main()
