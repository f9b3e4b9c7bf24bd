"""The PostgreSQL flags: --pg-schema, --checkpoint-name and --wait-for-db reach the output.

A head follower and a backfill share one database: `backfill --pg-schema chain_a
--checkpoint-name backfill` writes into schema chain_a with its own checkpoint row; the log
shows the output URL without the password. Then `backfill` into the same schema with
--checkpoint-name other starts from scratch (its own checkpoint) and skips what is there
without doubling a row. Finally `--wait-for-db 0` against a port where nothing listens
fails at once with a clear error instead of retrying for 30 s.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres, PASSWORD  # noqa: E402
import pgcheck  # noqa: E402


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
        cp = pgcheck.checkpoint(pg, schema="chain_a", output="backfill")
        if not cp or cp[0] != head:
            raise AssertionError(f"checkpoint 'backfill' in chain_a: {cp}")
        if pgcheck.checkpoint(pg, schema="public", output="backfill") is not None:
            raise AssertionError("rows went to schema public despite --pg-schema chain_a")
        rc, out = pgcheck.run(common + ["--checkpoint-name", "other"])
        if rc != 0:
            raise AssertionError(f"second backfill exited {rc}\n{out[-2000:]}")
        rows = pg.sql("SELECT count(*), count(DISTINCT number) FROM chain_a.blocks")[0]
        if rows[0] != rows[1] or int(rows[0]) != head + 1:
            raise AssertionError(f"blocks after two writers: {rows}, want {head + 1} once each")
        names = sorted(r[0] for r in pg.sql("SELECT output FROM chain_a.checkpoints"))
        if names != ["backfill", "other"]:
            raise AssertionError(f"checkpoint rows {names}")
        t0 = time.monotonic()
        dead = f"postgres://bp:{PASSWORD}@127.0.0.1:1/bp"
        p = subprocess.run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", "1",
                            "--output", dead, "--wait-for-db", "0"],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        if p.returncode == 0 or took > 20 or "127.0.0.1" not in p.stderr:
            raise AssertionError(f"--wait-for-db 0: exit {p.returncode} after {took:.1f}s\n"
                                 f"{p.stderr[-1500:]}")
        if f":{PASSWORD}@" in p.stderr:
            raise AssertionError("the database password appears in an error")
        print(f"OK: schema and checkpoint names honoured ({head + 1} blocks once); "
              f"--wait-for-db 0 failed in {took:.1f}s: {p.stderr.strip().splitlines()[-1][:120]}")


if __name__ == "__main__":
    main()
