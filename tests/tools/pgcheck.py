"""pgcheck.py - helpers of the PostgreSQL output tests: the node's canonical chain, the same
read back from blockpipe's tables (through psql), and running blockpipe. stdlib only."""

from __future__ import annotations

import os
import signal
import subprocess
import time


class Fail(AssertionError):
    pass


def node_chain(node, upto=None):
    """[{hash, parent_hash, txs: [hash...], logs: count}] for blocks 0..head of the node."""
    head = node.block_number() if upto is None else upto
    chain = []
    for n in range(head + 1):
        b = node.block(n, False)
        logs = sum(len(r["logs"]) for r in node.receipts(n)) if b["transactions"] else 0
        chain.append({"hash": b["hash"], "parent_hash": b["parentHash"],
                      "txs": [h.lower() for h in b["transactions"]], "logs": logs})
    return chain


def hx(col):
    return f"'0x' || encode({col}, 'hex')"


def checkpoint(pg, schema="public", output="postgres"):
    """(number, hash) of the checkpoint row, None when absent or the tables do not exist."""
    try:
        rows = pg.sql(f"SELECT number, {hx('hash')} FROM {schema}.checkpoints"
                      f" WHERE output = '{output}'")
    except RuntimeError:
        return None
    return (int(rows[0][0]), rows[0][1]) if rows else None


def chain_number(pg, chain, schema="public"):
    """The checkpoint's block number of chain, -1 when absent or the tables do not exist."""
    try:
        rows = pg.sql(f"SELECT number FROM {schema}.checkpoints WHERE chain = '{chain}'")
    except RuntimeError:
        return -1
    return int(rows[0][0]) if rows else -1


# the sessions holding a chain's writer lock (blockpipe's advisory lock namespace)
WRITER_LOCK = ("SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l JOIN "
               "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
               "AND l.classid = 1651534192 AND l.objsubid = 2")


def lock_holder(pg):
    """(backend pid, application_name) of the chain's writer lock holder, None when free (one
    chain in the database)."""
    rows = pg.sql(WRITER_LOCK)
    if len(rows) > 1:
        raise Fail(f"{len(rows)} sessions hold a writer lock of one chain: {rows}")
    return (int(rows[0][0]), rows[0][1]) if rows else None


def check_chain(pg, chain, label, schema="public"):
    """The tables equal the node's chain exactly: every block (hash, parent), the tx hashes of
    every block in order, the log count of every block, no row off the canonical chain.
    Returns (txs, logs)."""
    s = schema
    blocks = pg.sql(f"SELECT number, {hx('hash')}, {hx('parent_hash')} FROM {s}.blocks"
                    f" ORDER BY number")
    numbers = [int(r[0]) for r in blocks]
    if numbers != list(range(len(chain))):
        raise Fail(f"{label}: blocks numbers {numbers[:5]}..{numbers[-5:]} ({len(numbers)} rows),"
                   f" want 0..{len(chain) - 1}")
    for n, h, ph in blocks:
        want = chain[int(n)]
        if (h, ph) != (want["hash"], want["parent_hash"]):
            raise Fail(f"{label}: block {n} is {h} (parent {ph}), node has {want['hash']} "
                       f"(parent {want['parent_hash']})")
    txs = {}
    for bn, bh, h in pg.sql(f"SELECT block_number, {hx('block_hash')}, {hx('hash')} FROM "
                            f"{s}.transactions ORDER BY block_number, transaction_index"):
        bn = int(bn)
        if bn >= len(chain) or bh != chain[bn]["hash"]:
            raise Fail(f"{label}: orphan transaction {h} in block {bn} {bh}")
        txs.setdefault(bn, []).append(h)
    logs = {}
    for bn, bh, li in pg.sql(f"SELECT block_number, {hx('block_hash')}, log_index FROM {s}.logs"):
        bn = int(bn)
        if bn >= len(chain) or bh != chain[bn]["hash"]:
            raise Fail(f"{label}: orphan log {li} in block {bn} {bh}")
        logs[bn] = logs.get(bn, 0) + 1
    for n, want in enumerate(chain):
        if txs.get(n, []) != want["txs"]:
            raise Fail(f"{label}: block {n} txs {txs.get(n, [])}, node has {want['txs']}")
        if logs.get(n, 0) != want["logs"]:
            raise Fail(f"{label}: block {n} has {logs.get(n, 0)} logs, node has {want['logs']}")
    return sum(len(b["txs"]) for b in chain), sum(b["logs"] for b in chain)


def blockpipe_bin():
    bp = os.environ.get("BLOCKPIPE")
    if not bp or not os.access(bp, os.X_OK):
        raise Fail(f"$BLOCKPIPE is not an executable ({bp!r})")
    return bp


def run(cmd, timeout=300, env=None):
    """Runs blockpipe to completion; returns (returncode, combined output)."""
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout + p.stderr


def wait_for(pred, timeout, what, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise Fail(f"timed out after {timeout}s waiting for {what}")


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class RunProc:
    """A `blockpipe run ARGS` process with its output in TMP/NAME.log, stopped by its PID:
    stop() with SIGTERM (a non-zero exit is a Fail), kill() with SIGKILL (after SIGCONT, in
    case the test had stopped it). stop_timeout: seconds SIGTERM may take."""

    def __init__(self, bp, tmp, name, args, stop_timeout=90):
        self.name, self.path = name, os.path.join(tmp, f"{name}.log")
        self.stop_timeout = stop_timeout
        with open(self.path, "w") as log:
            self.p = subprocess.Popen([bp, "run", *args], stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT)
        self.pid = self.p.pid

    def text(self):
        with open(self.path, errors="replace") as f:
            return f.read()

    def alive(self):
        if self.p.poll() is not None:
            raise Fail(f"{self.name} exited {self.p.returncode}:\n{tail(self.path)}")
        return True

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        if self.p.wait(timeout=self.stop_timeout) != 0:
            raise Fail(f"{self.name} exited {self.p.returncode} on SIGTERM:\n{tail(self.path)}")

    def kill(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.kill()
            self.p.wait()
