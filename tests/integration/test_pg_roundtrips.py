"""The PostgreSQL output's derived tables cost few round trips per batch: statements that return
nothing ride with the batch's next round trip (the chain's lock with the first raw COPY, a
run's merges and pricing with the next COPY, the rollups and retention with the checkpoint
and COMMIT), the query listing the run's lazy windows goes ahead of the block rows' COPY, the
hour's and day's contract increments share one COPY, and the touched minutes' contract rows
are COPYed straight into contract_metrics_1m. A backfill of a simnode chain with `--metrics
off` and one with `--metrics on` into one server that logs every statement
(log_min_duration_statement=0: one entry per simple query or COPY): with the derived tables the
writer's connection may send at most 4 more per batch (the COPYs of chain_metrics_block,
token_transfers, the contract increments and the minutes' contract rows; the code before sent
10). The derived tables are there and equal the rows of a backfill of the same chain into
SQLite (whose writes are statement by statement): the contract windows, the chain windows,
their unique_senders and active_addresses (counted on the client now) included.

Pricing writes only the block rows whose USD changes: with no price known, none (the block rows
COPYed unpriced were each rewritten once per run before: a dead row version and two index
entries per block).

token_transfers_token_idx, which nothing blockpipe does reads, is not kept up during a backfill:
the backfill makes it after its last COPY into token_transfers (at its last batch or its close),
and a `run` makes it once it writes at the head (before any close: it is killed). A lookup by
token then reads it and finds the rows SQLite has."""
import collections
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402

BLOCKS = 90
EXTRA_MAX = 4
TABLES = {  # table: its key columns (compared row for row, every column)
    "chain_metrics_1m": "origin_key, window_start",
    "chain_metrics_1h": "origin_key, window_start",
    "chain_metrics_1d": "origin_key, window_start",
    "contract_metrics_1m": "origin_key, window_start, contract_address",
    "contract_metrics_1h": "origin_key, window_start, contract_address",
    "contract_metrics_1d": "origin_key, window_start, contract_address",
}


def backfill(bp, rpc, output, mode):
    # one transaction per batch, as at the head: a backfill's groups of batches
    # (docs/ARCHITECTURE.md "Groups") commit less often, so COMMITs would not count batches
    p = subprocess.run([bp, "backfill", "--rpc", rpc, "--from", "0", "--to", str(BLOCKS - 1),
                        "--workers", "2", "--batch-size", "10", "--output", output, "--metrics", mode,
                        "--log-level", "warn"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, BP_GROUP_MS="0"))
    if p.returncode != 0:
        raise AssertionError(f"backfill {mode} exited {p.returncode}\n{p.stderr[-2000:]}")


def statements(log_text):
    """Per backend pid: the number of statements logged from its first batch on (not the
    schema's migration, nor the token index made once) and of COMMITs among them."""
    n, commits, began = collections.Counter(), collections.Counter(), set()
    for m in re.finditer(r"\[(\d+)\] LOG:  duration: [\d.]+ ms  statement: (.*?)(?=\n\S|\Z)",
                         log_text, re.S):
        pid, sql = m.group(1), m.group(2).strip()
        if sql.startswith("BEGIN; SELECT number"):
            began.add(pid)
        if pid in began and "token_transfers_token_idx" not in sql:  # (once, not per batch)
            n[pid] += 1
            commits[pid] += sql.rstrip(";").endswith("COMMIT")
    return n, commits


def writer(log_text):
    n, commits = statements(log_text)
    pid = max(commits, key=lambda p: commits[p])
    return n[pid], commits[pid]


def norm(v):
    if v in ("", None):
        return None
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str) and v.startswith("\\x"):
        return "0x" + v[2:]
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f == int(f) and abs(f) < 2 ** 53 and "." not in str(v) else round(f, 6)


def check_token_index(pg, log_text, lite):
    """The index is made after the backfill's last COPY into token_transfers, and used."""
    made = [m.start() for m in re.finditer(r"CREATE INDEX[^;]*token_transfers_token_idx", log_text)]
    copies = [m.start() for m in re.finditer(r"COPY token_transfers\b", log_text)]
    if not copies or len(made) != 1 or made[0] < copies[-1]:
        raise AssertionError(f"token_transfers_token_idx made at {made}, COPYs into "
                             f"token_transfers at {copies[:3]}..{copies[-1:]}: not after them")
    token, n = lite.execute("SELECT token_address, count(*) FROM token_transfers"
                            " GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    q = (f"SELECT count(*) FROM m_on.token_transfers WHERE token_address ="
         f" decode('{token[2:]}', 'hex')")
    plan = "\n".join(r[0] for r in pg.sql(f"SET enable_seqscan = off; EXPLAIN {q}"))
    got = int(pg.sql(q)[0][0])
    if "token_transfers_token_idx" not in plan or got != n:
        raise AssertionError(f"lookup of token {token}: {got} rows (want {n}), plan:\n{plan}")
    print(f"token_transfers_token_idx made after the backfill's {len(copies)} COPYs; "
          f"a lookup reads it ({got} rows of {token})")


