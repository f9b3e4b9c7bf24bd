"""A chain's pause longer than ttl_slack, seen at open (ClickHouse 26.5's engine: chDB behind
tests/tools/chdb_http.py, as in test_clickhouse_current.py).

With the TTLs (ttl on) a row of a window still open is kept only ttl_slack after it was written;
a chain paused longer can have rows of those windows deleted by the server, and the windows
recomputed from what is left come out short. A chain of ~1 h of blocks ending 6 h before now is
backfilled with short retentions (test_metrics_retention's: block rows 2 h, sets 1 h, minutes
4 h): the open minute's and hour's ends plus those retentions are past by the server's clock.

1. A second open right after: no pause, no warning.
2. The pause: the chain's checkpoint (updated_at) and every derived row's _written set back
   8 days (ALTER ... UPDATE), longer than the default slack (7 days). The next open with the
   same options refuses (exit != 0) naming the chain, the pause, ttl_slack, the open windows
   and what to set; nothing more is written (the checkpoint stays). A process writing another
   chain of the database warns and goes on (the chain's own process is the one to refuse).
3. The same with ttl_slack=30 days: it goes on, and warns that the chain's open windows may
   have lost rows under the previous slack (the tables' TTLs then have the new one).
4. The pause again, with ttl=off: no check (the TTLs are removed), no refusal.
5. The pause with tables made before _written, reopened with ttl on: the open adds the column,
   whose default (now) every row there reads when the TTL is applied: nothing to lose, no
   refusal. The TTLs of tables that had none are set without MATERIALIZE TTL (a rewrite of every
   part, which the open would wait for: docs/PERFORMANCE.md), those changed in 3. with it.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from chdb_http import Chdb  # noqa: E402
from metricscheck import Mismatch  # noqa: E402
import test_metrics_retention as R  # noqa: E402

DB = "ttlpause"
CHAIN = "pausechain"
PAUSE = 8 * 86400
DERIVED = ("chain_metrics_block", "contract_metrics_block", "active_addresses",
           "contract_senders", "chain_metrics_1m", "chain_metrics_1h", "chain_metrics_1d",
           "contract_metrics_1m", "contract_metrics_1h", "contract_metrics_1d")


def backfill(bp, node, ch, query="", chain=CHAIN):
    p = subprocess.run([bp, "backfill", "--rpc", node.url, "--output", ch.url(DB, query=query),
                        "--chain", chain, "--from", "0", "--to", str(node.block_number()),
                        "--batch-size", "20"] + R.FLAGS,
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stderr


def checkpoint(ch):
    return ch.sql(f"SELECT argMax(number, seq), argMax(seq, seq) FROM {DB}.checkpoints "
                  f"WHERE chain = '{CHAIN}'")[0]


def pause_lines(err):
    return [ln for ln in err.splitlines() if "ttl_slack" in ln and CHAIN in ln]


def pause(ch, rows=True):
    """The checkpoint and the rows as if written PAUSE seconds earlier."""
    ch.post(f"ALTER TABLE {DB}.checkpoints UPDATE updated_at = updated_at - {PAUSE} WHERE 1",
            params={"mutations_sync": "2"})
    for t in DERIVED if rows else ():
        ch.post(f"ALTER TABLE {DB}.{t} UPDATE _written = _written - {PAUSE} WHERE 1",
                params={"mutations_sync": "2"})


def materialized(ch):
    """How many MATERIALIZE TTL mutations (MODIFY TTL applied to the rows there) the server ran."""
    return int(ch.sql(f"SELECT count() FROM system.mutations WHERE database = '{DB}' AND "
                      "command LIKE '%MATERIALIZE TTL%'")[0][0])


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    with Chdb() as ch:
        start = int(time.time()) - 3600 - 6 * 3600  # ~1 h of blocks ending 6 h before now
        with Anvil(["--timestamp", start]) as node:
            wl = Workload(node, seed=7)
            wl.setup()
            R.mine(node, wl, 24, 150)
            rc, err = backfill(bp, node, ch)
            if rc != 0:
                raise Mismatch(f"first backfill: exit {rc}:\n{err[-3000:]}")
            rc, err = backfill(bp, node, ch)
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"open without a pause: exit {rc}, {pause_lines(err)}")
            print("1. no pause: no warning")

            pause(ch)
            before = checkpoint(ch)
            rc, err = backfill(bp, node, ch)
            lines = pause_lines(err)
            if rc == 0 or not lines:
                raise Mismatch(f"a pause of {PAUSE} s > ttl_slack: exit {rc}, no refusal naming "
                               f"'{CHAIN}':\n{err[-3000:]}")
            text = lines[-1]
            for want in (f"'{CHAIN}'", "604800", "ttl=off", "minute", "hour"):
                if want not in text:
                    raise Mismatch(f"the refusal does not say {want!r}: {text}")
            gap = int(text.split("last written ")[1].split(" s ago")[0])
            if not PAUSE <= gap < PAUSE + 3600:
                raise Mismatch(f"the pause said is {gap} s, want about {PAUSE}: {text}")
            if checkpoint(ch) != before:
                raise Mismatch(f"the refused open wrote: checkpoint {before} -> {checkpoint(ch)}")
            print(f"2. pause of {gap} s: refused: {text}")

            # a process writing another chain of the database: its windows are not this
            # chain's, so it warns and goes on (refusing it would keep nothing)
            rc, err = backfill(bp, node, ch, chain="otherchain")
            lines = pause_lines(err)
            if rc != 0 or not lines or "not a chain of this process" not in lines[-1]:
                raise Mismatch(f"another chain's process: exit {rc}, {lines}:\n{err[-3000:]}")
            print(f"2b. a process of another chain: warned, went on: {lines[-1]}")

            slack = 30 * 86400
            R.mine(node, wl, 2, 30)
            mat = materialized(ch)
            rc, err = backfill(bp, node, ch, f"ttl_slack={slack}")
            lines = pause_lines(err)
            if rc != 0 or not lines or "may have lost rows" not in lines[-1]:
                raise Mismatch(f"ttl_slack={slack}: exit {rc}, warning {lines}:\n{err[-3000:]}")
            ttl = ch.sql(f"SELECT create_table_query FROM system.tables WHERE database = '{DB}' "
                         "AND name = 'chain_metrics_1m'")[0][0]
            if f"toIntervalSecond({slack})" not in ttl:
                raise Mismatch(f"the TTL was not set to the new slack: {ttl}")
            if materialized(ch) <= mat:
                raise Mismatch("the changed TTLs were not applied to the rows there")
            print(f"3. ttl_slack={slack}: went on, warned: {lines[-1]}; the changed TTLs "
                  f"materialized ({materialized(ch) - mat} mutations)")

            pause(ch)
            rc, err = backfill(bp, node, ch, "ttl=off")
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"ttl=off: exit {rc}, {pause_lines(err)}:\n{err[-3000:]}")
            print("4. the pause again, ttl=off: no check, no refusal")

            for t in DERIVED:
                ch.sql(f"ALTER TABLE {DB}.{t} DROP COLUMN IF EXISTS _written")
            pause(ch, rows=False)
            mat = materialized(ch)
            rc, err = backfill(bp, node, ch)
            if rc != 0 or pause_lines(err):
                raise Mismatch(f"tables without _written: exit {rc}, {pause_lines(err)}:\n"
                               f"{err[-3000:]}")
            if materialized(ch) != mat:
                raise Mismatch("tables without a TTL: their new TTLs were materialized (a rewrite "
                               "of every part the open waits for)")
            print("5. the pause, tables without _written (the open adds it: every row counts "
                  "as written now): no refusal; their new TTLs not materialized (the parts' "
                  "next merges apply them)")
    print("PASS")


if __name__ == "__main__":
    main()
