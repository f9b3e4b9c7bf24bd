"""pgcheck.py - helpers of the PostgreSQL output tests: the node's canonical chain, the same
read back from blockpipe's tables (through psql), and running blockpipe; and of any test
script: its main (script_main, script_body), the tails of blockpipe's logs when it failed (print_tails).
stdlib only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback


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


def kill_running(*procs):
    """Kills and reaps each process (a Popen) still running; None and ended ones are passed
    over. A test's `finally`: no blockpipe it started outlives it, whatever failed."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


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


# --- a backfill whose output breaks (test_pg_group_unanswered, test_pg_stopped_server) ------

def backfill_proc(bp, rpc, last, url, log, *extra):
    """`blockpipe backfill` of blocks 0..last in batches of 5 into url, waiting at most 1 s for
    the database at start (--wait-for-db 1); its output into the open file log."""
    return subprocess.Popen([bp, "backfill", "--rpc", rpc, "--from", "0", "--to", str(last),
                             "--batch-size", "5", "--output", url, "--wait-for-db", "1", *extra],
                            stdout=log, stderr=subprocess.STDOUT)


def broken_backfill(start, log_path, passed, at, breaks, hang, what, label="", undo=None):
    """Runs start(log) (a backfill's Popen) with its output in log_path; once passed() (its
    checkpoint) is at least `at`, breaks() breaks what it writes to, and the backfill must exit
    within hang s: a Fail when it exited before (nothing was broken) or still waits. undo()
    runs always, before the backfill is killed (when it has to be). what: (the break, what it
    did), for the messages. Returns the exit code."""
    with open(log_path, "w") as log:
        p = start(log)
        try:
            wait_for(lambda: p.poll() is not None or passed() >= at, hang,
                     f"{label}checkpoint past {at}", 0.05)
            if p.poll() is not None:
                raise Fail(f"{label}backfill exited {p.returncode} before {what[0]}:\n"
                           f"{tail(log_path)}")
            breaks()
            try:
                return p.wait(timeout=hang)
            except subprocess.TimeoutExpired:
                raise Fail(f"{label}backfill still waits {hang} s after {what[1]}:\n"
                           f"{tail(log_path)}") from None
        finally:
            try:
                if undo:
                    undo()
            finally:
                kill_running(p)


def run_to_end(start, log_path, timeout):
    """start(log) (a blockpipe Popen) with its output in log_path, waited for: its exit code;
    subprocess.TimeoutExpired after timeout s (it is killed)."""
    with open(log_path, "w") as log:
        p = start(log)
        try:
            return p.wait(timeout=timeout)
        finally:
            kill_running(p)


def last_error(text):
    """The last line of blockpipe's log text at level error, "" when none."""
    errors = [ln for ln in text.splitlines() if " error " in ln]
    return errors[-1] if errors else ""


def stored_blocks(pg, schema):
    """(rows, distinct numbers, highest number or -1) of schema.blocks."""
    rows = pg.sql(f"SELECT count(*), count(DISTINCT number), coalesce(max(number), -1) "
                  f"FROM {schema}.blocks")
    return tuple(int(v) for v in rows[0])


def check_prefix(pg, schema, label=""):
    """Nothing lost, nothing doubled: the blocks table holds exactly 0..checkpoint, each once.
    Returns the checkpoint's number."""
    cp = checkpoint(pg, schema)
    count, distinct, top = stored_blocks(pg, schema)
    if not cp or count != cp[0] + 1 or distinct != count or top != cp[0]:
        raise Fail(f"{label}checkpoint {cp}, blocks table {count} rows ({distinct} distinct) "
                   f"up to {top}: want exactly 0..checkpoint, each once")
    return cp[0]


def check_complete(pg, schema, last, rc, log_path, label=""):
    """A backfill of 0..last that exited rc (with its log in log_path) succeeded: exit 0,
    blocks 0..last each once, the checkpoint at last."""
    count, distinct, top = stored_blocks(pg, schema)
    cp = checkpoint(pg, schema)
    if rc != 0 or count != last + 1 or distinct != count or top != last or not cp \
            or cp[0] != last:
        raise Fail(f"{label}the backfill again: exit {rc}, blocks table {count} rows "
                   f"({distinct} distinct) up to {top}, checkpoint {cp}:\n{tail(log_path)}")


# --- a test script's main ---------------------------------------------------------------

FAILURES = (AssertionError, subprocess.TimeoutExpired, TimeoutError, RuntimeError)


def script_main(main, failures=FAILURES):
    """Runs a test script's main(): a failure it raises ends the script with "FAIL: why" and
    exit 1 (with the traceback too when it is not a Fail or an AssertionError: a server that
    did not start, a wait that ran out)."""
    try:
        main()
    except failures as e:
        if not isinstance(e, AssertionError):
            traceback.print_exc()
        sys.exit(f"FAIL: {e}")


@contextlib.contextmanager
def script_body(ok):
    """A test script's main body: `with script_body("OK: ...") as keep:`, then
    `node = keep(Simnode(...))` (or a Popen) for each thing it starts. What keep() was given is
    killed on the way out (the last first), whatever happened; a Fail, an AssertionError, an
    OSError or a subprocess.TimeoutExpired ends the script with "FAIL: why" (exit 1); a body
    that ends prints ok."""
    started = []

    def keep(thing):
        started.append(thing)
        return thing

    try:
        yield keep
    except (AssertionError, OSError, subprocess.TimeoutExpired) as e:
        sys.exit(f"FAIL: {e}")
    finally:
        for thing in reversed(started):
            if isinstance(thing, subprocess.Popen):
                kill_running(thing)
            else:
                thing.kill()
    print(ok, flush=True)


def print_tails(*paths, chars=4000):
    """Prints the tail (chars) of each of blockpipe's logs that exists (a test that failed:
    what blockpipe said before); a directory stands for all its *.log files."""
    for path in paths:
        if os.path.isdir(path):
            print_tails(*(os.path.join(path, n) for n in sorted(os.listdir(path))
                          if n.endswith(".log")), chars=chars)
        elif os.path.exists(path):
            with open(path, errors="replace") as f:
                print(f"--- {os.path.basename(path)} (tail) ---\n" + f.read()[-chars:])