def check_no_rewrites(pg):
    """No block row of the backfill without prices was updated (pricing left them as COPYed)."""
    for _ in range(50):  # (the backend's counts reach pg_stat_user_tables as it exits)
        ins, upd = (int(v) for v in pg.sql(
            "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'm_on'"
            " AND relname = 'chain_metrics_block'")[0])
        if ins >= BLOCKS:
            break
        time.sleep(0.1)
    if ins != BLOCKS or upd != 0:
        raise AssertionError(f"chain_metrics_block: {ins} rows inserted (want {BLOCKS}), {upd} "
                             "updated (want 0: no price is known)")
    print(f"chain_metrics_block: {ins} rows inserted, none rewritten by pricing")


def index_at_head(bp, rpc, pg):
    """A run that reaches the head makes the index before it closes."""
    run = subprocess.Popen([bp, "run", "--rpc", rpc, "--start-block", str(BLOCKS - 30),
                            "--batch-size", "10", "--output", pg.url(query="schema=m_run"),
                            "--log-level", "warn"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if pg.sql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'm_run'"
                      " AND indexname = 'token_transfers_token_idx'")[0][0] == "1":
                break
            if run.poll() is not None:
                raise AssertionError(f"run exited {run.returncode}: {run.stderr.read()[-2000:]}")
            time.sleep(0.1)
        else:
            raise AssertionError("run at the head made no token_transfers_token_idx in 60 s")
        rows = pg.sql("SELECT count(*) FROM m_run.token_transfers")[0][0]
    finally:
        run.kill()
        run.wait()
    print(f"run made token_transfers_token_idx at the head ({rows} transfers), not at close")


def main():
    bp = os.environ["BLOCKPIPE"]
    print(__doc__.strip().splitlines()[0])
    sim = subprocess.Popen([bp, "simnode", "--listen", "127.0.0.1:0", "--block-time", "12",
                            "--start-head", str(BLOCKS - 1), "--txs-per-block", "40"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rpc = sim.stdout.readline().split()[-1]
    try:
        with Postgres(settings={"log_min_duration_statement": "0",
                                "log_line_prefix": "%m [%p] "}) as pg, \
                tempfile.TemporaryDirectory(prefix="bp-rt-") as tmp:
            sent, logs = {}, {}
            for mode in ("off", "on"):
                start = os.path.getsize(pg.log_path)
                backfill(bp, rpc, pg.url(query=f"schema=m_{mode}"), mode)
                with open(pg.log_path, errors="replace") as f:
                    f.seek(start)
                    logs[mode] = f.read()
                    sent[mode] = writer(logs[mode])
            (n_off, b_off), (n_on, b_on) = sent["off"], sent["on"]
            print(f"off: {n_off} statements in {b_off} batches, on: {n_on} in {b_on}")
            if b_on < 5 or b_off < 5:
                raise AssertionError(f"too few batches to measure: {b_off} / {b_on}")
            extra = (n_on - 1) / b_on - (n_off - 1) / b_off  # (the writer lock's release)
            if extra > EXTRA_MAX:
                raise AssertionError(f"the derived tables add {extra:.1f} round trips per batch "
                                     f"(at most {EXTRA_MAX})")
            db = os.path.join(tmp, "ref.db")
            backfill(bp, rpc, f"sqlite:{db}", "on")
            lite = sqlite3.connect(db)
            for t, key in TABLES.items():
                cols = [r[1] for r in lite.execute(f"PRAGMA table_info({t})")]
                want = [tuple(norm(v) for v in r)
                        for r in lite.execute(f"SELECT * FROM {t} ORDER BY {key}")]
                sel = ", ".join(f"{c}::text" if c != "contract_address"
                                else "'0x' || encode(contract_address, 'hex')" for c in cols)
                got = [tuple(norm(v) for v in r)
                       for r in pg.sql(f"SELECT {sel} FROM m_on.{t} ORDER BY {key}")]
                if not want:
                    raise AssertionError(f"{t}: no rows in the reference")
                if got != want:
                    bad = next((g, w) for g, w in zip(got + [None] * len(want), want) if g != w)
                    raise AssertionError(f"{t}: {len(got)} rows, want {len(want)}; first "
                                         f"difference {bad}")
                print(f"{t}: {len(got)} rows equal SQLite's")
            check_no_rewrites(pg)
            check_token_index(pg, logs["on"], lite)
            index_at_head(bp, rpc, pg)
    finally:
        sim.terminate()
        sim.wait()
    print("ok")


if __name__ == "__main__":
    main()
