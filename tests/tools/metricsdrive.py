"""metricsdrive.py - the analytics scenario one SQL output goes through (test_metrics_sqlite.py,
test_metrics_pg.py): an anvil chain whose blocks are spread over minutes, hours and days
(evm_setNextBlockTimestamp) with the random workload plus token events (ERC-20/721/1155 and a
malformed Transfer); a backfill crashed before its first COMMIT (crash point) and SIGKILLed at
random times during its inserts, then finished; `run --confirmations 0` following the head
through reorgs of depth 1..5 and a SIGKILL; after each step every row of every derived table
must equal tests/tools/metricscheck.py's recomputation from the node's own blocks and
receipts; then the issue's three example queries, unchanged, and every window view whole must
return the recomputed rows, every column as the database returns it (Scenario.view_rows).
With ml=True the follow runs with `--ml on`: its first blocks carry ML_WARM transactions (more
than the model's warm-up, docs/SCHEMA.md), and ml_predictions must hold one row per canonical
transaction of every block the follow applied - through the reorgs and across the SIGKILL and
restart - and none of a reverted block's; at the end every score must equal the one a fresh,
uninterrupted `backfill --ml on` of the final chain gives (the model's state is a function of
the canonical transactions before a block, rebuilt from the output after a restart or a reorg).
With prices (test_metrics_prices_reorg.py) every command gets prices.args (a CoinGecko-shaped
server), prices.mined(ts) is told each block's timestamp before it is mined, and every check
recomputes fees_paid_usd from the output's own prices table (backend.prices()) under
prices.max_age.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from anvil import Anvil, Workload, log_calldata, wait_until
from metricscheck import FLOAT_COLUMNS, Expected, Mismatch, TokenEmitter, compare

ORIGIN = "megaeth"  # so that the queries run literally
CATCH_UP_TIMEOUT = 90
# seconds between blocks: same minute, next minutes, next hours, next days
STEPS = (1, 2, 7, 13, 59, 61, 250, 3599, 3601, 7300, 86399, 86401, 200000)
ML_WARM = (5, 60)  # blocks x transactions: 300 > the model's 256-transaction warm-up
RETENTION_FOREVER = ["--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
                     "--retention-1h", "0"]
QUERIES = (
    "SELECT * FROM chain_metrics_1m_v WHERE origin_key = 'megaeth' ORDER BY timestamp DESC LIMIT 10",
    "SELECT * FROM chain_metrics_1h_v WHERE origin_key = 'megaeth' ORDER BY hour_ts DESC LIMIT 24",
    "SELECT contract_address, sum(txcount) AS txs FROM contract_metrics_1d_v WHERE origin_key = "
    "'megaeth' GROUP BY contract_address ORDER BY txs DESC LIMIT 20",
)


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def interrupt(proc, timeout):
    """SIGINT to proc when it still runs, waited for at most timeout s, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Scenario:
    """backend: .url (output URL), .checkpoint() -> (number, hash) | None, .read(origin),
    .query(sql) -> rows (lists of text), .label."""

    def __init__(self, blockpipe, backend, tmpdir, seed, ml=False, prices=None):
        self.bp, self.be, self.tmp = blockpipe, backend, tmpdir
        self.ml = ml
        self.prices = prices
        # the heights a run with --ml on applied: ml_first up to the head
        self.ml_first = None
        self.rng = random.Random(seed)
        self.node = Anvil()
        self.wl = Workload(self.node, seed=seed)
        self.wl.setup()
        self.em = TokenEmitter(self.wl, self.rng)
        self.em.deploy()
        self.ts = int(self.node.block("latest")["timestamp"], 16)
        self.err_path = os.path.join(tmpdir, "stderr.txt")

    # --- the chain ------------------------------------------------------------------------
    def mine(self, k=None):
        self.ts += self.rng.choice(STEPS)
        if self.prices:
            self.prices.mined(self.ts)
        self.node.rpc("evm_setNextBlockTimestamp", [self.ts])
        for _ in range(self.rng.randrange(0, 7) if k is None else k):
            if self.rng.random() < 0.3:
                self.em.send()
            else:
                self.wl.random_tx()
        self.node.mine()
        self.wl.collect_deploys()
        self.wl.check_pool_empty()

    def node_chain(self):
        head = self.node.block_number()
        blocks = [self.node.block(n, True) for n in range(head + 1)]
        receipts = [self.node.receipts(n) for n in range(head + 1)]
        return blocks, receipts

    def read(self):
        """The derived rows and the prices they were priced from (read again until the prices
        did not change meanwhile: a batch stores its points and reprices in one transaction)."""
        if not self.prices:
            return self.be.read(ORIGIN), {}
        while True:
            before = sorted((int(t), float(u)) for t, u in self.be.prices())
            got = self.be.read(ORIGIN)
            if before == sorted((int(t), float(u)) for t, u in self.be.prices()):
                return got, {"prices": before, "max_age": self.prices.max_age}

    def check(self, label):
        blocks, receipts = self.node_chain()
        got, priced = self.read()
        exp = Expected(blocks, receipts, ORIGIN, **priced)
        scored = range(0) if self.ml_first is None else range(self.ml_first, len(blocks))
        try:
            counts = compare(exp, got, label=f"{label}: ", scored=scored)
            if self.ml_first is not None and not counts["ml_predictions"]:
                raise Mismatch(f"{label}: ml_predictions is empty with --ml on")
        except Mismatch as e:
            raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(self.err_path)}") from None
        usd = ""
        if self.prices:
            rows = [r for r in got["chain_metrics_block"].values() if r["txcount"] > 0]
            usd = (f" (USD: {sum(r['fees_paid_usd'] is not None for r in rows)} of {len(rows)} "
                   f"blocks with transactions, {len(priced['prices'])} prices)")
        print(f"{label}: every derived row equals the recomputation: "
              + " ".join(f"{t}={n}" for t, n in counts.items() if n) + usd)
        return exp

    # --- blockpipe --------------------------------------------------------------------------
    def cmd(self, verb, *extra):
        return [self.bp, verb, "--rpc", self.node.url, "--output", self.be.url, "--chain",
                ORIGIN, "--stats-interval", "1", *RETENTION_FOREVER,
                *(self.prices.args if self.prices else ()), *extra]

    def spawn(self, cmd, env=None):
        err = open(self.err_path, "a")
        try:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    env=dict(os.environ, **(env or {})))
        finally:
            err.close()

    def backfill_with_crashes(self):
        head = self.node.block_number()
        args = ("--from", "0", "--to", str(head), "--batch-size", "3", "--workers", "2")
        point = getattr(self.be, "crashpoint", None) or (
            "sqlite.before_commit" if self.be.label == "sqlite" else "postgres.before_commit")
        p = self.spawn(self.cmd("backfill", *args), {"BP_CRASHPOINT": point})
        rc = p.wait(120)
        if rc != 86:
            raise Mismatch(f"backfill armed with a crash point before COMMIT exited {rc}, want "
                           f"86:\n{tail(self.err_path)}")
        # SIGKILLs while it writes: one-block batches, killed as soon as the checkpoint moved
        # (so mid-run, whatever the machine's speed), until a run finishes by itself; each
        # batch committed alone (groups of batches would move the checkpoint a few times per
        # run: kills inside groups are test_metrics_group.py's)
        args = ("--from", "0", "--to", str(head), "--batch-size", "1", "--workers", "2")
        # the run left to finish once the kills landed writes batches of 10: it recovers from
        # the last kill as any run would, and the 39 blocks left, one commit of every raw and
        # derived table each, took ClickHouse 18.16 182 s at load 20 (62 s in batches of 10 at
        # load 45) and passed the 300 s guard below at load 40
        rest = ("--from", "0", "--to", str(head), "--batch-size", "10", "--workers", "2")
        kills, last = 0, self.be.checkpoint()
        while True:
            p = self.spawn(self.cmd("backfill", *(args if kills < 4 else rest)),
                           {"BP_GROUP_MS": "0"})
            deadline = time.monotonic() + 300
            while p.poll() is None and time.monotonic() < deadline:
                cp = self.be.checkpoint()
                if kills < 4 and cp is not None and cp != last and cp[0] < head:
                    p.send_signal(signal.SIGKILL)
                    p.wait(30)
                    kills, last = kills + 1, cp
                    break
                time.sleep(0.01)
            if p.poll() is None:
                p.kill()
                raise Mismatch(f"backfill did not finish in 300 s:\n{tail(self.err_path)}")
            if p.returncode == 0:
                break
            if p.returncode != -signal.SIGKILL:
                raise Mismatch(f"backfill exited {p.returncode}:\n{tail(self.err_path)}")
        if kills < 2:
            raise Mismatch(f"only {kills} SIGKILL(s) landed while the backfill wrote")
        print(f"backfill 0..{head}: a crash before COMMIT, {kills} SIGKILLs, then done")

    def wait_caught_up(self, proc, label):
        head = self.node.block_number()
        want = (head, self.node.block(head, False)["hash"])

        def ok():
            if proc.poll() is not None:
                raise Mismatch(f"{label}: blockpipe exited {proc.returncode}:\n"
                               f"{tail(self.err_path)}")
            return self.be.checkpoint() == want
        try:
            wait_until(ok, CATCH_UP_TIMEOUT, f"{label}: checkpoint {want}", 0.2)
        except TimeoutError as e:
            raise Mismatch(f"{e}; have {self.be.checkpoint()}\n{tail(self.err_path)}") from None

    def follow(self):
        args = ("--confirmations", "0", "--poll-interval", "0.2", "--batch-size", "4",
                *(("--ml", "on") if self.ml else ()))
        proc = self.spawn(self.cmd("run", *args))
        try:
            if self.ml:  # scored from the run's first block on, through the warm-up
                self.ml_first = self.node.block_number() + 1
                for _ in range(ML_WARM[0]):
                    self.mine(ML_WARM[1])
            for _ in range(6):
                self.mine()
            self.wait_caught_up(proc, "following")
            self.check("following")
            for depth in range(1, 6):
                before = self.node.block_number()
                pairs = [[{"from": self.rng.choice(self.wl.accounts),
                           "to": self.rng.choice(self.wl.contracts), "gas": hex(150000),
                           "data": log_calldata(self.rng, self.rng.randrange(5))},
                          self.rng.randrange(depth)],
                         [{"from": self.rng.choice(self.wl.accounts),
                           "to": self.em.contracts[0], "gas": hex(120000),
                           "data": "0x" + self.em.calldata("erc20")}, self.rng.randrange(depth)]]
                self.node.rpc("anvil_reorg", [depth, pairs])
                self.wl.after_reorg()
                if self.node.block_number() != before:
                    raise Mismatch(f"anvil_reorg({depth}) moved the head")
                for _ in range(depth % 3):
                    self.mine()
                if depth == 3:  # a SIGKILL while following, then a restart
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(30)
                    self.mine()
                    proc = self.spawn(self.cmd("run", *args))
                self.wait_caught_up(proc, f"reorg depth {depth}")
                self.check(f"reorg depth {depth}")
        finally:
            interrupt(proc, 30)
        if proc.returncode != 0:
            raise Mismatch(f"blockpipe run exited {proc.returncode} on SIGINT:\n"
                           f"{tail(self.err_path)}")

    # --- the example queries ------------------------------------------------------------
    def view_rows(self, sql, view, table, keys, time_text, rows):
        """rows (text, NULL as None / PostgreSQL's '') of sql over view: every column the view
        has must equal the recomputed row exp.tables[table][key] (keys: the expected keys, in
        the order sql returns them), as each database returns it: origin_key, the time column
        as UTC 'YYYY-MM-DD HH:MM:SS', contract_address as 0x-hex, integers (wei too) as exact
        decimal text, the two floats (fees_paid_native, fees_paid_usd) within 1e-9 relative
        (metricscheck's tolerance), a NULL only where the recomputation has None."""
        cols = self.be.view_columns(view)
        want_rows = self.exp.tables[table]
        timecol = {"1m": "timestamp", "1h": "hour_ts", "1d": "day_ts"}[table[-2:]]
        known = {"origin_key", timecol} | ({"contract_address"} if table.startswith("contract")
                                            else set())
        sample = set(next(iter(want_rows.values()))) - {"window_start"}  # the time column
        if sorted(cols) != sorted(known | sample):
            raise Mismatch(f"{view}: columns {cols}, want {sorted(known | sample)}")
        if len(rows) != len(keys):
            raise Mismatch(f"{sql}: {len(rows)} rows, want {len(keys)}")
        for row, key in zip(rows, keys):
            w, c = key if isinstance(key, tuple) else (key, None)
            want = dict(want_rows[key], origin_key=ORIGIN, contract_address=c)
            want[timecol] = time_text(w)
            for name, text in zip(cols, row):
                v = want[name]
                h = None if text is None or (text == "" and self.be.label == "postgres") \
                    else text
                if name == "contract_address" and h is not None:
                    h = self.be.address(h)
                if name in FLOAT_COLUMNS:
                    ok = (v is None and h is None) or (v is not None and h is not None and
                                                       math.isclose(float(h), v, rel_tol=1e-9,
                                                                    abs_tol=1e-12))
                else:
                    ok = h == (None if v is None else str(v))
                if not ok:
                    raise Mismatch(f"{sql}: {view}.{name} = {text!r} in the row of {key}, "
                                   f"recomputed: {v!r} (row {dict(zip(cols, row))})")

    def queries(self, exp, time_text):
        """The issue's three example queries, unchanged, then every view whole: each column
        of each row against the recomputation (view_rows)."""
        self.exp = exp
        for q, table, n in ((QUERIES[0], "chain_metrics_1m", 10),
                            (QUERIES[1], "chain_metrics_1h", 24)):
            keys = sorted(exp.tables[table], reverse=True)[:n]
            self.view_rows(q, table + "_v", table, keys, time_text, self.be.query(q))
        rows = self.be.query(QUERIES[2])
        totals = {}
        for (_, c), r in exp.tables["contract_metrics_1d"].items():
            totals[c] = totals.get(c, 0) + r["txcount"]
        want = sorted(totals.values(), reverse=True)[:20]
        got = [r[1] for r in rows]
        # the txs as exact integer text; contracts of equal txs may come in any order
        if got != [str(t) for t in want] or any(
                totals.get(self.be.address(r[0])) != int(r[1]) for r in rows):
            raise Mismatch(f"{QUERIES[2]}: {rows}, want the txs {want} of {totals}")
        for g in ("1m", "1h", "1d"):
            for kind in ("chain", "contract"):
                table = f"{kind}_metrics_{g}"
                timecol = {"1m": "timestamp", "1h": "hour_ts", "1d": "day_ts"}[g]
                order = timecol + (", contract_address" if kind == "contract" else "")
                sql = (f"SELECT * FROM {table}_v WHERE origin_key = '{ORIGIN}' ORDER BY {order}")
                keys = sorted(exp.tables[table])
                self.view_rows(sql, table + "_v", table, keys, time_text, self.be.query(sql))
        print(f"the three example queries and the six views return the recomputed rows, every "
              f"column ({len(rows)} contracts)")

    def ml_uninterrupted(self, preds):
        """Every score of preds (the output's ml_predictions rows) equals the one a fresh
        `backfill --ml on` of the node's chain from block 0, without kills, gives it."""
        from metricscheck import read_sqlite
        head = self.node.block_number()
        ref = os.path.join(self.tmp, "ml-reference.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(ref + suffix):
                os.unlink(ref + suffix)
        cmd = [self.bp, "backfill", "--rpc", self.node.url, "--output", f"sqlite:{ref}",
               "--chain", ORIGIN, "--from", "0", "--to", str(head), "--ml", "on",
               *RETENTION_FOREVER]
        p = self.spawn(cmd)
        if p.wait(300) != 0:
            raise Mismatch(f"reference backfill exited {p.returncode}:\n{tail(self.err_path)}")
        want = {(n, i): (h, f) for n, i, h, f, _ in read_sqlite(ref, ORIGIN)["ml_predictions"]}
        compared = 0
        for n, i, h, f, _ in preds:
            w = want.get((n, i))
            if w is None or w[0] != h or abs(w[1] - f) > 1e-9:
                raise Mismatch(f"ml_predictions ({n}, {i}, {h}): fraud_score {f!r}, an "
                               f"uninterrupted run gives {w}")
            compared += 1
        print(f"ml_predictions: the {compared} scores equal an uninterrupted run's")

    def run(self, time_text):
        for _ in range(40):
            self.mine()
        self.backfill_with_crashes()
        self.check("after the backfill")
        self.follow()
        exp = self.check("at the end")
        self.queries(exp, time_text)
        if self.ml:
            self.ml_uninterrupted(self.be.read(ORIGIN)["ml_predictions"])

    # --- steps of the tests that drive one chain through every output --------------------
    def reorg_tokens(self, depth, more):
        """anvil reorgs the last depth blocks (an ERC-20 call in each new one; the head must
        not move) and mines `more` blocks. Returns the lowest block replaced."""
        before = self.node.block_number()
        pairs = [[{"from": self.rng.choice(self.wl.accounts), "to": self.em.contracts[0],
                   "gas": hex(120000), "data": "0x" + self.em.calldata("erc20")}, k]
                 for k in range(depth)]
        self.node.rpc("anvil_reorg", [depth, pairs])
        self.wl.after_reorg()
        if self.node.block_number() != before:
            raise Mismatch(f"anvil_reorg({depth}) moved the head")
        for _ in range(more):
            self.mine()
        return before - depth + 1

    def exit_code(self, cmd, timeout, env=None):
        """cmd's exit code, "nothing in T s" when it had not exited within timeout (killed)."""
        p = self.spawn(cmd, env)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return f"nothing in {timeout} s"

    def follow_to_head(self, cmd, label, env=None):
        """cmd (a `run`) until the output's checkpoint is the node's head; then SIGINT, on
        which it must exit 0."""
        proc = self.spawn(cmd, env)
        try:
            self.wait_caught_up(proc, label)
        finally:
            interrupt(proc, 60)
        if proc.returncode != 0:
            raise Mismatch(f"{label}: run exited {proc.returncode}:\n{tail(self.err_path)}")

    def close(self):
        self.node.stop()


# --- one scenario through several outputs -------------------------------------------------

KINDS = ("sqlite", "postgres", "clickhouse")


def _server(kind):
    """The output's server, a context manager (nothing for SQLite)."""
    if kind == "postgres":
        from pg import Postgres
        return Postgres()
    if kind == "clickhouse":
        from clickhouse import ClickHouse
        return ClickHouse()
    return contextlib.nullcontext()


def _backend(kind, tmp, server, db):
    """The output's backend, defined beside its own test (tests/integration/test_metrics_*.py,
    on the caller's sys.path)."""
    if kind == "sqlite":
        from test_metrics_sqlite import SqliteBackend
        return SqliteBackend(os.path.join(tmp, "bp.db"))
    if kind == "postgres":
        from test_metrics_pg import PgBackend
        return PgBackend(server)
    from test_metrics_clickhouse import ChBackend
    return ChBackend(server, db)


def each_output(blockpipe, prefix, seed, scenario, kinds=KINDS, db="gtp"):
    """scenario(sc, server) on a fresh Scenario (a new anvil, the same seed) per output kind
    named on the command line (default: all of kinds), each in a temp dir of its own with its
    server (None for SQLite) started before and stopped after; ClickHouse's database is db."""
    for kind in sys.argv[1:] or list(kinds):
        if kind not in kinds:
            raise SystemExit(f"unknown output {kind!r}: one of {', '.join(kinds)}")
        with tempfile.TemporaryDirectory(prefix=f"bp-{prefix}-{kind}-") as tmp, \
                _server(kind) as server:
            sc = Scenario(blockpipe, _backend(kind, tmp, server, db), tmp, seed)
            try:
                scenario(sc, server)
            finally:
                sc.close()
