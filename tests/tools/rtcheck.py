"""rtcheck.py - shared pieces of the real-time tests (tests/integration/test_realtime*.py):
run `blockpipe run` with its stderr in a file, parse its `stats realtime` lines, mine in the
background, and check its SQLite and JSON-lines outputs against the node. Python 3 standard
library only.

    from rtcheck import Blockpipe, Miner, check_outputs
    bp = Blockpipe(tmpdir, ["--rpc", node.url, "--ws", ws_url])   # adds the two outputs
    bp.wait_realtime(lambda rt: rt.get("mode") == "websocket", 20, "mode=websocket")
    ...
    check_outputs(node, bp, bp.wait_caught_up(node))
    bp.stop()                              # SIGINT, must exit 0 within 15 s

The checks are exact: the `blocks` table holds 0..N once each with the node's hash, parent
hash, transaction hashes (in order) and log count, no transaction or log row is off the
canonical chain, and the JSON-lines stream, replayed event by event (an APPLY must extend the
tip, a REVERT must remove the tip), ends as the node's chain; without reorgs every height is
applied exactly once (a duplicate or a gap fails).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from anvil import unq, wait_until

STOP_TIMEOUT = 15
_KV = re.compile(r'([A-Za-z_][\w/]*)=("(?:[^"\\]|\\.)*"|\S+)')


class CheckFailed(AssertionError):
    pass


def fail(msg):
    raise CheckFailed(msg)


def blockpipe_path() -> str:
    path = os.environ.get("BLOCKPIPE")
    if not path or not os.access(path, os.X_OK):
        raise SystemExit(f"FAIL: $BLOCKPIPE is not an executable ({path!r})")
    return path


def parse_realtime(line: str) -> dict:
    """'... stats realtime mode=websocket ws=subscribed ... p99=2.0' -> {'mode': 'websocket',
    ..., 'count': 12.0, 'p99': 2.0}; numbers become floats, quoted values are unquoted."""
    out = {}
    for k, v in _KV.findall(line.split("stats realtime", 1)[1]):
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])  # \" and \\ are escaped inside quotes
        else:
            try:
                v = float(v)
            except ValueError:
                pass
        out[k] = v
    return out


def tail_text(path, n=40):
    try:
        with open(path, errors="replace") as f:
            lines = [ln for ln in f.readlines() if "stats rpc[" not in ln]
        return "".join(lines[-n:])
    except OSError:
        return ""


class Blockpipe:
    """`blockpipe run ARGS --output sqlite:TMP/bp.db --output jsonl:TMP/jsonl`, stderr in
    TMP/<name>.stderr. Stopped by PID (SIGINT, then SIGKILL) in kill()."""

    def __init__(self, tmp: str, args, name: str = "bp"):
        self.db = os.path.join(tmp, f"{name}.db")
        self.jsonl = os.path.join(tmp, f"{name}-jsonl")
        self.err_path = os.path.join(tmp, f"{name}.stderr")
        self.cmd = [blockpipe_path(), "run", *[str(a) for a in args],
                    "--output", f"sqlite:{self.db}", "--output", f"jsonl:{self.jsonl}"]
        print("running:", " ".join(self.cmd), flush=True)
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err)

    # --- logs
    def log(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def tail(self, n=40) -> str:
        return tail_text(self.err_path, n)

    def realtime_lines(self) -> list[dict]:
        return [parse_realtime(ln) for ln in self.log().splitlines() if "stats realtime " in ln]

    def last_realtime(self) -> dict | None:
        lines = self.realtime_lines()
        return lines[-1] if lines else None

    def alive(self, what: str):
        if self.proc.poll() is not None:
            fail(f"blockpipe exited with {self.proc.returncode} while {what}; stderr:\n"
                 + self.tail())

    def wait_realtime(self, pred, timeout: float, what: str) -> dict:
        """Waits for a `stats realtime` line that satisfies pred (the newest one is tested)."""
        def ok():
            self.alive(f"waiting for {what}")
            rt = self.last_realtime()
            return rt if rt is not None and pred(rt) else None
        try:
            return wait_until(ok, timeout, f"a 'stats realtime' line with {what}", 0.1)
        except TimeoutError as e:
            fail(f"{e}; last realtime line: {self.last_realtime()}; stderr:\n{self.tail()}")

    def wait_log(self, pattern: str, timeout: float, what: str, after: int = 0) -> re.Match:
        """Waits until stderr (from byte offset `after`) matches the regex; returns the match."""
        rx = re.compile(pattern)

        def ok():
            self.alive(f"waiting for {what}")
            return rx.search(self.log(), after)
        try:
            return wait_until(ok, timeout, what, 0.1)
        except TimeoutError as e:
            fail(f"{e} (regex {pattern!r} not in stderr); stderr:\n{self.tail()}")

    # --- outputs
    def checkpoint(self):
        if not os.path.exists(self.db):
            return None
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT number, hash FROM checkpoints").fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()
        if len(rows) > 1:
            fail(f"checkpoints has {len(rows)} rows, want 1: {rows}")
        return tuple(rows[0]) if rows else None

    def wait_caught_up(self, node, timeout: float = 60, label: str = "catch-up"):
        """Until the SQLite checkpoint is the node's current head (number and hash)."""
        def ok():
            self.alive(label)
            head = node.block_number()
            want = (head, node.block(head, False)["hash"])
            return want if self.checkpoint() == want else None
        try:
            return wait_until(ok, timeout, f"{label}: SQLite checkpoint == node head", 0.1)
        except TimeoutError as e:
            fail(f"{e}; checkpoint is {self.checkpoint()}, node head is "
                 f"{node.block_number()}; stderr:\n{self.tail()}")

    def wait_checkpoint_at_least(self, n: int, timeout: float, label: str):
        def ok():
            self.alive(label)
            cp = self.checkpoint()
            return cp if cp is not None and cp[0] >= n else None
        try:
            return wait_until(ok, timeout, f"{label}: SQLite checkpoint >= {n}", 0.1)
        except TimeoutError as e:
            fail(f"{e}; checkpoint is {self.checkpoint()}; stderr:\n{self.tail()}")

    # --- stop
    def stop(self):
        """SIGINT; blockpipe must exit 0 within STOP_TIMEOUT seconds."""
        if self.proc.poll() is not None:
            fail(f"blockpipe had already exited with {self.proc.returncode}; stderr:\n"
                 + self.tail())
        self.proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"blockpipe did not exit within {STOP_TIMEOUT}s of SIGINT:\n{self.tail()}")
        if rc != 0:
            fail(f"blockpipe exited {rc} after SIGINT, want 0; stderr:\n{self.tail()}")
        print(f"check: SIGINT -> exit 0 after {time.monotonic() - t0:.1f}s", flush=True)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._err.closed:
            self._err.close()


