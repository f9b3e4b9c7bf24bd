"""outcheck.py - every output kind read back and compared with the node's chain, each block
exactly once; and the debug lines that tell whether a kill landed while an output was
being written. For the kill -9, confirmation and reorg tests. Python 3 stdlib only.

    outs = Outputs(tmpdir, pg=pg)           # sqlite + etl-csv + jsonl (+ postgres if pg)
    cmd = [blockpipe, "run", ...] + outs.args()
    outs.checkpoints()    # {kind: (number, hash) | None}; an output that cannot be read
                          # (SQLite that does not open, checkpoint.json that does not parse,
                          # files shorter than it records, a failing query) raises Fail
    outs.check(chain, "label")   # every output holds exactly `chain` (node_chain(node)):
                          # SQLite/PostgreSQL rows, and for the files the rows that remain
                          # once the reverts are applied; each block once, no orphan rows,
                          # checkpoint = the chain's tip
    WriteLog(err_path).mid_write()   # the output being written when the process died

File outputs keep what they wrote after their last checkpoint until the next start truncates
it, so check() is for outputs of a process that stopped cleanly (it checks that every file
has exactly the size checkpoint.json records). Fail, node_chain and blockpipe_bin are
pgcheck's, so that the tests catch one failure class.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import time

from pgcheck import Fail, blockpipe_bin, node_chain  # noqa: F401 (used by the tests)

CHAIN = "31337"  # anvil's chain id: the default chain name


def reorg_txs(rng, wl, depth):
    """Transactions for anvil_reorg's new blocks: a transfer and 1-3 logger calls (an
    anvil.Workload after setup), at random offsets in the `depth` new blocks."""
    from anvil import log_calldata
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    for _ in range(rng.randrange(1, 4)):
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(5))}, rng.randrange(depth)])
    return pairs


def node_head(node):
    """(number, hash) of the node's head."""
    h = node.block_number()
    return h, node.block(h, False)["hash"]


# --- which output was being written ---------------------------------------------------------

_WRITING = re.compile(r"output '([^']+)': writing (\d+) events \((\d+) reverts\) up to block "
                      r"(\d+) (\S*)")
_WRITTEN = re.compile(r"output '([^']+)': written")


class WriteLog:
    """The `--log-level debug` lines outputs.c prints around each output's write."""

    def __init__(self, path):
        self.path = path

    def events(self):
        """[(url, 'writing', reverts, (number, hash)) | (url, 'written', None, None)]."""
        out = []
        with open(self.path, errors="replace") as f:
            for line in f:
                m = _WRITING.search(line)
                if m:
                    out.append((m.group(1), "writing", int(m.group(3)),
                                (int(m.group(4)), m.group(5))))
                    continue
                m = _WRITTEN.search(line)
                if m:
                    out.append((m.group(1), "written", None, None))
        return out

    def mid_write(self, outs):
        """(kind, reverts, (number, hash)) of the write the process was in when it died,
        else None: the last line about that output says it started writing, never that it
        finished, and its checkpoint is not the one that write would have left (a kill after
        the commit but before the "written" line does not count)."""
        last = {}
        for url, what, reverts, upto in self.events():
            last[url] = (what, reverts, upto)
        pending = [(u, r, n) for u, (w, r, n) in last.items() if w == "writing"]
        if len(pending) > 1:
            raise Fail(f"{self.path}: several outputs written at once? {pending}")
        if not pending:
            return None
        kind = outs.kind_of(pending[0][0])
        if outs.checkpoints()[kind] == pending[0][2]:
            return None
        return kind, pending[0][1], pending[0][2]


# --- the outputs ----------------------------------------------------------------------------

