"""Several processes opening one fresh PostgreSQL schema at once all start and write.

The derived tables' record (table derived_groups, made at open, outside the migrations) was
made with CREATE TABLE IF NOT EXISTS, which PostgreSQL does not make safe against a second
session doing the same: a clean-clone `make test` had test_packaging's follower fail at open
with "reading derived_groups: duplicate key value violates unique constraint
pg_type_typname_nsp_index (SQLSTATE 23505)" beside its backfill. It is now read, checked and
written in one transaction under the migrations' advisory lock.

Six rounds, each six `backfill` processes started at once on a new schema of one server (each
with its own checkpoint name): every one must exit 0 and the schema must hold blocks 0..5 once.
A race, so a failure is not certain on the old code: it failed 1 run of 36 here (the same
rounds by hand against the binary before the fix, 2026-12-05).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, script_body  # noqa: E402
from simnode import Simnode  # noqa: E402

ROUNDS, PROCS = 6, 6


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    with script_body("OK: processes opening one schema at once all start") as keep:
        with Postgres() as pg:
            node = keep(Simnode(bp, ["--block-time", "0", "--length", "40",
                                     "--txs-per-block", "2"]))
            for rnd in range(ROUNDS):
                schema = f"race{rnd}"
                procs = [subprocess.Popen(
                    [bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "5",
                     "--output", pg.url() + f"?schema={schema}&checkpoint=c{k}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    for k in range(PROCS)]
                for k, p in enumerate(procs):
                    _, err = p.communicate(timeout=300)
                    if p.returncode != 0:
                        raise Fail(f"round {rnd}: process {k} of {PROCS} opening schema {schema} "
                                   f"at once exited {p.returncode}:\n{err.decode()[-2000:]}")
                rows = pg.sql(f"SELECT count(*), count(DISTINCT number), max(number) "
                              f"FROM {schema}.blocks")
                if rows != [["6", "6", "5"]]:
                    raise Fail(f"round {rnd}: {schema}.blocks holds {rows}, want 6 blocks 0..5")
                print(f"check: round {rnd}: {PROCS} processes at once, all started and wrote "
                      "blocks 0..5 once", flush=True)


if __name__ == "__main__":
    main()
