"""A chain's pause longer than ttl_slack (ClickHouse 26.5's engine: chDB behind
tests/tools/chdb_http.py, as in test_clickhouse_current.py).

With the TTLs (ttl on) a row of a window still open is kept only ttl_slack after it was written;
a chain paused longer can have rows of those windows deleted by the server, and the windows
recomputed from what is left come out short (a short day is kept for ever). An idle chain's
next blocks fall in later windows, which read none of them: so a chain is refused only when a
batch of it would read a window at risk (docs/ARCHITECTURE.md, "A pause longer than the slack").
A chain of ~1 h of blocks ending ~3 days before now is backfilled with short retentions
(test_metrics_retention's: block rows 2 h, sets 1 h, minutes 4 h) into two databases: the
open minute's, hour's and day's ends plus those retentions are past by the server's clock.

1. A second open right after: no pause, no warning.
2. The pause: the chains' checkpoints (updated_at) and every derived row's _written set back
   8 days (ALTER ... UPDATE), longer than the default slack (7 days).
3. Idle (the second database): the server's merges delete the block rows (OPTIMIZE ... FINAL);
   the node's next block is dated now (a later day), written with another block retention:
   not refused, the rollups of the windows open at the checkpoint are not recomputed (from the
   deleted rows they would come out short: the open's recovery recomputed them before), and
   the TTLs get the new retention after that first block. The node is then set back.
4. The next block in the same minute/hour: refused (exit 1, a chain's failure while it runs)
   naming the chain, the block, the pause, ttl_slack, the windows and what to set; nothing
   written (the checkpoint stays), and the other retention of that run did not reach the TTLs
   (a changed TTL is materialized: it could delete the rows the refusal keeps). A process
   writing another chain of the database warns and goes on.
5. A `chains:` list with that chain and a fresh one: the paused chain stops alone (refused at
   its first batch, exit 1 at the end), the fresh one is written.
6. ttl_slack=30 days: it goes on, and warns that the chain's open windows may have lost rows
   under the previous slack (the tables' TTLs then have the new one).
7. The pause again, with ttl=off: no check (the TTLs are removed), no refusal.
8. The pause with tables made before _written, reopened with ttl on: the open adds the column,
   whose default (now) every row there reads when the TTL is applied: nothing to lose, no
   refusal. The TTLs of tables that had none are set without MATERIALIZE TTL (a rewrite of every
   part, which the open would wait for: docs/PERFORMANCE.md), those changed in 6. with it.
9. The pause again; the node reorganises its last block (its new blocks dated now, a later
   day): the batch's revert of the checkpoint's block reads its windows: refused.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from chdb_http import Chdb  # noqa: E402
from metricscheck import Mismatch  # noqa: E402
import test_metrics_retention as R  # noqa: E402

DB = "ttlpause"
IDLE = "ttlidle"
CHAIN = "pausechain"
PAUSE = 8 * 86400
DERIVED = ("chain_metrics_block", "contract_metrics_block", "active_addresses",
           "contract_senders", "chain_metrics_1m", "chain_metrics_1h", "chain_metrics_1d",
           "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d")
OTHER_BLOCK = ["--retention-block", "10800"]  # another retention: a changed TTL


def backfill(bp, node, ch, query="", chain=CHAIN, db=DB, extra=()):
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", ch.url(db, query=query),
                        "--chain", chain, "--from", "0", "--to", str(node.block_number()),
                        "--batch-size", "20"] + R.FLAGS + list(extra),
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stderr


def checkpoint(ch, db=DB, chain=CHAIN):
    return ch.sql(f"SELECT argMax(number, seq), argMax(seq, seq) FROM {db}.checkpoints "
                  f"WHERE chain = '{chain}'")[0]


def pause_lines(err):
    return [ln for ln in err.splitlines() if "ttl_slack" in ln and CHAIN in ln]


def pause(ch, rows=True, db=DB, tables=DERIVED):
    """The checkpoint and the rows (of tables) as if written PAUSE seconds earlier."""
    ch.post(f"ALTER TABLE {db}.checkpoints UPDATE updated_at = updated_at - {PAUSE} WHERE 1",
            params={"mutations_sync": "2"})
    have = {r[0] for r in ch.sql(f"SELECT table FROM system.columns WHERE database = '{db}' "
                                 "AND name = '_written'")}
    for t in tables if rows else ():
        if t in have:  # (a table the sync gave no TTL has none after 8.)
            ch.post(f"ALTER TABLE {db}.{t} UPDATE _written = _written - {PAUSE} WHERE 1",
                    params={"mutations_sync": "2"})


def materialized(ch):
    """How many MATERIALIZE TTL mutations (MODIFY TTL applied to the rows there) the server ran."""
    return int(ch.sql(f"SELECT count() FROM system.mutations WHERE database = '{DB}' AND "
                      "command LIKE '%MATERIALIZE TTL%'")[0][0])


def ttl_of(ch, db, table="chain_metrics_block"):
    return ch.sql(f"SELECT create_table_query FROM system.tables WHERE database = '{db}' "
                  f"AND name = '{table}'")[0][0]


def open_windows(ch, db, t):
    """The rollup rows (their values, not their versions) of the minute, hour and day of chain
    time t."""
    out = {}
    for table, w in (("chain_metrics_1m", t - t % 60), ("chain_metrics_1h", t - t % 3600),
                     ("chain_metrics_1d", t - t % 86400)):
        out[table] = ch.sql(f"SELECT * EXCEPT (_ver, _written) FROM {db}.{table} FINAL WHERE "
                            f"origin_key = '{CHAIN}' AND window_start = {w}")
    return out


def mine_at(node, ts):
    """One empty block dated ts (nothing the workload's nonces know: the node may be set back)."""
    node.rpc("evm_setNextBlockTimestamp", [ts])
    node.mine()
    return node.block_number()


def refusal(rc, err, block, what, pauses=1):
    lines = pause_lines(err)
    if rc != 1 or not lines:
        raise Mismatch(f"{what}: exit {rc} (want 1: a chain's failure), no refusal naming "
                       f"'{CHAIN}':\n{err[-3000:]}")
    text = lines[-1]
    for want in (f"'{CHAIN}'", "604800", "ttl=off", "minute", "hour", "day", block):
        if want not in text:
            raise Mismatch(f"{what}: the refusal does not say {want!r}: {text}")
    gap = int(text.split("last written ")[1].split(" s ago")[0])
    if not pauses * PAUSE <= gap < pauses * PAUSE + 3600:
        raise Mismatch(f"{what}: the pause said is {gap} s, want about {pauses * PAUSE}: {text}")
    return text


def chains_run(bp, node, ch, tmp):
    """5.: a chains: list of the paused chain and a fresh one, by `run`, stopped by SIGINT once
    the fresh one reached the head. Returns (exit, stderr)."""
    head = node.block_number()
    keep = (f"retention_block={R.KEEP['block']}&retention_sets={R.KEEP['sets']}&"
            f"retention_1m={R.KEEP['1m']}&retention_1h={R.KEEP['1h']}&"
            f"retention_1d={R.KEEP['1d']}")
    cfg = {"outputs": [ch.url(DB, query=keep)], "confirmations": 0, "poll_interval": 0.2,
           "reorg_window": R.REORG_WINDOW,
           "chains": [{"name": CHAIN, "rpc": node.url}, {"name": "fresh", "rpc": node.url,
                                                          "start_block": 0}]}
    path = os.path.join(tmp, "chains.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    log = open(os.path.join(tmp, "chains.log"), "w+")
    p = subprocess.Popen([bp, "run", "--config", path], stdout=subprocess.DEVNULL, stderr=log,
                         text=True)
    try:
        def both_done():
            if p.poll() is not None:
                return True
            rows = ch.sql(f"SELECT argMax(number, seq) FROM {DB}.checkpoints "
                          "WHERE chain = 'fresh'")
            with open(log.name) as f:
                stopped = f"chain '{CHAIN}' stopped" in f.read()
            return stopped and bool(rows) and rows[0][0] is not None and int(rows[0][0]) >= head
        wait_until(both_done, 300, "the fresh chain at the head, the paused one stopped")
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    log.seek(0)
    err = log.read()
    log.close()
    return rc, err


def idle(bp, node, ch, t):
    """3.: the idle chain in the second database."""
    ch.merge(IDLE, tables=("chain_metrics_block",))
    left = int(ch.sql(f"SELECT count() FROM {IDLE}.chain_metrics_block WHERE origin_key = "
                      f"'{CHAIN}' AND block_timestamp >= {t - t % 60}")[0][0])
    if left:
        raise Mismatch(f"the merges kept {left} block rows of the open minute (the TTL should "
                       "take them: written 8 days ago, past their retention)")
    before = open_windows(ch, IDLE, t)
    if not all(before.values()):
        raise Mismatch(f"no rollup rows of the windows open at the checkpoint: {before}")
    mat = ttl_of(ch, IDLE)
    nxt = mine_at(node, int(time.time()))
    rc, err = backfill(bp, node, ch, db=IDLE, extra=OTHER_BLOCK)
    if rc != 0 or pause_lines(err):
        raise Mismatch(f"an idle chain (its next block dated now): exit {rc}, "
                       f"{pause_lines(err)}:\n{err[-3000:]}")
    if int(checkpoint(ch, IDLE)[0]) != nxt:
        raise Mismatch(f"the idle chain's block {nxt} was not written: {checkpoint(ch, IDLE)}")
    after = open_windows(ch, IDLE, t)
    if after != before:
        raise Mismatch(f"the windows open at the checkpoint were recomputed from the rows the "
                       f"server deleted:\nbefore {before}\nafter  {after}")
    if "toIntervalSecond(10800)" not in ttl_of(ch, IDLE) or mat == ttl_of(ch, IDLE):
        raise Mismatch(f"the other retention did not reach the TTL: {ttl_of(ch, IDLE)}")
    said = [ln for ln in err.splitlines() if "is past the windows" in ln]
    print(f"3. idle, its next block {nxt} dated now: written, the open windows not recomputed "
          f"(their block rows merged away), the TTLs then synced: {said[-1] if said else ''}")


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    with Chdb() as ch, tempfile.TemporaryDirectory() as tmp:
        start = int(time.time()) - 3 * 86400 - 3600  # ~1 h of blocks ending ~3 days ago
        with Anvil(["--timestamp", start]) as node:
            wl = Workload(node, seed=7)
            wl.setup()
            R.mine(node, wl, 24, 150)
            for db in (DB, IDLE):
                rc, err = backfill(bp, node, ch, db=db)
                if rc != 0:
                    raise Mismatch(f"first backfill: exit {rc}:\n{err[-3000:]}")
            rc, err = backfill(bp, node, ch)
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"open without a pause: exit {rc}, {pause_lines(err)}")
            print("1. no pause: no warning")

            top = int(checkpoint(ch)[0])
            t = int(node.block(top, False)["timestamp"], 16)
            pause(ch)
            # (the block rows only: the server's TTL then takes them, and leaves the rollups
            # that a recomputation from them would change)
            pause(ch, db=IDLE, tables=("chain_metrics_block",))
            print(f"2. the pause: checkpoint block {top} (time {t}) last written {PAUSE} s ago")

            snap = node.rpc("evm_snapshot")
            idle(bp, node, ch, t)
            node.rpc("evm_revert", [snap])

            before = checkpoint(ch)
            windows = open_windows(ch, DB, t)
            ttl = ttl_of(ch, DB)
            R.mine(node, wl, 1, 1)  # the same minute (or hour)
            rc, err = backfill(bp, node, ch, extra=OTHER_BLOCK)
            text = refusal(rc, err, f"block {top + 1} ", "its next block in the open windows")
            if checkpoint(ch) != before:
                raise Mismatch(f"the refused open wrote: checkpoint {before} -> {checkpoint(ch)}")
            if open_windows(ch, DB, t) != windows:
                raise Mismatch("the refused run recomputed the windows at risk")
            if ttl_of(ch, DB) != ttl:
                raise Mismatch(f"the refused run changed the TTL before its refusal:\n{ttl}\n"
                               f"->\n{ttl_of(ch, DB)}")
            print(f"4. next block in the open windows: refused, exit 1, the TTLs as they were: "
                  f"{text}")

            # a process writing another chain of the database: its windows are not this
            # chain's, so it warns and goes on (refusing it would keep nothing)
            rc, err = backfill(bp, node, ch, chain="otherchain")
            lines = pause_lines(err)
            if rc != 0 or not lines or "not a chain of this process" not in lines[-1]:
                raise Mismatch(f"another chain's process: exit {rc}, {lines}:\n{err[-3000:]}")
            print(f"4b. a process of another chain: warned, went on: {lines[-1]}")

            rc, err = chains_run(bp, node, ch, tmp)
            lines = pause_lines(err)
            fresh = ch.sql(f"SELECT argMax(number, seq) FROM {DB}.checkpoints "
                           "WHERE chain = 'fresh'")
            if rc != 1 or not lines or not fresh or fresh[0][0] is None:
                raise Mismatch(f"a chains: list: exit {rc} (want 1), the fresh chain at "
                               f"{fresh}, refusal {lines}:\n{err[-3000:]}")
            if checkpoint(ch) != before:
                raise Mismatch(f"the refused chain was written: {before} -> {checkpoint(ch)}")
            print(f"5. a chains: list: the paused chain stopped alone (exit 1), 'fresh' written "
                  f"to block {fresh[0][0]}")

            slack = 30 * 86400
            R.mine(node, wl, 1, 30)
            snap = node.rpc("evm_snapshot")  # for 9.: the node without the last block
            R.mine(node, wl, 1, 30)
            mat = materialized(ch)
            rc, err = backfill(bp, node, ch, f"ttl_slack={slack}")
            lines = pause_lines(err)
            if rc != 0 or not lines or "may have lost rows" not in lines[-1]:
                raise Mismatch(f"ttl_slack={slack}: exit {rc}, warning {lines}:\n{err[-3000:]}")
            if f"toIntervalSecond({slack})" not in ttl_of(ch, DB, "chain_metrics_1m"):
                raise Mismatch(f"the TTL was not set to the new slack: {ttl_of(ch, DB)}")
            if materialized(ch) <= mat:
                raise Mismatch("the changed TTLs were not applied to the rows there")
            print(f"6. ttl_slack={slack}: went on, warned: {lines[-1]}; the changed TTLs "
                  f"materialized ({materialized(ch) - mat} mutations)")

            pause(ch)
            rc, err = backfill(bp, node, ch, "ttl=off")
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"ttl=off: exit {rc}, {pause_lines(err)}:\n{err[-3000:]}")
            print("7. the pause again, ttl=off: no check, no refusal")

            for t_ in DERIVED:
                ch.sql(f"ALTER TABLE {DB}.{t_} DROP COLUMN IF EXISTS _written")
            pause(ch, rows=False)
            mat = materialized(ch)
            rc, err = backfill(bp, node, ch)
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"tables without _written: exit {rc}, {pause_lines(err)}:\n"
                               f"{err[-3000:]}")
            if materialized(ch) != mat:
                raise Mismatch("tables without a TTL: their new TTLs were materialized (a rewrite "
                               "of every part the open waits for)")
            print("8. the pause, tables without _written (the open adds it: every row counts "
                  "as written now): no refusal; their new TTLs not materialized (the parts' "
                  "next merges apply them)")

            pause(ch)
            before = checkpoint(ch)
            top = int(before[0])
            node.rpc("evm_revert", [snap])  # the node without block top
            now = int(time.time())
            mine_at(node, now)
            mine_at(node, now + 1)
            rc, err = backfill(bp, node, ch)
            # (set back three times since its last batch: 7., 8. and here)
            text = refusal(rc, err, f"revert of block {top} ", "a reorg of the checkpoint's block",
                           pauses=3)
            if checkpoint(ch) != before:
                raise Mismatch(f"the refused reorg wrote: {before} -> {checkpoint(ch)}")
            print(f"9. a reorg of block {top} (its new blocks dated now): refused: {text}")
    print("PASS")


if __name__ == "__main__":
    main()
