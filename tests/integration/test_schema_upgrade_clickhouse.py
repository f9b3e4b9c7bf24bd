"""ClickHouse: a database of schema version 2 is upgraded to 6 in place, its columns in the order
of one made new.

`blockpipe migrate` makes a new database (version 6); the columns version 3 added are dropped,
arch_blocks.merkle_root made FixedString(32) again (as version 4 made it before version 6 let
it be NULL) and the schema_migrations rows of 3 to 6 removed (what a version 2 database looks
like; version 4's Arch tables and version 5's resync_floor columns stay: every step is IF NOT
EXISTS or looks first); `migrate` again must say "migrated from version 2 to 6" and leave every
raw table and arch_blocks with exactly the columns, types and order of the new one (ALTER ...
ADD COLUMN ... AFTER the column before it; MODIFY COLUMN merkle_root Nullable(...))."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from clickhouse import ClickHouse  # noqa: E402

V3 = [("blocks", "extra"), ("logs", "extra"), ("transactions", "source_hash"),
      ("transactions", "receipt_l1_fee"), ("transactions", "receipt_extra")]


def columns(ch):
    return [(t, r[0], r[1]) for t in ("blocks", "transactions", "logs", "arch_blocks")
            for r in ch.sql(f"DESCRIBE TABLE s.{t}")]


def migrate(bp, ch, want):
    r = subprocess.run([bp, "migrate", ch.url("s")], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or want not in r.stderr + r.stdout:
        sys.exit(f"FAIL: migrate exited {r.returncode}, want 0 and {want!r}:\n{r.stderr[-2000:]}")


def main():
    print(__doc__.strip().splitlines()[0])
    bp = os.environ["BLOCKPIPE"]
    with ClickHouse() as ch:
        migrate(bp, ch, "migrated from version 0 to 6")
        new = columns(ch)
        for t, c in V3:
            ch.sql(f"ALTER TABLE s.{t} DROP COLUMN {c}")
        if ("arch_blocks", "merkle_root", "Nullable(FixedString(32))") not in new:
            sys.exit("FAIL: a new database's arch_blocks.merkle_root is not Nullable")
        ch.sql("ALTER TABLE s.arch_blocks MODIFY COLUMN merkle_root FixedString(32)")
        ch.sql("CREATE TABLE s.sm2 AS s.schema_migrations")
        ch.sql("INSERT INTO s.sm2 SELECT * FROM s.schema_migrations WHERE version < 3")
        ch.sql("DROP TABLE s.schema_migrations")
        ch.sql("RENAME TABLE s.sm2 TO s.schema_migrations")
        if len(columns(ch)) != len(new) - len(V3):
            sys.exit("FAIL: the version 3 columns were not dropped")
        migrate(bp, ch, "migrated from version 2 to 6")
        got = columns(ch)
        if got != new:
            sys.exit(f"FAIL: upgraded columns differ from a new database's:\n{got}\n{new}")
    print(f"OK: {len(new)} columns, same names, types and order")


if __name__ == "__main__":
    main()
