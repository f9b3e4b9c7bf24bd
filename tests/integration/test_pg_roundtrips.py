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
their unique_senders and active_addresses (counted on the client now) included."""
import collections
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

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
    p = subprocess.run([bp, "backfill", "--rpc", rpc, "--from", "0", "--to", str(BLOCKS - 1),
                        "--workers", "2", "--batch-size", "10", "--output", output, "--metrics", mode,
                        "--log-level", "warn"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"backfill {mode} exited {p.returncode}\n{p.stderr[-2000:]}")


def statements(log_text):
    """Per backend pid: the number of statements logged from its first batch on (not the
    schema's migration) and of COMMITs among them."""
    n, commits, began = collections.Counter(), collections.Counter(), set()
    for m in re.finditer(r"\[(\d+)\] LOG:  duration: [\d.]+ ms  statement: (.*?)(?=\n\S|\Z)",
                         log_text, re.S):
        pid, sql = m.group(1), m.group(2).strip()
        if sql.startswith("BEGIN; SELECT number"):
            began.add(pid)
        if pid in began:
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
            sent = {}
            for mode in ("off", "on"):
                start = os.path.getsize(pg.log_path)
                backfill(bp, rpc, pg.url(query=f"schema=m_{mode}"), mode)
                with open(pg.log_path, errors="replace") as f:
                    f.seek(start)
                    sent[mode] = writer(f.read())
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
    finally:
        sim.terminate()
        sim.wait()
    print("ok")


if __name__ == "__main__":
    main()