class Miner(threading.Thread):
    """Mines a block every `every` seconds until stop(); with a Workload, every other block
    carries 1-3 random txs (only this thread touches the workload while it runs)."""

    def __init__(self, node, every: float, wl=None):
        super().__init__(daemon=True)
        self.node, self.every, self.wl = node, every, wl
        self.halt = threading.Event()
        self.mined = 0
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                if self.wl is not None and self.mined % 2 == 0:
                    self.wl.mine_batch(1 + self.mined % 3)
                else:
                    self.node.mine()
                self.mined += 1
                self.halt.wait(self.every)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the miner thread failed: {self.error!r}")


# --- the checks ------------------------------------------------------------------------

def node_chain(node, upto: int) -> list[dict]:
    chain = []
    for n in range(upto + 1):
        b = node.block(n, False)
        logs = sum(len(r["logs"]) for r in node.receipts(n)) if b["transactions"] else 0
        chain.append({"hash": b["hash"], "parent_hash": b["parentHash"],
                      "txs": [h.lower() for h in b["transactions"]], "logs": logs})
    return chain


def check_sqlite(path: str, chain: list[dict], label: str):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        db.execute("BEGIN")
        blocks = db.execute("SELECT number, hash, parent_hash, transaction_count FROM blocks "
                            "ORDER BY number").fetchall()
        numbers = [r[0] for r in blocks]
        if numbers != list(range(len(chain))):
            missing = sorted(set(range(len(chain))) - set(numbers))
            extra = sorted(set(numbers) - set(range(len(chain))))
            fail(f"{label}: SQLite blocks are not exactly 0..{len(chain) - 1} once each: "
                 f"{len(numbers)} rows, missing {missing[:10]}, extra {extra[:10]}")
        for n, h, ph, tc in blocks:
            want = chain[n]
            if (h, ph) != (want["hash"], want["parent_hash"]):
                fail(f"{label}: SQLite block {n} is hash={h} parent={ph}; the node has "
                     f"hash={want['hash']} parent={want['parent_hash']}")
            if tc != len(want["txs"]):
                fail(f"{label}: SQLite block {n} transaction_count={tc}, node has "
                     f"{len(want['txs'])}")
        txs = {}
        for bn, bh, h in db.execute("SELECT block_number, block_hash, hash FROM transactions "
                                    "ORDER BY block_number, transaction_index"):
            if bn >= len(chain) or bh != chain[bn]["hash"]:
                fail(f"{label}: orphan transaction row {h} block_number={bn} block_hash={bh}")
            txs.setdefault(bn, []).append(h)
        for n, want in enumerate(chain):
            if txs.get(n, []) != want["txs"]:
                fail(f"{label}: block {n}: SQLite txs {txs.get(n, [])}, node {want['txs']}")
        logs = {}
        for bn, bh, li in db.execute("SELECT block_number, block_hash, log_index FROM logs"):
            if bn >= len(chain) or bh != chain[bn]["hash"]:
                fail(f"{label}: orphan log row block_number={bn} log_index={li} block_hash={bh}")
            logs[bn] = logs.get(bn, 0) + 1
        for n, want in enumerate(chain):
            if logs.get(n, 0) != want["logs"]:
                fail(f"{label}: block {n}: {logs.get(n, 0)} SQLite log rows, node has "
                     f"{want['logs']}")
        db.execute("COMMIT")
    finally:
        db.close()


