"""A PostgreSQL output whose server goes down under `blockpipe run` (real PostgreSQL): one
deadline for the outage, and the health endpoints say so while it lasts.

`blockpipe run` follows a simnode chain (a block every 0.25 s) into PostgreSQL and SQLite with
--wait-for-db 5, --ready-lag 1000 (so the chain's lag cannot be what turns /ready 503 within
the outage) and --api. Once /ready is 200 and PostgreSQL holds 30 blocks, the server is shut
down (fast shutdown: connections refused from then on). Until blockpipe exits the test polls
/ready, /api/sync-status and /metrics:
- at some poll /ready is 503 (ready false), blockpipe_ready 0, the PostgreSQL output's state
  is "retrying" with its last error (no password) and blockpipe_output_retrying 1 for it, the
  SQLite output's state "ok"; the chain's indexed is the PostgreSQL output's checkpoint (the
  last block every output committed, not a block handed to a write that never committed) and
  its lag that output's lag;
- blockpipe exits 1 (--output-failure stop), within 4 x wait_for_db + 20 s of the shutdown (a
  guard with a wide margin: one outage gets one wait). Before, the connection retry ran inside
  the sink's batch retry inside the outputs' write retry: 4 x 5 waits of 5 s, about 100 s, and
  the output's state stayed "ok" and /ready 200 meanwhile;
- the log has one "reconnecting" and one "gave up" (before: 20 of each), and the final error
  names the output's host/db once (before: twice, "127.0.0.1:PORT/bp: 127.0.0.1:PORT/bp:").
Then the server is started again: PostgreSQL holds exactly blocks 0..its checkpoint.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import API_ANY, Api, api_port, wait_http  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import (Fail, blockpipe_bin, check_prefix, checkpoint,  # noqa: E402
                     kill_running, last_error, script_main, tail, wait_for)
from simnode import Simnode  # noqa: E402

HANG = 300  # seconds: only a guard against a hang, never a measure
WAIT = 5  # --wait-for-db
BOUND = 4 * WAIT + 20  # the exit after the shutdown, with a wide margin (ASan, a loaded machine)
SCHEMA = "down"


def observe(api):
    """(/ready status, its body, the sync-status answer, /metrics text); None once the API no
    longer answers (the process exits)."""
    try:
        st, _, ready = api.get("/ready", timeout=10)
        sync = api.ok("/api/sync-status")
        metrics = api.get("/metrics", timeout=10)[2]
    except (OSError, ValueError, AssertionError):
        return None
    return st, ready, sync, metrics


def gauge(metrics, name, label=""):
    for line in metrics.splitlines():
        if line.startswith(name + "{") and label in line:
            return line.rsplit(" ", 1)[1]
    return None


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-pg-down-")
    node = Simnode(bp, ["--length", "100000", "--block-time", "0.25", "--start-head", "20",
                        "--txs-per-block", "3"])
    log = os.path.join(tmp.name, "run.log")
    proc = None
    try:
        with Postgres() as pg:
            url = pg.url(query=f"schema={SCHEMA}&timeout=5")
            where = f"127.0.0.1:{pg.port}/bp"
            cmd = [bp, "run", "--rpc", node.urls[0], "--start-block", "0", "--poll-interval",
                   "0.2", "--ready-lag", "1000", "--output", url, "--output",
                   f"sqlite:{tmp.name}/run2.db", "--wait-for-db", str(WAIT), "--api", API_ANY]
            proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
            port = api_port(log, HANG, proc)
            wait_http(port, HANG, proc)
            api = Api(port)
            wait_for(lambda: proc.poll() is not None or (
                api.get("/ready")[0] == 200 and (checkpoint(pg, SCHEMA) or (0,))[0] >= 30),
                HANG, "/ready 200 and 30 blocks in PostgreSQL")
            if proc.poll() is not None:
                raise Fail(f"blockpipe exited {proc.returncode} early:\n{tail(log)}")
            before = checkpoint(pg, SCHEMA)[0]
            pg.shutdown()
            t_down = time.monotonic()
            print(f"server shut down (its checkpoint at least {before})", flush=True)
            seen = []  # the observations while the output was failing
            while proc.poll() is None and time.monotonic() - t_down < HANG:
                o = observe(api)
                if o:
                    seen.append(o)
                time.sleep(0.1)
            if proc.poll() is None:
                raise Fail(f"blockpipe still runs {HANG} s after the server went down:\n"
                           f"{tail(log)}")
            took = time.monotonic() - t_down
            text = open(log, errors="replace").read()
            last = last_error(text)
            print(f"exit {proc.returncode} {took:.1f} s after the shutdown: {last.strip()}",
                  flush=True)
            check_seen(seen, pg.port, where)
            reconnects = text.count("; reconnecting (up to")
            gave_up = text.count("cannot connect (gave up")
            if proc.returncode != 1 or where not in last or last.count(where + ": ") != 1 \
                    or "bp:bp@" in text:
                raise Fail(f"exit {proc.returncode}; want 1 with an error naming {where} once, "
                           f"no password:\n{tail(log)}")
            if reconnects != 1 or gave_up > 2:
                raise Fail(f"{reconnects} 'reconnecting' and {gave_up} 'gave up' in the log: "
                           f"want one outage with one wait:\n{tail(log, 80)}")
            if took > BOUND:
                raise Fail(f"exit {took:.0f} s after the server went down; want within "
                           f"{BOUND} s (--wait-for-db {WAIT}):\n{tail(log, 80)}")
            print(f"check: exit 1 in {took:.1f} s (bound {BOUND} s), {reconnects} reconnect, "
                  f"the host/db named once", flush=True)
            pg.start()
            cp = check_prefix(pg, SCHEMA)
            print(f"check: PostgreSQL holds blocks 0..{cp}, each once", flush=True)
            print("OK: a PostgreSQL output that goes down stops the run after one wait, and "
                  "/ready, sync-status and /metrics say so meanwhile")
    except Fail:
        print(tail(log, 60))
        raise
    finally:
        kill_running(proc)
        node.kill()
        tmp.cleanup()


def check_seen(seen, port, where):
    """Some observation during the outage shows the PostgreSQL output failing."""
    def pg_out(sync):
        return next((o for o in sync.get("outputs", []) if o.get("url", "").startswith(
            "postgres") and f":{port}/" in o.get("url", "")), {})

    def sqlite_out(sync):
        return next((o for o in sync.get("outputs", []) if o.get("url", "").startswith(
            "sqlite")), {})
    states = sorted({pg_out(s).get("state") for _, _, s, _ in seen}, key=str)
    for st, ready, sync, metrics in seen:
        out = pg_out(sync)
        if out.get("state") != "retrying":
            continue
        chain = (sync.get("chains") or [{}])[0]
        err = out.get("error") or ""
        problems = []
        if st != 503 or ready.get("ready") is not False:
            problems.append(f"/ready {st} {ready}")
        if gauge(metrics, "blockpipe_ready") != "0":
            problems.append(f"blockpipe_ready {gauge(metrics, 'blockpipe_ready')}")
        if gauge(metrics, "blockpipe_output_retrying", f":{port}/") != "1":
            problems.append("blockpipe_output_retrying "
                            f"{gauge(metrics, 'blockpipe_output_retrying', f':{port}/')}")
        if where not in err and "connect" not in err or "bp:bp@" in err:
            problems.append(f"error {err!r}")
        if sqlite_out(sync).get("state") != "ok":
            problems.append(f"sqlite output {sqlite_out(sync)}")
        if chain.get("indexed") != out.get("checkpoint") or chain.get("lag") != out.get("lag"):
            problems.append(f"chain indexed {chain.get('indexed')} lag {chain.get('lag')}, "
                            f"the output's checkpoint {out.get('checkpoint')} lag "
                            f"{out.get('lag')}")
        if problems:
            raise Fail("while the PostgreSQL output retries: " + "; ".join(problems))
        print(f"check: during the outage: /ready 503, blockpipe_ready 0, the output's state "
              f"retrying ({err[:120]}), blockpipe_output_retrying 1, sqlite ok, indexed "
              f"{chain['indexed']} = its checkpoint, lag {chain['lag']}", flush=True)
        return
    raise Fail(f"{len(seen)} observations after the shutdown, the PostgreSQL output's states "
               f"{states}: never 'retrying'")


if __name__ == "__main__":
    script_main(main)
