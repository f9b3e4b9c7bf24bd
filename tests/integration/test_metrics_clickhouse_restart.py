"""The ClickHouse server stopped by PID while blockpipe writes the derived tables, kept down a
while and started again on the same data dir and ports (a real Debian clickhouse-server,
18.16): the run goes on, and loses or doubles nothing.

tests/tools/metricsdrive.py's chain (anvil blocks spread over minutes, hours and days, the
random workload and token events) is followed by one `blockpipe run --confirmations 0
--batch-size 2` (wait_for_db=120) from block 0, blocks being mined as it goes. Several times,
while a write is under way (`--log-level debug`) and the server runs one of its derived
statements (system.processes), the server is stopped by PID (a clean shutdown, then SIGKILLs:
a crash of the server), kept down until blockpipe has failed the batch twice, and started
again on the same data dir and ports; during one of the outages anvil reorgs the last 3
blocks. At least three outages, and until at least two of the failed statements were derived
ones (an INSERT into or a read of chain_metrics_*, contract_metrics_*, the sets,
token_transfers, ...: a statement may end between the look and the stop). Then, once the
checkpoint is the node's head: every row of every derived table in every grain, as a query
sees it (FINAL, the rollups' newest versions, sign sums equal to FINAL's row counts), equals
tests/tools/metricscheck.py's recomputation from the node's blocks and receipts, and the raw
tables hold every block, transaction and log once; again after forcing the merges.
"""

import os
import re
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rowcheck  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import Mismatch  # noqa: E402
from metricsdrive import ORIGIN, Scenario, tail  # noqa: E402
from test_metrics_clickhouse import PER_BLOCK, ROLLUPS, ChBackend  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "2727"))
DB = "gtp"
HANG = 180  # seconds: only a guard against a hang
MAX_OUTAGES = 6
DERIVED = re.compile(r"chain_metrics|contract_metrics|active_addresses|contract_senders|"
                     r"token_transfers|ml_predictions|derived|finer rows|window's set|prices")
DERIVED_TABLES = re.compile(r"chain_metrics|contract_metrics|active_addresses|contract_senders|"
                            r"token_transfers|ml_predictions")
RETRY = "writing the batch again"


def log_text(sc):
    with open(sc.err_path, errors="replace") as f:
        return f.read()


def wait(cond, label, proc, sc, step=0.005):
    deadline = time.monotonic() + HANG
    while not cond():
        if proc.poll() is not None:
            raise Mismatch(f"{label}: blockpipe exited {proc.returncode}:\n{tail(sc.err_path)}")
        if time.monotonic() > deadline:
            raise Mismatch(f"{label}: not within {HANG} s:\n{tail(sc.err_path)}")
        time.sleep(step)


def writing(sc):
    """The log's last write line is a start (the ClickHouse output is the only one)."""
    text = log_text(sc)
    return text.rfind("': writing ") > text.rfind("': written")


def derived_running(ch):
    """A derived statement of blockpipe's is running on the server (system.processes)."""
    try:
        rows = ch.sql("SELECT query FROM system.processes WHERE query NOT LIKE '%system.processes%'",
                      timeout=5)
    except (OSError, RuntimeError):
        return False
    return any(DERIVED_TABLES.search(r[0] or "") for r in rows)


def outage(sc, ch, proc, how, reorg):
    """Stops the server by PID while it runs one of blockpipe's derived statements, keeps it
    down until two attempts of the batch failed (reorging anvil meanwhile if asked), starts it
    again and waits until the batch is written; the failures' messages."""
    polled = [0.0]

    def in_derived():
        if writing(sc) and derived_running(ch):
            return True
        if time.monotonic() - polled[0] > 0.5:  # caught up: give it a batch to write
            polled[0] = time.monotonic()
            head = sc.node.block_number()
            if sc.be.checkpoint() == (head, sc.node.block(head, False)["hash"]):
                sc.mine(2)
        return False
    wait(in_derived, "a derived statement running", proc, sc, 0.01)
    before, written = log_text(sc).count(RETRY), log_text(sc).count("': written")
    getattr(ch, how)()
    mined = [time.monotonic()]

    def failed_twice():
        if log_text(sc).count(RETRY) >= before + 2:
            return True
        if time.monotonic() - mined[0] > 3:  # the write ended first: the next one will fail
            mined[0] = time.monotonic()
            sc.mine(2)
        return False
    wait(failed_twice, "two failed attempts while down", proc, sc, 0.05)
    if reorg:
        sc.node.rpc("anvil_reorg", [3, []])
        sc.wl.after_reorg()
        sc.mine()
    ch.start()
    lines = [ln for ln in log_text(sc).splitlines() if RETRY in ln][before:]
    # the batch written at last (not stopped again while it is still being retried)
    wait(lambda: log_text(sc).count("': written") > written, "the batch written after the start",
         proc, sc, 0.05)
    return lines


def main():
    print(__doc__)
    blockpipe = os.environ["BLOCKPIPE"]
    with ClickHouse() as ch, tempfile.TemporaryDirectory(prefix="bp-metrics-ch-rs-") as tmp:
        be = ChBackend(ch, DB)
        be.url = ch.url(DB, query="wait_for_db=120")
        sc = Scenario(blockpipe, be, tmp, SEED)
        proc = None
        try:
            for _ in range(30):
                sc.mine()
            proc = sc.spawn(sc.cmd("run", "--start-block", "0", "--confirmations", "0",
                                   "--poll-interval", "0.2", "--batch-size", "2",
                                   "--log-level", "debug"))
            derived, outages = 0, 0
            while outages < MAX_OUTAGES and (derived < 2 or outages < 3):
                how = "shutdown" if outages == 0 else "kill"
                lines = outage(sc, ch, proc, how, reorg=outages == 1)
                outages += 1
                hit = [ln for ln in lines if DERIVED.search(ln)]
                derived += bool(hit)
                first = (hit or lines)[0]
                print(f"outage {outages} ({how}"
                      f"{', anvil reorged meanwhile' if outages == 2 else ''}): {len(lines)} "
                      f"failed attempts, the first: {first[first.find('clickhouse'):][:160]}",
                      flush=True)
                for _ in range(3):
                    sc.mine()
            if derived < 2:
                raise Mismatch(f"only {derived} of {outages} outages failed a derived statement")
            sc.wait_caught_up(proc, "after the outages")
            proc.send_signal(signal.SIGINT)
            if proc.wait(60) != 0:
                raise Mismatch(f"run exited {proc.returncode} on SIGINT:\n{tail(sc.err_path)}")
            head = sc.node.block_number()
            data = rowcheck.fetch(sc.node.url, range(head + 1))
            for label in (f"after {outages} server outages ({derived} in derived writes)",
                          "all merged"):
                if label == "all merged":
                    ch.merge(DB, ("blocks", "transactions", "logs") + PER_BLOCK + ROLLUPS)
                sc.check(label)
                counts = rowcheck.ch_exact(ch, DB, data, ORIGIN, label)
                print(f"{label}: the raw tables hold blocks={counts['blocks']} "
                      f"txs={counts['transactions']} logs={counts['logs']} once, every field",
                      flush=True)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            sc.close()
    print("PASS")


if __name__ == "__main__":
    main()