def replay_jsonl(path: str, label: str):
    """Replays blocks.jsonl: returns (tip chain as [(number, hash)], applies per height,
    the list of events as (kind, number, hash)). Fails on an APPLY that does not extend the
    tip or a REVERT that is not the tip."""
    stack, applied, events = [], {}, []
    if not os.path.exists(os.path.join(path, "blocks.jsonl")):
        fail(f"{label}: {path}/blocks.jsonl does not exist")
    with open(os.path.join(path, "blocks.jsonl")) as f:
        for i, line in enumerate(f, 1):
            if not line.endswith("\n"):
                fail(f"{label}: blocks.jsonl line {i} is cut short: {line[:80]!r}")
            o = json.loads(line)
            kind, n, h = o["type"], int(o["number"]), o["hash"]
            events.append((kind, n, h))
            if kind == "block":
                if stack and (n != stack[-1][0] + 1 or o["parent_hash"] != stack[-1][1]):
                    fail(f"{label}: blocks.jsonl line {i}: APPLY {n} {h[:12]}… parent "
                         f"{o['parent_hash'][:12]}… does not extend the tip {stack[-1][0]} "
                         f"{stack[-1][1][:12]}…")
                stack.append((n, h))
                applied[n] = applied.get(n, 0) + 1
            elif kind == "revert":
                if not stack or stack[-1] != (n, h):
                    fail(f"{label}: blocks.jsonl line {i}: REVERT {n} {h[:12]}… is not the tip "
                         f"{stack[-1] if stack else None}")
                stack.pop()
            else:
                fail(f"{label}: blocks.jsonl line {i}: unknown type {kind!r}")
    return stack, applied, events


def check_outputs(node, bp: Blockpipe, upto, label: str, reorgs: bool = False):
    """SQLite and JSON-lines outputs equal the node's blocks 0..upto (checkpoint tuple or
    number); without reorgs every height was applied exactly once."""
    n = upto[0] if isinstance(upto, tuple) else upto
    chain = node_chain(node, n)
    check_sqlite(bp.db, chain, label + " (sqlite)")
    want = [(i, b["hash"]) for i, b in enumerate(chain)]

    def jsonl_ok():
        stack, applied, _ = replay_jsonl(bp.jsonl, label + " (jsonl)")
        # the second output is written right after the first: it may be a moment behind the
        # SQLite checkpoint we waited for, or a batch ahead of it
        if stack[:len(want)] != want:
            bad = next(i for i in range(len(want)) if i >= len(stack) or stack[i] != want[i])
            fail(f"{label} (jsonl): replayed chain differs from the node at height {bad}: "
                 f"{stack[bad] if bad < len(stack) else 'missing'} vs {want[bad]}")
        if not reorgs:
            dups = {h: c for h, c in applied.items() if c != 1}
            if dups:
                fail(f"{label} (jsonl): heights applied more than once: "
                     f"{dict(list(dups.items())[:10])}")
        return True
    deadline = time.monotonic() + 60  # a hang guard: the second output follows at once
    while True:
        try:
            jsonl_ok()
            break
        except CheckFailed:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    ntx = sum(len(b["txs"]) for b in chain)
    nlogs = sum(b["logs"] for b in chain)
    print(f"check: {label}: blocks 0..{n} exactly once, hashes/parents/txs/logs equal the node "
          f"({ntx} txs, {nlogs} logs), in SQLite and JSON lines", flush=True)
    return chain


def node_head(node):
    h = node.block_number()
    return h, node.block(h, False)["hash"]


def ws_url(http_url: str) -> str:
    return "ws://" + http_url.split("://", 1)[1]


def hexnum(x) -> int:
    return unq(x)


class Server:
    """A helper server (tcpproxy.py, ws_bad_server.py) started as `python3 SCRIPT ARGS`; it
    prints "PORT n" once listening. Stopped by PID in stop() (and at exit: PR_SET_PDEATHSIG
    via anvil's _pdeathsig, so a killed test leaves none behind)."""

    def __init__(self, script: str, args=(), timeout: float = 10):
        import select
        from anvil import _pdeathsig
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen([sys.executable, os.path.join(here, script),
                                      *[str(a) for a in args]], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True, preexec_fn=_pdeathsig)
        _SERVERS.append(self)
        self.port = None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                line = self.proc.stdout.readline()
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                    break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{script} {args} printed no 'PORT n' within {timeout:.0f}s "
                               f"(last line {line!r}, exit {self.proc.returncode})")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def expect(self, prefix: str, timeout: float = 5) -> str:
        """The next stdout line, which must start with prefix (e.g. tcpproxy's "CUT")."""
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if r else ""
        if not line.startswith(prefix):
            fail(f"helper server: want a line starting with {prefix!r} within {timeout:.0f}s, "
                 f"got {line!r}")
        return line.strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _SERVERS:
            _SERVERS.remove(self)


_SERVERS: list[Server] = []


def _stop_servers():
    for s in list(_SERVERS):
        s.stop()


atexit.register(_stop_servers)
