"""`blockpipe run --chain-type arch` into SQLite against `blockpipe simnode --chain-type arch`
with forks and rollbacks, killed with SIGKILL and restarted, then compared with the node.

The node grows a block every 0.2 s from height 120 (0-8 transactions each), makes a depth-5
fork every 1.5 s (--reorg-every) and a rollback / re-apply episode every 1.1 s
(--rollback-every). blockpipe follows it by HTTP polling from block 0 (so each start is a
backfill then a follow). KILLS times a run is SIGKILLed at a random moment (seeded) after it committed
past the previous run's checkpoint, then started again from its checkpoint. blockpipe has two endpoints, the second with FAULTS
(errors, cut and non-JSON answers, resets). A last run catches up and stops on SIGINT (exit 0).
Then the tables must hold exactly the node's canonical chain:
- arch_blocks: heights 0..checkpoint, each once (no gap, no duplicate), the checkpoint's hash
  the row's; every row's previous_hash is the hash of the row below (the hash chain);
- every height up to checkpoint - depth (the node may fork the top `depth` blocks again after
  the run stopped) has the node's canonical hash (get_block_hash): blocks of forks the node
  left are gone;
- arch_transactions: per block, the txids in tx_index order are exactly get_block's
  transactions of that block (batched get_block), each row's block_hash the block's;
- arch_account_updates: every row belongs to a stored transaction, every stored transaction
  that writes accounts has its rows (simnode's transactions write 1-3 accounts);
- the last run follows the head until it walked back one of the node's forks (a REVERT of
  stored blocks; none within HANG fails the test: nothing would have been tested).
Then `backfill` of a config file's chains: entry with `chain_type: arch` must store the same
rows for the canonical blocks, and an etl-csv output (ethereum-etl's EVM columns) must be refused
for an Arch chain, saying why; and a file whose arch_blocks.merkle_root is NOT NULL (as made
before the Rust SDK's wire format) is made again at the next open, its rows kept.
- every column of every stored row of the three tables has the value computed from the
  node's get_block / get_processed_transaction answers in Python (tests/tools/archcheck.py,
  not blockpipe's decoder): timestamp, bitcoin_block_height, merkle_root, status,
  failure_reason, program_ids, bitcoin_txids, the writable account keys, ...
What is not compared with the node: rolled_back (this run has no --ws, so it is the value when
fetched, which the node's later rollback episodes change; test_arch_ws.py and test_arch_pg.py's
--ws part compare it), only that a row not rolled back has no rollback_reason and a rolled-back
one the node's message. Stdlib only; needs BLOCKPIPE.
"""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402
import archcheck  # noqa: E402
from pgcheck import blockpipe_bin, print_tails, script_main  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1414"))
KILLS = 3
DEPTH = 5
HANG = 90  # guards against a hang only
# the second endpoint fails some calls every way an HTTP node can: errors, cut and non-JSON
# answers, resets (the pool retries them elsewhere; nothing may be lost or stored twice)
FAULTS = "ep2:error_rate=0.05,truncate_rate=0.03,garbage_rate=0.03,reset_rate=0.03"



def fail(msg):
    raise AssertionError(msg)


def call(url, calls):
    return archcheck.call(url, calls, timeout=30)


def node_head(url):
    return call(url, [("get_block_count", [])])[0] - 1


def checkpoint(db):
    if not os.path.exists(db):
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT number, hash FROM checkpoints WHERE chain = 'arch'").fetchone()
    except sqlite3.OperationalError:
        row = None  # the schema is not there yet
    con.close()
    return row


