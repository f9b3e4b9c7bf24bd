"""The Kafka output when the broker goes away (librdkafka's mock cluster, broker down / up).

`blockpipe run` follows anvil (a block every ~0.25 s) into SQLite and Kafka (--kafka-timeout 3).
 1. --output-failure stop: the broker is down for ~2 s; blockpipe keeps running (the batch's
    transaction is aborted and written again) and Kafka reaches the head.
 2. --output-failure continue: the broker is down for ~15 s. The Kafka output is set aside
    (log line, stats line outputs_set_aside=1), SQLite keeps advancing past it; when the
    broker is back the output is caught up from its own checkpoint, re-read from the node.
 3. The broker down at start with continue: Kafka starts set aside, SQLite goes on, and Kafka
    is caught up once the broker is up.
After each, a read-committed consumer (tests/tools/kafka.py) holds exactly the node's chain,
never handed a duplicate, and SQLite is exact. Every phase ends with SIGINT and exit 0.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from kafka import KafkaMock, checkpoint_of  # noqa: E402
from outage import Miner, Run, sqlite_cp  # noqa: E402
import outage  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail  # noqa: E402
from streamcheck import kafka_view  # noqa: E402

CHAIN = "31337"


def settle(node, k, run, db, label):
    return outage.settle(node, run, db, lambda: checkpoint_of(k, CHAIN),
                         lambda: kafka_view(k, CHAIN), label)


def start(bp, node, k, db, log_path, mode):
    return Run(bp, node, db, log_path, mode, k.url("entities=blocks,transactions,logs"),
               ["--kafka-timeout", "3"])


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-kafka-outage-")
    db = os.path.join(tmp.name, "out.db")
    run = None
    with KafkaMock() as k, Anvil() as node:
        try:
            wl = Workload(node, seed=88)
            wl.setup()
            miner = Miner(wl)

            run = start(bp, node, k, db, os.path.join(tmp.name, "1.log"), "stop")
            miner.until(lambda: checkpoint_of(k, CHAIN) is not None, run, "1: first batch")
            k.down(1)
            miner.for_seconds(2, run, "1: broker down")
            k.up(1)
            miner.for_seconds(1, run, "1: broker up")
            head = settle(node, k, run, db, "1: after the broker was down for 2 s")
            run.stop("1")
            print(f"1 ok: broker down for 2 s (stop mode); exact up to {head}")

            run = start(bp, node, k, db, os.path.join(tmp.name, "2.log"), "continue")
            miner.for_seconds(1, run, "2: start")
            k.down(1)
            miner.until(lambda: run.has("this output is set aside"), run, "2: Kafka set aside")
            miner.until(lambda: run.has("outputs_set_aside=1"), run, "2: a stats line saying so")
            at = sqlite_cp(db)
            miner.until(lambda: (sqlite_cp(db) or 0) >= at + 8, run, "2: SQLite going on")
            k.up(1)
            miner.until(lambda: run.has("answers again"), run, "2: the probe finding Kafka")
            head = settle(node, k, run, db, "2: after the broker was down for a while")
            if not run.has("to catch it up"):
                raise Fail("2: the pipeline never went back for Kafka:\n" + tail(run.log_path))
            run.stop("2")
            print(f"2 ok: Kafka set aside while SQLite went on from {at}; caught up to {head}")

            k.down(1)
            run = start(bp, node, k, db, os.path.join(tmp.name, "3.log"), "continue")
            first = sqlite_cp(db)
            miner.until(lambda: (sqlite_cp(db) or 0) >= first + 4, run,
                        "3: SQLite going on with the broker down since the start")
            if not run.has("reading checkpoint"):
                raise Fail("3: no message about the Kafka output at start:\n" + tail(run.log_path))
            k.up(1)
            miner.until(lambda: run.has("answers again"), run, "3: the probe finding Kafka")
            head = settle(node, k, run, db, "3: the broker down at start")
            run.stop("3")
            print(f"3 ok: the broker down at start; caught up to {head}")
            print("OK: the broker down briefly, for a while and at start: nothing dropped, "
                  "nothing twice")
        finally:
            if run is not None:
                run.kill()
            tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
