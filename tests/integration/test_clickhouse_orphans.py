"""ClickHouse: a writer's recovery waits for the queries an earlier writer left running.

A writer killed (SIGKILL) after it sent an INSERT leaves that INSERT running on the server,
which commits it whether or not anyone waits for the answer; a recovery that ran before it
landed would leave its rows behind (seen in test_outputs_contract on a loaded machine:
sum(_sign) 2 for keys of a batch written again). Every writer tags its queries with a query_id
naming the database (bpw_<FNV-1a 64 of the name>_...). Here a query tagged as a dead writer's
of this database (9 s of sleeps: a loaded machine takes seconds to open the output) runs when a backfill opens the output: the backfill must say it
waits for that query and finish its recovery only after it ended; a query tagged for another
database must not be waited for. The backfill must then hold every block of the node."""
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]
DB = "orph"


def fail(msg):
    sys.exit("FAIL: " + msg)


def writers_prefix(db):
    h = 1469598103934665603
    for c in db.encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"bpw_{h:016x}_"


def sleeper(ch, query_id, ended):
    # sleep() stops at 3 s; it sleeps on each block, three blocks of one row
    ch.post("SELECT sleep(3) FROM system.numbers LIMIT 3 SETTINGS max_block_size = 1",
            params={"query_id": query_id})
    ended.append(time.time())


def running(ch, query_id):
    return ch.sql(f"SELECT count() FROM system.processes WHERE query_id = '{query_id}'")[0][0] == "1"


def log_time(line):
    stamp = line.split()[0]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def main():
    print(__doc__.strip().splitlines()[0])
    node = Simnode(BP, ["--length", "6", "--txs-per-block", "3", "--block-time", "0"])
    try:
        with ClickHouse() as ch:
            ours = writers_prefix(DB) + "4242_dead_0"
            other = writers_prefix("another") + "4243_dead_0"
            ended = []
            threads = [threading.Thread(target=sleeper, args=(ch, q, e))
                       for q, e in ((ours, ended), (other, []))]
            for t in threads:
                t.start()
            deadline = time.time() + 2.5
            while not (running(ch, ours) and running(ch, other)):
                if time.time() > deadline:
                    fail("the tagged sleeps did not start")
                time.sleep(0.02)
            p = subprocess.run([BP, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "5",
                                "--output", ch.url(DB)], capture_output=True, text=True,
                               timeout=300)
            for t in threads:
                t.join()
            if p.returncode != 0:
                fail(f"backfill exited {p.returncode}: {p.stderr[-3000:]}")
            lines = p.stderr.splitlines()
            waits = [ln for ln in lines if "left running by an earlier writer" in ln]
            if len(waits) != 1 or ours not in waits[0] or other in waits[0]:
                fail(f"the backfill did not say it waits for {ours} (and only it): {waits}\n"
                     f"{p.stderr[-3000:]}")
            opened = [ln for ln in lines if f"127.0.0.1:{ch.http_port}/{DB}: server" in ln]
            if not opened or not ended:
                fail(f"no line of the output's open after its recovery: {p.stderr[-3000:]}")
            # the log has milliseconds; the sleep's end is seen by the client after the server
            if log_time(opened[0]) < ended[0] - 0.5:
                fail(f"the output opened at {opened[0].split()[0]}, before the earlier "
                     f"writer's query ended ({ended[0]:.3f})")
            rows = ch.sql(f"SELECT count(), sum(_sign) FROM {DB}.blocks")
            if rows != [["6", "6"]]:
                fail(f"{DB}.blocks holds count, sum(_sign) = {rows}, expected 6 blocks once")
    finally:
        node.kill()
    print("OK: the recovery waited for the earlier writer's query and for no other")


if __name__ == "__main__":
    main()
