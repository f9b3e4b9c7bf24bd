#!/usr/bin/env python3
"""pg_rollup_replay.py - the server's CPU for PostgreSQL's 1m chain rollups at the batch end: the
statements of binary BASE (one upsert and one prune per touched minute) against AFTER's (one
upsert per batch over the list of its minutes), taken from the server's statement log of a
backfill by each (600 blocks of the 12 s chain), then replayed over BASE's schema for every
minute, in messages of N minutes (a batch's), 10 passes each, 3 interleaved rounds; the backend's
CPU from /proc. Prints the rows' totals before and after (they must not change) and the plans.

    python3 bench/pg_rollup_replay.py OLD/blockpipe build/blockpipe 3
"""
import os, re, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "tools"))
from pg import Postgres
BASE, AFTER = sys.argv[1], sys.argv[2]
PER = int(sys.argv[3]) if len(sys.argv) > 3 else 10
BLOCKS = 600
sim = subprocess.Popen([BASE, "simnode", "--listen", "127.0.0.1:0", "--block-time", "12",
                        "--start-head", str(BLOCKS - 1), "--txs-per-block", "200"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
url = sim.stdout.readline().split()[-1]
TICK = os.sysconf("SC_CLK_TCK")
try:
    with Postgres(settings={"autovacuum": "off", "log_statement": "all"}) as pg:
        for s, b in (("s1", BASE), ("s2", AFTER)):
            p = subprocess.run([b, "backfill", "--rpc", url, "--from", "0", "--to", str(BLOCKS - 1),
                                "--workers", "8", "--output", pg.url(query=f"schema={s}"), "--metrics",
                                "on", "--log-level", "warn"], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr[-2000:]
        log = open(pg.log_path).read()
        old_up = re.search(r"INSERT INTO chain_metrics_1m\(.*? FROM chain_metrics_block WHERE .*?;", log, re.S).group(0)
        old_pr = re.search(r"DELETE FROM chain_metrics_1m WHERE origin_key = \S+ AND window_start = \d+ AND NOT EXISTS.*?\+ 60\)", log, re.S).group(0)
        new_up = re.search(r"INSERT INTO chain_metrics_1m\([^;]*?unnest\(.*?;", log, re.S).group(0)
        new_pr = re.search(r"DELETE FROM chain_metrics_1m WHERE origin_key = \S+ AND window_start = \d+ AND NOT EXISTS.*?\+ 60\)", log, re.S).group(0)
        w0 = re.search(r"window_start = (\d+)", old_pr).group(1)
        print(old_pr[:150], "\n", new_up[-400:])
        wins = [r for r in pg.sql("SELECT window_start, active_addresses FROM s1.chain_metrics_1m ORDER BY 1")]
        def old_msg(group):
            parts = []
            for w, a in group:
                u = re.sub(r", \d+ FROM chain_metrics_block WHERE", f", {a} FROM chain_metrics_block WHERE", old_up.replace(w0, w))
                parts += [u.rstrip(";"), old_pr.rstrip(";").replace(w0, w)]
            return " \\; ".join(parts)
        def new_msg(group):
            ws = "'{" + ",".join(w for w, _ in group) + "}'::bigint[]"
            dl = "'{" + ",".join(a for _, a in group) + "}'::bigint[]"
            u = re.sub(r"unnest\('\{[^}]*\}'::bigint\[\], '\{[^}]*\}'::bigint\[\]\)", f"unnest({ws}, {dl})", new_up)
            pr = re.sub(r"ANY\('\{[^}]*\}'::bigint\[\]\)", f"ANY({ws})", new_pr)
            return u.rstrip(";")
        groups = [wins[i:i + PER] for i in range(0, len(wins), PER)]
        script = ["SET search_path = s1;", "SELECT pg_backend_pid() AS pid \\gset", "\\setenv BPID :pid", "SELECT count(*), sum(active_addresses), sum(txcount) FROM chain_metrics_1m;"]
        for r in range(int(os.environ.get('ROUNDS', '3'))):
            for name, f in (("old", old_msg), ("new", new_msg)):
                script.append(f"\\! echo {name} before $(cut -d' ' -f14,15 /proc/$BPID/stat)")
                for rep in range(10):
                    script += [f(g) + ";" for g in groups]
                script.append(f"\\! echo {name} after $(cut -d' ' -f14,15 /proc/$BPID/stat)")
        script.append("SELECT count(*), sum(active_addresses), sum(txcount) FROM chain_metrics_1m;")
        script.append("EXPLAIN ANALYZE " + new_msg(groups[5]).split(" \\; ")[0] + ";")
        script.append("EXPLAIN ANALYZE " + old_msg(groups[5]).split(" \\; ")[0] + ";")
        env = dict(os.environ, PGPASSWORD="bp")
        out = subprocess.run([os.path.join(pg.bin, "psql"), pg.url(), "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                             input="\n".join(script) + "\n", capture_output=True, text=True, env=env)
        print(out.stderr[-2000:])
        print(pg.sql("SELECT count(*), sum(active_addresses), sum(txcount) FROM s2.chain_metrics_1m"))
        last = {}
        for line in out.stdout.splitlines():
            f = line.split()
            if len(f) == 4 and f[1] in ("before", "after"):
                v = (int(f[2]) + int(f[3])) / TICK
                if f[1] == "before":
                    last[f[0]] = v
                else:
                    print(f"{f[0]}: {v - last[f[0]]:.3f} s backend CPU for {len(wins)} minutes in {len(groups)} messages, x10")
            else:
                print(line)
finally:
    sim.terminate(); sim.wait()
