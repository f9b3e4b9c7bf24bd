"""`blockpipe verify` finds rows deleted, altered and duplicated by hand, and --repair fixes them.

A real anvil with the random workload (legacy / EIP-2930 / EIP-1559 txs, deployments, log
calls, reverts) is backfilled into SQLite and into a real PostgreSQL 15 (tests/tools/pg.py),
twice each: the output under test and an untouched copy. Then, per output:
- a clean output verifies with exit 0;
- by hand: a transaction row deleted, a log's data altered, a block's gas_used altered, a
  block row deleted, and a transaction duplicated. The raw tables have primary keys (chain,
  number[, transaction_index | log_index]), so a duplicate can only exist under another key:
  the test copies a transaction row to a free transaction_index, which is what the schema
  permits, and verify must call it a duplicate (a copy of the original's index);
- verify exits 3 and names exactly those blocks, each with its table and kind of difference
  (and the altered column);
- verify --repair exits 4 and says each block was repaired; verify again exits 0;
- the repaired raw tables equal the untouched copy row for row (independent of verify's own
  comparison), the checkpoint did not move, and the derived per-block rows
  (chain_metrics_block) of the repaired blocks equal the copy's.
--repair writes as the chain's writer does, so it takes the chain's writer lock first (the
PostgreSQL advisory lock / SQLite byte lock of `run`): while a `run` follows the same output,
`verify --repair --lock-wait 0` exits 1 naming the chain, the output, the holder (the run's pid)
and the way out, and writes nothing; `verify --repair` (waiting, the default) says it waits,
naming the holder, and verifies once the run is stopped (SIGINT). A plain verify (no repair)
takes no lock and runs beside it.
"""

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, run, wait_for  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "11"))
MIN_TXS = 150
CHAIN = "31337"
RAW = ("blocks", "transactions", "logs")


def node_shape(node, head):
    """Per block: (tx count, log count)."""
    shape = {}
    for n in range(head + 1):
        b = node.block(n, False)
        logs = sum(len(r["logs"]) for r in node.receipts(n))
        shape[n] = (len(b["transactions"]), logs)
    return shape


def pick_blocks(shape, rng):
    """Distinct blocks for each edit: A has 2+ txs, B a log, D a tx; C and E any (not 0)."""
    used = set()

    def take(pred, what):
        cands = [n for n, s in shape.items() if n > 0 and n not in used and pred(s)]
        if not cands:
            raise Fail(f"the workload made no block with {what}: {shape}")
        n = rng.choice(cands)
        used.add(n)
        return n

    return {"A": take(lambda s: s[0] >= 2, "2+ txs"), "B": take(lambda s: s[1] >= 1, "a log"),
            "D": take(lambda s: s[0] >= 1, "a tx"), "C": take(lambda s: True, "anything"),
            "E": take(lambda s: True, "anything")}


def expected(blocks, dup_key):
    """(block, regex) that the report must hold for the edits."""
    a, b, c, d, e = (blocks[k] for k in "ABCDE")
    return [(a, rf"^block {a} transactions: missing row transaction_index=1$"),
            (b, rf"^block {b} logs: altered row log_index=\d+: data \(output '0xdeadbeef', node "),
            (c, rf"^block {c} blocks: altered row number={c}: gas_used \(output '7', node "),
            (d, rf"^block {d} transactions: duplicated row transaction_index={dup_key} "
                rf"\(a copy of transaction_index=0\)$"),
            (e, rf"^block {e} blocks: missing row number={e}$")]


def verify(bp, node, head, url, *extra):
    return run([bp, "verify", "--rpc", node.url, "--from", "0", "--to", str(head), "--output",
                url, "--workers", "4", *extra])


def summary(out):
    return next((ln for ln in out.splitlines() if ln.startswith("verify: ")), "(no summary)")


def reported_blocks(out):
    return {int(m.group(1)) for m in re.finditer(r"^block (\d+) \w+: ", out, re.M)}


