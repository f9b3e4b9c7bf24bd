"""metricsdrive.py - the analytics scenario one SQL output goes through (test_metrics_sqlite.py,
test_metrics_pg.py): an anvil chain whose blocks are spread over minutes, hours and days
(evm_setNextBlockTimestamp) with the random workload plus token events (ERC-20/721/1155 and a
malformed Transfer); a backfill crashed before its first COMMIT (crash point) and SIGKILLed at
random times during its inserts, then finished; `run --confirmations 0` following the head
through reorgs of depth 1..5 and a SIGKILL; after each step every row of every derived table
must equal tests/tools/metricscheck.py's recomputation from the node's own blocks and
receipts; then the issue's three example queries, unchanged, must return the recomputed rows.
With ml=True (test_metrics_sqlite.py, test_metrics_pg.py) the follow runs with `--ml on`: its
first blocks carry ML_WARM transactions (more than the model's warm-up, docs/SCHEMA.md) so that
the run scores every later block, and ml_predictions must hold one row per canonical transaction
of each block the trained process applied (from the first after the warm-up to the SIGKILL),
every block scored whole, none of a reverted block's transactions after the reorgs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from anvil import Anvil, Workload, log_calldata, wait_until
from metricscheck import Expected, Mismatch, TokenEmitter, compare

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


class Scenario:
    """backend: .url (output URL), .checkpoint() -> (number, hash) | None, .read(origin),
    .query(sql) -> rows (lists of text), .label."""

    def __init__(self, blockpipe, backend, tmpdir, seed, ml=False):
        self.bp, self.be, self.tmp = blockpipe, backend, tmpdir
        self.ml = ml
        # the heights a run with a trained model applied: ml_first.. (ml_last excluded, None:
        # up to the head)
        self.ml_first, self.ml_last = None, None
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

    def check(self, label):
        blocks, receipts = self.node_chain()
        exp = Expected(blocks, receipts, ORIGIN)
        scored = range(0) if self.ml_first is None else range(
            self.ml_first, len(blocks) if self.ml_last is None else self.ml_last)
        try:
            counts = compare(exp, self.be.read(ORIGIN), label=f"{label}: ", scored=scored)
            if self.ml_first is not None and not counts["ml_predictions"]:
                raise Mismatch(f"{label}: ml_predictions is empty with --ml on")
        except Mismatch as e:
            raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(self.err_path)}") from None
        print(f"{label}: every derived row equals the recomputation: "
              + " ".join(f"{t}={n}" for t, n in counts.items() if n))
        return exp

    # --- blockpipe --------------------------------------------------------------------------
    def cmd(self, verb, *extra):
        return [self.bp, verb, "--rpc", self.node.url, "--output", self.be.url, "--chain",
                ORIGIN, "--stats-interval", "1", *RETENTION_FOREVER, *extra]

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
        kills, last = 0, self.be.checkpoint()
        while True:
            p = self.spawn(self.cmd("backfill", *args), {"BP_GROUP_MS": "0"})
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
            if self.ml:  # the model learns from these (no rows), then scores every block
                for _ in range(ML_WARM[0]):
                    self.mine(ML_WARM[1])
                self.ml_first = self.node.block_number() + 1
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
                if depth >= 3 and self.ml_first is not None:
                    # the SIGKILL below may come before the run applied this reorg, and the
                    # run started again learns anew (no rows): from here no block must be
                    # scored, the ones below stay as the trained run scored them
                    low = before - depth + 1
                    self.ml_last = low if self.ml_last is None else min(self.ml_last, low)
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
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if proc.returncode != 0:
            raise Mismatch(f"blockpipe run exited {proc.returncode} on SIGINT:\n"
                           f"{tail(self.err_path)}")

    # --- the example queries ------------------------------------------------------------
    def queries(self, exp, time_text):
        for q, table, n in ((QUERIES[0], "chain_metrics_1m", 10), (QUERIES[1], "chain_metrics_1h", 24)):
            rows = self.be.query(q)
            want = sorted(exp.tables[table].items(), reverse=True)[:n]
            if len(rows) != len(want):
                raise Mismatch(f"{q}: {len(rows)} rows, want {len(want)}")
            # the view's columns: origin_key, the time, block_count, first_block, last_block,
            # txcount, ... (docs/SCHEMA.md)
            for row, (w, r) in zip(rows, want):
                got = (row[0], row[1], int(row[2]), int(row[5]))
                if got != (ORIGIN, time_text(w), r["block_count"], r["txcount"]):
                    raise Mismatch(f"{q}: row {row[:6]}, want origin {ORIGIN}, time "
                                   f"{time_text(w)}, {r['block_count']} blocks, txcount "
                                   f"{r['txcount']}")
        rows = self.be.query(QUERIES[2])
        totals = {}
        for (_, c), r in exp.tables["contract_metrics_1d"].items():
            totals[c] = totals.get(c, 0) + r["txcount"]
        want = sorted(totals.values(), reverse=True)[:20]
        got = [int(r[1]) for r in rows]
        if got != want or any(totals.get(self.be.address(r[0])) != int(r[1]) for r in rows):
            raise Mismatch(f"{QUERIES[2]}: {rows}, want the txs {want} of {totals}")
        print(f"the three example queries return the recomputed rows ({len(rows)} contracts)")

    def run(self, time_text):
        for _ in range(40):
            self.mine()
        self.backfill_with_crashes()
        self.check("after the backfill")
        self.follow()
        exp = self.check("at the end")
        self.queries(exp, time_text)

    def close(self):
        self.node.stop()
