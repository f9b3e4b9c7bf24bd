#!/usr/bin/env python3
"""metrics_rows.py - the rows each derived table took in one backfill, per binary: PostgreSQL's
pg_stat_user_tables (inserted, updated, deleted, live) after a backfill of bench/metrics_bench.py's
12 s chain (600 simnode blocks of 200 transactions by default, 8 workers, derived tables on) into
a schema of its own. Deterministic whatever the machine's load (unlike wall or CPU seconds), and
SQLite runs the same statements row for row. Prints; writes nothing.

    python3 bench/metrics_rows.py before=OLD/blockpipe after=build/blockpipe

A NAME=PATH may be a script that sets an environment (BP_GROUP_MS=0 exec blockpipe "$@").
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "tools"))
from pg import Postgres  # noqa: E402

BLOCKS = 600
TABLES = ("chain_metrics_block", "chain_metrics_1m", "chain_metrics_1h", "chain_metrics_1d",
          "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d", "token_transfers")


def main():
    bins = [b.split("=", 1) for b in sys.argv[1:]]
    if not bins:
        sys.exit(__doc__)
    sim = subprocess.Popen([bins[0][1], "simnode", "--listen", "127.0.0.1:0", "--block-time", "12",
                            "--start-head", str(BLOCKS - 1), "--txs-per-block", "200"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = sim.stdout.readline().split()[-1]
    try:
        with Postgres(settings={"autovacuum": "off"}) as pg:
            for name, path in bins:
                schema = "s_" + name.replace("-", "_")
                p = subprocess.run([path, "backfill", "--rpc", url, "--from", "0", "--to",
                                    str(BLOCKS - 1), "--workers", "8", "--output",
                                    pg.url(query=f"schema={schema}"), "--metrics", "on",
                                    "--log-level", "warn"], capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{name}: exit {p.returncode}\n{p.stderr[-3000:]}")
                time.sleep(1.5)  # the statistics reach pg_stat_user_tables
                rows = pg.sql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_live_tup FROM"
                              f" pg_stat_user_tables WHERE schemaname = '{schema}' ORDER BY 1")
                print(name)
                for r in rows:
                    if r[0] in TABLES:
                        print(f"  {r[0]:22} inserted {r[1]:>7} updated {r[2]:>7} deleted "
                              f"{r[3]:>7} live {r[4]:>7}")
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