def check_report(label, rc, out, blocks, dup_key):
    if rc != 3:
        raise Fail(f"{label}: verify of the edited output exited {rc}, want 3:\n{out[-3000:]}")
    for n, pat in expected(blocks, dup_key):
        if not re.search(pat, out, re.M):
            raise Fail(f"{label}: block {n}: no line matching {pat!r} in:\n{out[-3000:]}")
    want = set(blocks.values())
    if reported_blocks(out) != want:
        raise Fail(f"{label}: verify named blocks {sorted(reported_blocks(out))}, the edits were "
                   f"in {sorted(want)}:\n{out[-3000:]}")
    if not re.search(r"5 blocks differ \(rows: 2 missing, 0 extra, 1 duplicated, 2 altered\)",
                     out):
        raise Fail(f"{label}: summary counts wrong:\n{out[-1500:]}")
    if "verify done:" not in out or "backfill done:" in out:
        raise Fail(f"{label}: the end's summary line should say verify, not backfill:\n"
                   f"{out[-1500:]}")
    print(f"[{label}] edits found: " + "; ".join(
        ln for ln in out.splitlines() if ln.startswith("block "))[:600])


def check_repair(label, bp, node, head, url, blocks):
    rc, out = verify(bp, node, head, url, "--repair")
    if rc != 4:
        raise Fail(f"{label}: verify --repair exited {rc}, want 4:\n{out[-3000:]}")
    for n in blocks.values():
        if not re.search(rf"^block {n}: repaired$", out, re.M):
            raise Fail(f"{label}: --repair did not say block {n} was repaired:\n{out[-3000:]}")
    rc, out = verify(bp, node, head, url)
    if rc != 0 or "0 blocks differ" not in out:
        raise Fail(f"{label}: verify after --repair exited {rc}, want 0:\n{out[-3000:]}")
    print(f"[{label}] repaired; verify again: exit 0")