def start(bp, urls, out, log, extra=()):
    """A run from block 0 into output URL out (an SQLite path is made sqlite:PATH)."""
    out = out if ":" in out else f"sqlite:{out}"
    cmd = [bp, "run", "--chain-type", "arch", "--rpc", urls[0], "--rpc", urls[1],
           "--output", out, "--start-block", "0", "--poll-interval", "0.1",
           "--reorg-window", "64", "--log-level", "info", *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def read_cp(where):
    """The checkpoint of where: an SQLite file's path, or a function answering it."""
    return where() if callable(where) else checkpoint(where)


def wait_progress(db, proc, last, label):
    """Until this run has committed past the last run's checkpoint (db: as read_cp)."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        cp = read_cp(db)
        if cp and cp[0] > last:
            return
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode}")
        time.sleep(0.05)
    fail(f"{label}: no progress past checkpoint {last} within {HANG} s")


def wait_reorg(logpath, mark, proc):
    """Until the run (its log from offset mark) walked back a fork."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        with open(logpath) as f:
            f.seek(mark)
            if "reorg: " in f.read():
                return
        if proc.poll() is not None:
            fail(f"last run: blockpipe exited {proc.returncode}")
        time.sleep(0.1)
    fail(f"last run: no fork reached blockpipe within {HANG} s at the head")


def wait_caught_up(url, db, proc, label):
    deadline = time.monotonic() + HANG
    want = node_head(url)
    while time.monotonic() < deadline:
        cp = read_cp(db)
        if cp and cp[0] >= want:
            return
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited {proc.returncode} before catching up")
        time.sleep(0.1)
    fail(f"{label}: not caught up with head {want} within {HANG} s (checkpoint {read_cp(db)})")


def check_tables(url, db):
    con = sqlite3.connect(db)
    cp = con.execute("SELECT number, hash FROM checkpoints WHERE chain = 'arch'").fetchone()
    blocks = con.execute("SELECT height, hash, previous_hash, transaction_count FROM arch_blocks "
                         "WHERE chain = 'arch' ORDER BY height").fetchall()
    if not cp:
        fail("no checkpoint")
    heights = [b[0] for b in blocks]
    if heights != list(range(cp[0] + 1)):
        fail(f"arch_blocks heights are not exactly 0..{cp[0]}: {len(heights)} rows, "
             f"first missing/extra near {next((i for i, h in enumerate(heights) if h != i), '?')}")
    if blocks[-1][1] != cp[1]:
        fail(f"checkpoint hash {cp[1]} is not block {cp[0]}'s {blocks[-1][1]}")
    for lo, hi in zip(blocks, blocks[1:]):
        if hi[2] != lo[1]:
            fail(f"block {hi[0]}: previous_hash {hi[2]} but block {lo[0]} is {lo[1]}")
    strict = cp[0] - DEPTH
    hashes = call(url, [("get_block_hash", [h]) for h in range(strict + 1)])
    for h in range(strict + 1):
        if blocks[h][1] != hashes[h]:
            fail(f"block {h}: stored {blocks[h][1]}, the node's canonical is {hashes[h]}")
    got = {}
    for height, idx, txid, bhash in con.execute(
            "SELECT block_height, tx_index, txid, block_hash FROM arch_transactions "
            "WHERE chain = 'arch' ORDER BY block_height, tx_index"):
        if bhash != blocks[height][1]:
            fail(f"tx {txid}: block_hash {bhash}, block {height} is {blocks[height][1]}")
        lst = got.setdefault(height, [])
        if idx != len(lst):
            fail(f"block {height}: tx_index {idx} after {len(lst)} transactions")
        lst.append(txid)
    ntx = 0
    for i in range(0, len(blocks), 100):
        chunk = blocks[i:i + 100]
        for b, body in zip(chunk, call(url, [("get_block", [b[1]]) for b in chunk])):
            listed = archcheck.block_txids(body)
            ntx += len(listed)
            if got.get(b[0], []) != listed or b[3] != len(listed):
                fail(f"block {b[0]}: stored txids {got.get(b[0], [])} (count {b[3]}), the node's "
                     f"{listed}")
    orphans = con.execute("SELECT count(*) FROM arch_account_updates a WHERE chain = 'arch' AND "
                          "NOT EXISTS (SELECT 1 FROM arch_transactions t WHERE t.chain = a.chain "
                          "AND t.block_height = a.block_height AND t.tx_index = a.tx_index "
                          "AND t.txid = a.txid)").fetchone()[0]
    bare = con.execute("SELECT count(*) FROM arch_transactions t WHERE chain = 'arch' AND NOT "
                       "EXISTS (SELECT 1 FROM arch_account_updates a WHERE a.chain = t.chain AND "
                       "a.block_height = t.block_height AND a.tx_index = t.tx_index)").fetchone()[0]
    nacc = con.execute("SELECT count(*) FROM arch_account_updates").fetchone()[0]
    con.close()
    if orphans or bare:
        fail(f"arch_account_updates: {orphans} rows without their transaction, {bare} "
             f"transactions without account rows")
    if ntx == 0:
        fail("no transactions at all: nothing was compared")
    print(f"tables match the node: blocks 0..{cp[0]} ({strict + 1} checked against "
          f"get_block_hash), {ntx} transactions, {nacc} account updates")
    return strict


def rows(db, chain, upto):
    con = sqlite3.connect(db)
    out = [con.execute(f"SELECT {cols} FROM {t} WHERE chain = ? AND {h} <= ? ORDER BY {order}",
                       (chain, upto)).fetchall()
           for t, h, cols, order in (
               ("arch_blocks", "height", "height, hash, previous_hash, timestamp, "
                "bitcoin_block_height, transaction_count, merkle_root", "height"),
               ("arch_transactions", "block_height", "block_height, tx_index, txid, block_hash, "
                "status, failure_reason, program_ids, bitcoin_txids", "block_height, tx_index"),
               ("arch_account_updates", "block_height", "block_height, tx_index, account, txid",
                "block_height, tx_index, account"))]
    con.close()
    return out


def check_config_backfill(bp, url, db, tmp, upto):
    """`backfill` of a chains: entry with chain_type: arch gives the same rows (0..upto, all
    canonical) as the run; an output without Arch tables is refused at start."""
    cfg = os.path.join(tmp, "chains.yaml")
    db2 = os.path.join(tmp, "config.db")
    with open(cfg, "w") as f:
        f.write(f"output: sqlite:{db2}\nchains:\n  - name: arch\n    chain_type: arch\n"
                f"    rpc: {url}\n")
    r = subprocess.run([bp, "backfill", "--config", cfg, "--from", "0", "--to", str(upto)],
                       capture_output=True, text=True, timeout=HANG)
    if r.returncode != 0:
        fail(f"backfill of a chains: entry with chain_type arch exited {r.returncode}: "
             f"{r.stderr[-2000:]}")
    if rows(db2, "arch", upto) != rows(db, "arch", upto):
        fail(f"backfill --config (chain_type: arch) of 0..{upto} differs from the run's rows")
    r = subprocess.run([bp, "backfill", "--chain-type", "arch", "--rpc", url, "--from", "0",
                        "--to", "3", "--output", "etl-csv:" + os.path.join(tmp, "c")],
                       capture_output=True, text=True, timeout=HANG)
    if r.returncode == 0 or "has no arch tables: etl-csv is ethereum-etl's EVM format" \
            not in r.stderr:
        fail(f"an etl-csv output was not refused for an Arch chain: exit {r.returncode}, "
             f"{r.stderr[-1000:]}")
    print(f"backfill of a chains: entry (chain_type: arch) 0..{upto}: same rows; etl-csv refused")


def check_sqlite_upgrade(bp, url, tmp):
    """A SQLite file whose arch_blocks was made before merkle_root could be NULL (NOT NULL, as
    every file before the Rust SDK's wire format, which has no merkle_root): the next open makes
    the table again with its rows; the rows kept, the new ones NULL (docs/ARCH.md item 18)."""
    db = os.path.join(tmp, "old.db")

    def backfill(to):
        r = subprocess.run([bp, "backfill", "--chain-type", "arch", "--rpc", url, "--from", "0",
                            "--to", str(to), "--output", f"sqlite:{db}"],
                           capture_output=True, text=True, timeout=HANG)
        if r.returncode != 0:
            fail(f"backfill 0..{to} into {db} exited {r.returncode}: {r.stderr[-2000:]}")
    backfill(10)
    con = sqlite3.connect(db)
    ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'arch_blocks'").fetchone()[0]
    old = ddl.replace("merkle_root TEXT", "merkle_root TEXT NOT NULL")
    if old == ddl:
        fail(f"arch_blocks: {ddl}: no nullable merkle_root")
    con.executescript("BEGIN; ALTER TABLE arch_blocks RENAME TO a0; " + old + "; INSERT INTO "
                      "arch_blocks SELECT chain, height, hash, previous_hash, timestamp, "
                      f"bitcoin_block_height, transaction_count, '{'ab' * 32}' FROM a0; "
                      "DROP TABLE a0; COMMIT;")
    con.close()
    backfill(20)
    con = sqlite3.connect(db)
    notnull = con.execute("SELECT \"notnull\" FROM pragma_table_info('arch_blocks') "
                          "WHERE name = 'merkle_root'").fetchone()[0]
    roots = con.execute("SELECT height, merkle_root FROM arch_blocks ORDER BY height").fetchall()
    con.close()
    want = [(h, "ab" * 32 if h <= 10 else None) for h in range(21)]
    if notnull or roots != want:
        fail(f"an arch_blocks with NOT NULL merkle_root, opened again: notnull {notnull}, "
             f"merkle roots {roots}")
    print("a file's arch_blocks with NOT NULL merkle_root is made again at open: its 11 rows "
          "kept, the next 10 NULL")


def node_args():
    """The scenario's node: forks of DEPTH every 1.5 s, rollback episodes every 1.1 s."""
    return ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "120",
            "--txs-per-block", "0-8", "--reorg-every", "1.5", "--reorg-depth", str(DEPTH),
            "--rollback-every", "1.1", "--seed", str(SEED), "--faults", FAULTS]