class Outputs:
    KINDS = ("sqlite", "etl-csv", "jsonl", "postgres")

    def __init__(self, tmp, pg=None, kinds=None, chain=CHAIN):
        self.pg = pg
        self.chain = chain
        self.kinds = [k for k in (kinds or self.KINDS) if k != "postgres" or pg is not None]
        os.makedirs(tmp, exist_ok=True)
        self.db = os.path.join(tmp, "out.db")
        self.csv = os.path.join(tmp, "csv")
        self.jsonl = os.path.join(tmp, "jsonl")

    def urls(self):
        """kind -> the URL blockpipe names it by in its logs (postgres redacted)."""
        u = {"sqlite": f"sqlite:{self.db}", "etl-csv": f"etl-csv:{self.csv}",
             "jsonl": f"jsonl:{self.jsonl}"}
        if self.pg is not None:
            u["postgres"] = self.pg.url()
        return {k: u[k] for k in self.kinds}

    def logged_url(self, kind):
        """The URL as blockpipe's log lines show it (a password as ***)."""
        return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", self.urls()[kind])

    def args(self):
        out = []
        for url in self.urls().values():
            out += ["--output", url]
        return out

    def kind_of(self, logged_url):
        """The kind of an output named in a log line (its URL, credentials redacted)."""
        for k in self.kinds:
            if logged_url.startswith(k):
                return k
        raise Fail(f"unknown output in the log: {logged_url}")

    # --- checkpoints (strict: an output that cannot be read is a failure) ---

    def checkpoints(self):
        return {k: getattr(self, "_cp_" + k.replace("-", "_"))() for k in self.kinds}

    def _cp_sqlite(self):
        if not os.path.exists(self.db):
            return None
        try:
            # read-write: a WAL database left by a killed writer may need recovery
            db = sqlite3.connect(self.db, timeout=10)
            try:
                ok = db.execute("PRAGMA quick_check").fetchone()[0]
                if ok != "ok":
                    raise Fail(f"SQLite {self.db}: quick_check says {ok!r}")
                tables = {r[0] for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "checkpoints" not in tables:
                    # a schema being created: fine while no block is stored
                    if "blocks" in tables and db.execute("SELECT COUNT(*) FROM blocks"
                                                         ).fetchone()[0]:
                        raise Fail(f"SQLite {self.db}: blocks but no checkpoints table")
                    return None
                rows = db.execute("SELECT number, hash FROM checkpoints WHERE chain = ?",
                                  (self.chain,)).fetchall()
            finally:
                db.close()
        except sqlite3.Error as e:
            raise Fail(f"SQLite {self.db} cannot be read: {e}") from e
        if len(rows) > 1:
            raise Fail(f"SQLite {self.db}: {len(rows)} checkpoint rows: {rows}")
        return tuple(rows[0]) if rows else None

    def _file_cp(self, d):
        path = os.path.join(d, "checkpoint.json")
        if not os.path.isdir(d):
            return None
        if not os.path.exists(path):
            # a directory being created: no checkpoint yet is fine while no file has data
            data = [n for n in os.listdir(d)
                    if not n.startswith(("checkpoint.json", "blockpipe.lock"))
                    and os.path.getsize(os.path.join(d, n)) > 0]
            if data:
                raise Fail(f"{d}: no checkpoint.json, but {data} hold data")
            return None
        try:
            with open(path) as f:
                cp = json.load(f)
        except (OSError, ValueError) as e:
            raise Fail(f"{path} cannot be read: {e}") from e
        for name, size in cp.get("sizes", {}).items():
            have = os.path.getsize(os.path.join(d, name)) if os.path.exists(
                os.path.join(d, name)) else -1
            if have < size:
                raise Fail(f"{d}/{name}: {have} bytes but checkpoint.json records {size}: "
                           f"data was lost")
        c = cp.get("chains", {}).get(self.chain)
        return (c["number"], c["hash"]) if c else None

    def _cp_etl_csv(self):
        return self._file_cp(self.csv)

    def _cp_jsonl(self):
        return self._file_cp(self.jsonl)

    def _cp_postgres(self):
        try:
            rows = self.pg.sql("SELECT number, '0x' || encode(hash, 'hex') FROM checkpoints "
                               f"WHERE chain = '{self.chain}'")
        except RuntimeError as e:
            if "does not exist" in str(e):
                return None  # no table yet: nothing written
            raise Fail(f"PostgreSQL cannot be read: {e}") from e
        if len(rows) > 1:
            raise Fail(f"PostgreSQL: {len(rows)} checkpoint rows: {rows}")
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def wait(self, want, proc, label, timeout=60, check=None):
        """Until every output's checkpoint is want ((number, hash)); check(cps), if given,
        runs on every look (it raises on what must never be seen meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            cps = self.checkpoints()
            if check:
                check(cps)
            if all(cp == want for cp in cps.values()):
                return
            proc.alive(label)
            if time.monotonic() > deadline:
                raise Fail(f"{label}: outputs at {cps}, want {want} after {timeout}s:\n"
                           f"{proc.tail()}")
            time.sleep(0.05)

    def killed(self, log, est):
        """After a SIGKILL: every output must be readable; est (kind -> seconds one write
        takes) learns from the log; returns mid_write's verdict."""
        mid = WriteLog(log).mid_write(self)
        self.checkpoints()
        for url, d in write_durations(log).items():
            kind = self.kind_of(url)
            if d:
                est[kind] = statistics.median(d + [est[kind]])
        return mid

    # --- exact content ---

    def check(self, chain, label):
        for k in self.kinds:
            getattr(self, "_check_" + k.replace("-", "_"))(chain, f"{label} ({k})")
        cps = self.checkpoints()
        tip = (len(chain) - 1, chain[-1]["hash"])
        bad = {k: v for k, v in cps.items() if v != tip}
        if bad:
            raise Fail(f"{label}: checkpoints {bad}, want {tip} for every output")
        return sum(len(b["txs"]) for b in chain), sum(b["logs"] for b in chain)

    def _check_sqlite(self, chain, label):
        db = sqlite3.connect(self.db, timeout=10)
        try:
            check_rows(chain, label,
                       db.execute("SELECT number, hash, parent_hash FROM blocks").fetchall(),
                       db.execute("SELECT block_number, block_hash, hash, transaction_index "
                                  "FROM transactions").fetchall(),
                       db.execute("SELECT block_number, block_hash, log_index FROM logs")
                       .fetchall())
        finally:
            db.close()

    def _check_postgres(self, chain, label):
        def hx(c):
            return f"'0x' || encode({c}, 'hex')"
        blocks = [(int(n), h, p) for n, h, p in self.pg.sql(
            f"SELECT number, {hx('hash')}, {hx('parent_hash')} FROM blocks")]
        txs = [(int(n), bh, h, int(i)) for n, bh, h, i in self.pg.sql(
            f"SELECT block_number, {hx('block_hash')}, {hx('hash')}, transaction_index "
            f"FROM transactions")]
        logs = [(int(n), bh, int(i)) for n, bh, i in self.pg.sql(
            f"SELECT block_number, {hx('block_hash')}, log_index FROM logs")]
        check_rows(chain, label, blocks, txs, logs)

    def _check_etl_csv(self, chain, label):
        d = self.csv
        sizes = _exact_sizes(d, label)
        blocks = _csv(d, "blocks.csv", sizes, label)
        reverts = _csv(d, "reverts.csv", sizes, label)
        applied = collections.Counter((int(r["number"]), r["hash"]) for r in blocks)
        parents = {(int(r["number"]), r["hash"]): r["parent_hash"] for r in blocks}
        rev = collections.Counter((int(r["block_number"]), r["block_hash"]) for r in reverts)
        check_net(chain, label, applied, rev, parents)
        txs = [(int(r["block_number"]), r["block_hash"], r["hash"], int(r["transaction_index"]))
               for r in _csv(d, "transactions.csv", sizes, label)]
        rcpts = [(int(r["block_number"]), r["block_hash"], r["transaction_hash"],
                  int(r["transaction_index"])) for r in _csv(d, "receipts.csv", sizes, label)]
        logs = [(int(r["block_number"]), r["block_hash"], int(r["log_index"]))
                for r in _csv(d, "logs.csv", sizes, label)]
        check_copies(chain, label, applied, txs, rcpts, logs)

    def _check_jsonl(self, chain, label):
        d = self.jsonl
        sizes = _exact_sizes(d, label)
        stack, applied, parents = [], collections.Counter(), {}
        for i, o in enumerate(_jsonl(d, "blocks.jsonl", sizes, label), 1):
            n, h = int(o["number"]), o["hash"]
            if o["type"] == "block":
                if stack and (n != stack[-1][0] + 1 or o["parent_hash"] != stack[-1][1]):
                    raise Fail(f"{label}: blocks.jsonl line {i}: block {n} {h} does not extend "
                               f"the tip {stack[-1]}")
                stack.append((n, h))
                applied[(n, h)] += 1
                parents[(n, h)] = o["parent_hash"]
            elif o["type"] == "revert":
                if not stack or stack[-1] != (n, h):
                    raise Fail(f"{label}: blocks.jsonl line {i}: revert of {n} {h}, but the tip "
                               f"is {stack[-1] if stack else None}")
                stack.pop()
            else:
                raise Fail(f"{label}: blocks.jsonl line {i}: type {o['type']!r}")
        want = [(i, b["hash"]) for i, b in enumerate(chain)]
        if stack != want:
            bad = next((i for i in range(max(len(stack), len(want)))
                        if i >= len(stack) or i >= len(want) or stack[i] != want[i]), None)
            raise Fail(f"{label}: blocks.jsonl replayed ends with {len(stack)} blocks, the chain "
                       f"has {len(want)}; first difference at height {bad}: "
                       f"{stack[bad] if bad < len(stack) else None} vs "
                       f"{want[bad] if bad < len(want) else None}")
        txs = [(int(o["block_number"]), o["block_hash"], o["hash"], int(o["transaction_index"]))
               for o in _jsonl(d, "transactions.jsonl", sizes, label)]
        logs = [(int(o["block_number"]), o["block_hash"], int(o["log_index"]))
                for o in _jsonl(d, "logs.jsonl", sizes, label)]
        check_copies(chain, label, applied, txs, None, logs)

    def reverted(self):
        """(number, hash) of every revert the file outputs recorded, per kind."""
        out = {}
        if "etl-csv" in self.kinds and os.path.exists(os.path.join(self.csv, "reverts.csv")):
            with open(os.path.join(self.csv, "reverts.csv"), newline="") as f:
                out["etl-csv"] = [(int(r["block_number"]), r["block_hash"])
                                  for r in csv.DictReader(f)]
        if "jsonl" in self.kinds and os.path.exists(os.path.join(self.jsonl, "blocks.jsonl")):
            with open(os.path.join(self.jsonl, "blocks.jsonl")) as f:
                out["jsonl"] = [(o["number"], o["hash"]) for o in map(json.loads, f)
                                if o["type"] == "revert"]
        return out

    def applied_blocks(self):
        """(number, hash) of every block the file outputs ever wrote, per kind."""
        out = {}
        if "etl-csv" in self.kinds and os.path.exists(os.path.join(self.csv, "blocks.csv")):
            with open(os.path.join(self.csv, "blocks.csv"), newline="") as f:
                out["etl-csv"] = [(int(r["number"]), r["hash"]) for r in csv.DictReader(f)]
        if "jsonl" in self.kinds and os.path.exists(os.path.join(self.jsonl, "blocks.jsonl")):
            with open(os.path.join(self.jsonl, "blocks.jsonl")) as f:
                out["jsonl"] = [(o["number"], o["hash"]) for o in map(json.loads, f)
                                if o["type"] == "block"]
        return out


# --- the comparisons ------------------------------------------------------------------------

def check_rows(chain, label, blocks, txs, logs):
    """Tables (SQLite, PostgreSQL): blocks (number, hash, parent), txs (number, block_hash,
    hash, index), logs (number, block_hash, log_index) are exactly the chain, once each."""
    numbers = collections.Counter(n for n, _, _ in blocks)
    dups = {n: c for n, c in numbers.items() if c > 1}
    missing = [n for n in range(len(chain)) if n not in numbers]
    extra = sorted(n for n in numbers if n >= len(chain))
    if dups or missing or extra:
        raise Fail(f"{label}: blocks are not 0..{len(chain) - 1} once each: duplicated "
                   f"{dict(list(dups.items())[:5])}, missing {missing[:10]}, extra {extra[:10]}")
    for n, h, p in blocks:
        if (h, p) != (chain[n]["hash"], chain[n]["parent_hash"]):
            raise Fail(f"{label}: block {n} is {h} (parent {p}); the node has {chain[n]['hash']} "
                       f"(parent {chain[n]['parent_hash']})")
    by_block = collections.defaultdict(list)
    for n, bh, h, i in txs:
        if n >= len(chain) or bh != chain[n]["hash"]:
            raise Fail(f"{label}: transaction {h} of block {n} {bh}: not a canonical block")
        by_block[n].append((i, h))
    for n, b in enumerate(chain):
        got = [h for _, h in sorted(by_block.get(n, []))]
        if got != b["txs"]:
            raise Fail(f"{label}: block {n} has transactions {got[:4]}.. ({len(got)}), the node "
                       f"{b['txs'][:4]}.. ({len(b['txs'])})")
    keys = collections.Counter()
    for n, bh, i in logs:
        if n >= len(chain) or bh != chain[n]["hash"]:
            raise Fail(f"{label}: log {i} of block {n} {bh}: not a canonical block")
        keys[(n, i)] += 1
    if any(c > 1 for c in keys.values()):
        raise Fail(f"{label}: duplicate log rows {[k for k, c in keys.items() if c > 1][:5]}")
    per = collections.Counter(n for n, _ in keys)
    for n, b in enumerate(chain):
        if per.get(n, 0) != b["logs"]:
            raise Fail(f"{label}: block {n} has {per.get(n, 0)} logs, the node {b['logs']}")


def check_net(chain, label, applied, reverted, parents):
    """Append-only files: every block written, minus its reverts, leaves exactly the chain."""
    for k, r in reverted.items():
        if r > applied.get(k, 0):
            raise Fail(f"{label}: block {k} reverted {r} times but written {applied.get(k, 0)}")
    net = {k: a - reverted.get(k, 0) for k, a in applied.items()}
    want = {(i, b["hash"]) for i, b in enumerate(chain)}
    twice = {k: c for k, c in net.items() if c > 1}
    if twice:
        raise Fail(f"{label}: blocks written more often than reverted + 1 (duplicates): "
                   f"{dict(list(twice.items())[:5])}")
    have = {k for k, c in net.items() if c == 1}
    if have != want:
        missing = sorted(want - have)[:5]
        extra = sorted(have - want)[:5]
        raise Fail(f"{label}: after the reverts the blocks are not the chain: missing {missing}, "
                   f"not canonical {extra}")
    for i, b in enumerate(chain):
        if parents[(i, b["hash"])] != b["parent_hash"]:
            raise Fail(f"{label}: block {i} parent {parents[(i, b['hash'])]}, node "
                       f"{b['parent_hash']}")


def check_copies(chain, label, applied, txs, receipts, logs):
    """Rows of files keyed by block hash: a block written k times has each of its rows k
    times; the canonical ones are the node's."""
    canon = {b["hash"]: (i, b) for i, b in enumerate(chain)}
    for what, rows in (("transactions", txs), ("receipts", receipts)):
        if rows is None:
            continue
        per = collections.defaultdict(collections.Counter)
        for n, bh, h, i in rows:
            if (n, bh) not in applied:
                raise Fail(f"{label}: {what} row {h} of block {n} {bh}, a block never written")
            per[(n, bh)][(i, h)] += 1
        for (n, bh), a in applied.items():
            got = per.get((n, bh), collections.Counter())
            if any(c != a for c in got.values()):
                raise Fail(f"{label}: block {n} {bh} written {a} times, its {what} rows "
                           f"{dict(got)}")
            if bh in canon:
                have = [h for _, h in sorted(got)]
                if have != canon[bh][1]["txs"]:
                    raise Fail(f"{label}: block {n}: {what} {have[:4]}.. ({len(have)}), the "
                               f"node {canon[bh][1]['txs'][:4]}..")
    per = collections.defaultdict(collections.Counter)
    for n, bh, i in logs:
        if (n, bh) not in applied:
            raise Fail(f"{label}: log row {i} of block {n} {bh}, a block never written")
        per[(n, bh)][i] += 1
    for (n, bh), a in applied.items():
        got = per.get((n, bh), collections.Counter())
        if any(c != a for c in got.values()):
            raise Fail(f"{label}: block {n} {bh} written {a} times, its log rows {dict(got)}")
        if bh in canon and len(got) != canon[bh][1]["logs"]:
            raise Fail(f"{label}: block {n}: {len(got)} logs, the node {canon[bh][1]['logs']}")


def _exact_sizes(d, label):
    with open(os.path.join(d, "checkpoint.json")) as f:
        sizes = json.load(f)["sizes"]
    for name, size in sizes.items():
        have = os.path.getsize(os.path.join(d, name))
        if have != size:
            raise Fail(f"{label}: {d}/{name} is {have} bytes, checkpoint.json says {size}")
    return sizes


def _text(d, name, sizes, label):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return ""
    with open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        raise Fail(f"{label}: {name} ends in the middle of a line")
    return text


def _csv(d, name, sizes, label):
    text = _text(d, name, sizes, label)
    if not text:
        return []
    rows = list(csv.reader(text.splitlines(keepends=True)))
    header = rows[0]
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            raise Fail(f"{label}: {name} line {i} has {len(r)} cells, the header {len(header)}")
    return [dict(zip(header, r)) for r in rows[1:]]


def _jsonl(d, name, sizes, label):
    out = []
    for i, line in enumerate(_text(d, name, sizes, label).splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise Fail(f"{label}: {name} line {i} is not JSON ({e}): {line[:80]!r}") from e
    return out


# --- a blockpipe process whose stderr is watched line by line ---------------------------

class Proc:
    """blockpipe with stdout and stderr in err_path; new_lines() returns what it logged since
    the last call, wait_line() watches for a line (polling the file every 0.5 ms, so that a
    kill follows the line within about a millisecond)."""

    def __init__(self, cmd, err_path):
        self.err_path = err_path
        self._err = open(err_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err)
        self._f = open(err_path, errors="replace")
        self._part = ""

    def new_lines(self):
        data = self._part + self._f.read()
        lines = data.split("\n")
        self._part = lines.pop()
        return lines

    def wait_line(self, pred, timeout, what):
        """The first new line for which pred(line) is truthy: (line, pred's value). Fails when
        the process exits or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.new_lines():
                v = pred(line)
                if v:
                    return line, v
            if self.proc.poll() is not None:
                raise Fail(f"blockpipe exited {self.proc.returncode} while waiting for {what}:"
                           f"\n{self.tail()}")
            if time.monotonic() > deadline:
                raise Fail(f"no line with {what} within {timeout:.0f}s:\n{self.tail()}")
            time.sleep(0.0005)

    def alive(self, what):
        if self.proc.poll() is not None:
            raise Fail(f"blockpipe exited {self.proc.returncode} while {what}:\n{self.tail()}")

    def kill(self):
        """SIGKILL (nothing runs after it: no handler, no flush)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.close()
        return self.proc.returncode

    def stop(self, timeout=30):
        """SIGINT; it must exit 0."""
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail(f"blockpipe did not exit within {timeout}s of SIGINT:\n{self.tail()}")
        self.close()
        if rc != 0:
            raise Fail(f"blockpipe exited {rc} after SIGINT:\n{self.tail()}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self._err, self._f):
            if not f.closed:
                f.close()

    def tail(self, n=30):
        try:
            with open(self.err_path, errors="replace") as f:
                lines = [ln for ln in f if " debug " not in ln and "stats rpc[" not in ln]
            return "".join(lines[-n:])
        except OSError:
            return ""


def write_durations(path):
    """{url: [seconds per write]} from the debug lines' timestamps (ms resolution)."""
    out, started = collections.defaultdict(list), {}
    rx = re.compile(r"^(\S+)Z debug output '([^']+)': (writing|written)")
    with open(path, errors="replace") as f:
        for line in f:
            m = rx.match(line)
            if not m:
                continue
            ts = _seconds(m.group(1))
            if m.group(3) == "writing":
                started[m.group(2)] = ts
            elif m.group(2) in started:
                out[m.group(2)].append(ts - started.pop(m.group(2)))
    return out


def _seconds(stamp):
    hms = stamp.split("T")[1]
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)