def repair_under_run(label, bp, node, head, url, tmp):
    """A `run` of the same output holds the chain's writer lock: verify --repair refuses
    (--lock-wait 0) or waits for it (the default), naming the holder; verify alone runs."""
    log_path = os.path.join(tmp, f"run-{label}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", url,
                                 "--confirmations", "0", "--poll-interval", "0.2",
                                 "--stats-interval", "0.2", "--log-level", "debug"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    waiter = None
    try:
        # the lock is taken before the checkpoint is read, the first stats line after it
        wait_for(lambda: proc.poll() is None and "head=" in open(log_path).read(), 60,
                 f"{label}: the run's first stats line")
        rc, out = verify(bp, node, head, url, "--repair", "--lock-wait", "0")
        words = [f"chain '{CHAIN}' is already written to output", str(proc.pid),
                 "--lock-wait 0", "verify --repair writes the chain as its writer does"]
        if rc != 1 or not all(w in out for w in words) or "verify: blocks" in out:
            raise Fail(f"{label}: verify --repair --lock-wait 0 beside a run (pid {proc.pid}) "
                       f"exited {rc}, want 1 naming {words}, nothing verified:\n{out[-2000:]}")
        print(f"[{label}] --repair --lock-wait 0 refused: "
              + next(ln for ln in out.splitlines() if "already written" in ln)[-300:])
        rc, out = verify(bp, node, head, url)
        if rc != 0:
            raise Fail(f"{label}: verify (no repair) beside a run exited {rc}:\n{out[-2000:]}")
        wpath = os.path.join(tmp, f"wait-{label}.log")
        with open(wpath, "w") as wlog:
            waiter = subprocess.Popen([bp, "verify", "--rpc", node.url, "--from", "0", "--to",
                                       str(head), "--output", url, "--repair"],
                                      stdin=subprocess.DEVNULL, stdout=wlog, stderr=wlog)
        wait_for(lambda: "waiting for it to let go" in open(wpath).read(), 60,
                 f"{label}: verify --repair saying it waits")
        time.sleep(0.5)
        text = open(wpath).read()
        if waiter.poll() is not None or str(proc.pid) not in text or "verify: blocks" in text:
            raise Fail(f"{label}: verify --repair waiting: exit {waiter.poll()}, want it waiting "
                       f"and naming pid {proc.pid}:\n{text[-2000:]}")
        proc.send_signal(signal.SIGINT)
        if proc.wait(60) != 0:
            raise Fail(f"{label}: the run exited {proc.returncode} on SIGINT")
        rc = waiter.wait(120)
        text = open(wpath).read()
        if rc != 0 or "0 blocks differ" not in text:
            raise Fail(f"{label}: verify --repair after the run stopped exited {rc}, want 0:\n"
                       f"{text[-2000:]}")
        print(f"[{label}] --repair waited for the run and verified once it stopped")
    finally:
        for p in (proc, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


# ---- SQLite ---------------------------------------------------------------------------------

def sqlite_cols(db, table):
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def sqlite_edit(path, blocks):
    db = sqlite3.connect(path)
    a, b, c, d, e = (blocks[k] for k in "ABCDE")
    db.execute("DELETE FROM transactions WHERE block_number = ? AND transaction_index = 1", (a,))
    db.execute("UPDATE logs SET data = '0xdeadbeef' WHERE block_number = ? AND log_index = "
               "(SELECT min(log_index) FROM logs WHERE block_number = ?)", (b, b))
    db.execute("UPDATE blocks SET gas_used = 7 WHERE number = ?", (c,))
    dup_key = db.execute("SELECT max(transaction_index) + 100 FROM transactions "
                         "WHERE block_number = ?", (d,)).fetchone()[0]
    cols = sqlite_cols(db, "transactions")
    sel = ", ".join(str(dup_key) if col == "transaction_index" else col for col in cols)
    db.execute(f"INSERT INTO transactions ({', '.join(cols)}) SELECT {sel} FROM transactions "
               "WHERE block_number = ? AND transaction_index = 0", (d,))
    db.execute("DELETE FROM blocks WHERE number = ?", (e,))
    db.commit()
    db.close()
    return dup_key


def sqlite_same(label, path, clean, tables, where=""):
    db = sqlite3.connect(path)
    db.execute("ATTACH DATABASE ? AS clean", (clean,))
    for t in tables:
        for x, y in (("main", "clean"), ("clean", "main")):
            n = db.execute(f"SELECT count(*) FROM (SELECT * FROM {x}.{t} {where} EXCEPT "
                           f"SELECT * FROM {y}.{t} {where})").fetchone()[0]
            if n:
                raise Fail(f"{label}: {t}: {n} rows of {x} not in {y} after the repair")
    cps = [db.execute(f"SELECT number, hash FROM {s}.checkpoints").fetchall()
           for s in ("main", "clean")]
    if cps[0] != cps[1]:
        raise Fail(f"{label}: checkpoint {cps[0]}, the untouched copy has {cps[1]}")
    db.close()


def test_sqlite(bp, node, head, blocks, tmp):
    path, clean = os.path.join(tmp, "v.db"), os.path.join(tmp, "clean.db")
    url = "sqlite:" + path
    rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                   "--output", url, "--workers", "4"])
    if rc != 0:
        raise Fail(f"sqlite backfill exit {rc}:\n{out[-3000:]}")
    rc, out = verify(bp, node, head, url)
    if rc != 0 or "0 blocks differ" not in out:
        raise Fail(f"sqlite: verify of a clean output exited {rc}, want 0:\n{out[-3000:]}")
    print(f"[sqlite] clean output: exit 0: {summary(out)}")
    repair_under_run("sqlite", bp, node, head, url, tmp)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            shutil.copy(path + suffix, clean + suffix)
    dup_key = sqlite_edit(path, blocks)
    rc, out = verify(bp, node, head, url)
    check_report("sqlite", rc, out, blocks, dup_key)
    check_repair("sqlite", bp, node, head, url, blocks)
    sqlite_same("sqlite", path, clean, RAW)
    numbers = ", ".join(str(n) for n in blocks.values())
    sqlite_same("sqlite", path, clean, ("chain_metrics_block",),
                f"WHERE block_number IN ({numbers})")
    print("[sqlite] repaired tables equal the untouched copy; checkpoint unchanged")