def kill_and_follow(bp, node, out, where, log, logpath, rng, first_run=None):
    """KILLS runs into output out, each SIGKILLed at a random moment after it committed past
    the last one's checkpoint (where: as read_cp); then a last run that catches up, walks
    back a fork of the node's and stops on SIGINT (exit 0); its log must have no error and a
    reorg walk. first_run(proc) is called once the first run made progress. Every process it
    started has exited when it returns."""
    url = node.urls[0]
    reorgs0 = node.stats()["reorgs"]
    last = -1
    proc = None
    try:
        for k in range(KILLS):
            proc = start(bp, node.urls, out, log)
            wait_progress(where, proc, last, f"run {k + 1}")
            if k == 0 and first_run:
                first_run(proc)
            time.sleep(rng.uniform(0.0, 0.6))  # mid-batch or between batches
            if proc.poll() is not None:
                fail(f"run {k + 1} exited {proc.returncode} before the kill")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            last = read_cp(where)[0]
            print(f"kill {k + 1}: SIGKILL, checkpoint then {last} (node head "
                  f"{node_head(url)})", flush=True)
        log.flush()
        mark = os.path.getsize(logpath)
        proc = start(bp, node.urls, out, log)
        wait_caught_up(url, where, proc, "last run")
        wait_reorg(logpath, mark, proc)  # at the head, through a fork of the node's
        wait_caught_up(url, where, proc, "last run")
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=HANG)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        fail(f"last run exited {rc} on SIGINT")
    reorgs = node.stats()["reorgs"] - reorgs0
    text = open(logpath).read()
    # warnings are expected (a tx of a block the node just orphaned answers 404: retried)
    errors = [ln for ln in text.splitlines() if ln.split()[1:2] == ["error"]]
    if errors:
        fail("blockpipe logged errors:\n" + "\n".join(errors)[:3000])
    if "lists no recent blocks" in text:
        fail("a restart did not re-seed its reorg window from the stored blocks")
    walked = text.count("reorg: ")
    print(f"node forks during the runs: {reorgs}; blockpipe reorg walks: {walked}")
    if walked < 1:
        fail("no fork reached blockpipe: the revert path was not exercised")


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-arch-run-")
    db = os.path.join(tmp.name, "arch.db")
    logpath = os.path.join(tmp.name, "run.log")
    node = Simnode(bp, node_args(), endpoints=2)
    url = node.urls[0]
    try:
        with open(logpath, "w") as log:
            kill_and_follow(bp, node, db, db, log, logpath, rng)
        strict = check_tables(url, db)
        # the blocks the node cannot fork any more (above, a transaction of an orphaned
        # block may already be unknown to it)
        archcheck.check_values(url, archcheck.sqlite_rows(db, "arch", strict))
        check_config_backfill(bp, url, db, tmp.name, min(strict, 40))
        check_sqlite_upgrade(bp, url, tmp.name)
        print("OK")
    except AssertionError:
        print_tails(logpath)
        raise
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
