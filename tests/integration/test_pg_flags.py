"""The PostgreSQL flags: --pg-schema, --checkpoint-name and --wait-for-db reach the output.

A head follower and a backfill share one database: `backfill --pg-schema chain_a
--checkpoint-name backfill` writes into schema chain_a with its own checkpoint row; the log
shows the output URL without the password; every block, transaction and log is in chain_a
with every field equal to the node, nothing in schema public. Then `backfill` into the same
schema with --checkpoint-name other starts from scratch (block 0, its own checkpoint) and
skips what is there without doubling a row (every row still once, equal to the node; both
checkpoints at the head). Finally `--wait-for-db 0` against a port where nothing listens
fails after one connection attempt with a clear error instead of retrying for 30 s.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres, PASSWORD  # noqa: E402
import pgcheck  # noqa: E402
import rowcheck  # noqa: E402

CHAIN = "31337"


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    with Anvil() as node, Postgres() as pg:
        wl = Workload(node, seed=8)
        wl.setup()
        for _ in range(15):
            wl.mine_batch(3)
        head = node.block_number()
        common = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                  "--output", pg.url(), "--pg-schema", "chain_a"]
        rc, out = pgcheck.run(common + ["--checkpoint-name", "backfill"])
        if rc != 0:
            raise AssertionError(f"backfill exited {rc}\n{out[-2000:]}")
        if f":{PASSWORD}@" in out:
            raise AssertionError("the database password appears in the log")
        if "postgres://" not in out or ":***@" not in out:
            raise AssertionError(f"the output URL is not shown redacted:\n{out[-1500:]}")
        data = rowcheck.fetch(node.url, range(head + 1))
        want_cp = (head, data[-1][0]["hash"])
        counts = rowcheck.pg_exact(pg, "chain_a", data, CHAIN, "first backfill")
        cps = rowcheck.pg_checkpoints(pg, "chain_a", CHAIN)
        if cps != {"backfill": want_cp}:
            raise AssertionError(f"checkpoints in chain_a: {cps}, want backfill at {want_cp}")
        public = pg.sql("SELECT count(*) FROM information_schema.tables"
                        " WHERE table_schema = 'public'")[0][0]
        if public != "0":
            raise AssertionError(f"{public} tables went to schema public despite --pg-schema")
        rc, out = pgcheck.run(common + ["--checkpoint-name", "other"])
        if rc != 0:
            raise AssertionError(f"second backfill exited {rc}\n{out[-2000:]}")
        if "starting at block 0" not in out:
            raise AssertionError(f"--checkpoint-name other did not start from scratch:\n"
                                 f"{out[-1500:]}")
        # every row still once, every field the node's
        if rowcheck.pg_exact(pg, "chain_a", data, CHAIN, "after the second writer") != counts:
            raise AssertionError("the row counts changed after the second writer")
        cps = rowcheck.pg_checkpoints(pg, "chain_a", CHAIN)
        if cps != {"backfill": want_cp, "other": want_cp}:
            raise AssertionError(f"checkpoint rows {cps}, want backfill and other at {want_cp}")
        # --wait-for-db 0: one connection attempt, then the error (no retry, no backoff)
        dead = f"postgres://bp:{PASSWORD}@127.0.0.1:1/bp"
        p = subprocess.run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", "1",
                            "--output", dead, "--wait-for-db", "0"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 0 or "127.0.0.1" not in p.stderr \
                or "gave up after 1 attempts, wait_for_db=0 s" not in p.stderr \
                or "cannot connect (attempt" in p.stderr:
            raise AssertionError(f"--wait-for-db 0: exit {p.returncode}, want a failure after "
                                 f"one attempt:\n{p.stderr[-1500:]}")
        if f":{PASSWORD}@" in p.stderr:
            raise AssertionError("the database password appears in an error")
        print(f"OK: schema and checkpoint names honoured ({head + 1} blocks, "
              f"{counts['transactions']} txs, {counts['logs']} logs once, every field); "
              f"--wait-for-db 0 failed after one attempt: "
              f"{p.stderr.strip().splitlines()[-1][:120]}")

if __name__ == "__main__":
    main()