# ---- PostgreSQL -----------------------------------------------------------------------------

def pg_edit(pg, schema, blocks):
    a, b, c, d, e = (blocks[k] for k in "ABCDE")
    dup_key = int(pg.sql(f"SELECT max(transaction_index) + 100 FROM {schema}.transactions "
                         f"WHERE block_number = {d}")[0][0])
    cols = [r[0] for r in pg.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        f"'{schema}' AND table_name = 'transactions' ORDER BY ordinal_position")]
    sel = ", ".join(str(dup_key) if col == "transaction_index" else col for col in cols)
    pg.sql(f"""
        DELETE FROM {schema}.transactions WHERE block_number = {a} AND transaction_index = 1;
        UPDATE {schema}.logs SET data = '\\xdeadbeef'::bytea WHERE block_number = {b} AND
            log_index = (SELECT min(log_index) FROM {schema}.logs WHERE block_number = {b});
        UPDATE {schema}.blocks SET gas_used = 7 WHERE number = {c};
        INSERT INTO {schema}.transactions ({', '.join(cols)}) SELECT {sel}
            FROM {schema}.transactions WHERE block_number = {d} AND transaction_index = 0;
        DELETE FROM {schema}.blocks WHERE number = {e};""")
    return dup_key


def pg_same(label, pg, schema, clean, tables, where=""):
    for t in tables:
        for x, y in ((schema, clean), (clean, schema)):
            n = int(pg.sql(f"SELECT count(*) FROM (SELECT * FROM {x}.{t} {where} EXCEPT "
                           f"SELECT * FROM {y}.{t} {where}) d")[0][0])
            if n:
                raise Fail(f"{label}: {t}: {n} rows of {x} not in {y} after the repair")
    cps = [pg.sql(f"SELECT number, encode(hash, 'hex') FROM {s}.checkpoints") for s in (schema,
                                                                                        clean)]
    if cps[0] != cps[1]:
        raise Fail(f"{label}: checkpoint {cps[0]}, the untouched copy has {cps[1]}")


def test_pg(bp, node, head, blocks, tmp):
    with Postgres() as pg:
        for schema in ("v", "clean"):
            rc, out = run([bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
                           "--output", pg.url(query="schema=" + schema), "--workers", "4"])
            if rc != 0:
                raise Fail(f"postgres backfill ({schema}) exit {rc}:\n{out[-3000:]}")
        url = pg.url(query="schema=v")
        rc, out = verify(bp, node, head, url)
        if rc != 0 or "0 blocks differ" not in out:
            raise Fail(f"postgres: verify of a clean output exited {rc}, want 0:\n{out[-3000:]}")
        print(f"[postgres] clean output: exit 0: {summary(out)}")
        repair_under_run("postgres", bp, node, head, url, tmp)
        dup_key = pg_edit(pg, "v", blocks)
        rc, out = verify(bp, node, head, url)
        check_report("postgres", rc, out, blocks, dup_key)
        check_repair("postgres", bp, node, head, url, blocks)
        pg_same("postgres", pg, "v", "clean", RAW)
        numbers = ", ".join(str(n) for n in blocks.values())
        pg_same("postgres", pg, "v", "clean", ("chain_metrics_block",),
                f"WHERE block_number IN ({numbers})")
        print("[postgres] repaired tables equal the untouched copy; checkpoint unchanged")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    with Anvil(["--chain-id", CHAIN]) as node, tempfile.TemporaryDirectory() as tmp:
        wl = Workload(node, seed=SEED)
        wl.setup()
        sent = 2
        while sent < MIN_TXS:
            k = rng.choice([0, 1, 3, 8, 15])
            wl.mine_batch(k)
            sent += k
        head = node.block_number()
        blocks = pick_blocks(node_shape(node, head), rng)
        print(f"chain 0..{head}; edits in blocks {blocks}")
        test_sqlite(bp, node, head, blocks, tmp)
        test_pg(bp, node, head, blocks, tmp)
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        sys.exit(f"FAIL: {e}")
