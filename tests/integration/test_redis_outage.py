"""The Redis output when Redis goes away: restarted, crashed, down for a while, down at start.

`blockpipe run` follows anvil (a block every ~0.25 s) into SQLite and Redis.
 1. --output-failure stop (the default) with --wait-for-db 30: Redis is shut down for ~3 s
    and later killed (SIGKILL; its AOF has every committed transaction) while blocks keep
    coming. blockpipe must keep running, say it lost the connection, and bring Redis to the
    head: a stream consumer (XREAD from the start, applying each apply) holds exactly the
    node's chain and was never handed a duplicate.
 2. --output-failure continue with --wait-for-db 1: Redis is down for ~12 s. The Redis output
    is set aside (log line, stats line outputs_set_aside=1, --alert output_failing firing to
    a webhook of the test's own) and SQLite keeps advancing past it; when Redis is back the output is caught up from its own checkpoint, re-read from the
    node (the pipeline goes back to it; SQLite skips what it has): the consumer holds exactly
    the chain again, no duplicate, nothing missing, and SQLite is exact; output_failing has
    resolved, once.
 3. Redis down at start with continue: the run starts with Redis set aside, SQLite goes on,
    and Redis is caught up once it is started.
Every phase ends with SIGINT and exit 0.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from outage import Miner, Run, sqlite_cp  # noqa: E402
import outage  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail  # noqa: E402
from redis import Redis  # noqa: E402
from streamcheck import RedisConsumer, redis_checkpoint  # noqa: E402
from webhook import WebhookReceiver  # noqa: E402

CHAIN = "31337"
URL_QUERY = "entities=blocks,transactions,logs&maxlen=0&retries=0"


def settle(node, r, run, db, consumer, label):
    def view():
        consumer.poll()
        return consumer.view
    return outage.settle(node, run, db, lambda: redis_checkpoint(r, CHAIN), view, label)


def start(bp, node, r, db, log_path, mode, wait, extra=()):
    return Run(bp, node, db, log_path, mode, r.url(query=URL_QUERY),
               ["--wait-for-db", str(wait), *extra])


def output_failing(hook):
    return [c["state"] for c in hook.calls if c["rule"] == "output_failing"]


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-redis-outage-")
    db = os.path.join(tmp.name, "out.db")
    run = None
    with Redis() as r, Anvil() as node:
        try:
            wl = Workload(node, seed=77)
            wl.setup()
            miner = Miner(wl)
            consumer = RedisConsumer(r, CHAIN)

            # 1. stop mode: restarts and a crash of Redis within --wait-for-db
            run = start(bp, node, r, db, os.path.join(tmp.name, "1.log"), "stop", 30)
            miner.until(lambda: redis_checkpoint(r, CHAIN) is not None, run, "1: first batch")
            r.shutdown()
            miner.for_seconds(3, run, "1: Redis down")
            r.start()
            miner.for_seconds(1, run, "1: Redis back")
            r.kill()
            miner.for_seconds(2, run, "1: Redis crashed")
            r.start()
            miner.for_seconds(1, run, "1: Redis back after the crash")
            head = settle(node, r, run, db, consumer, "1: after a restart and a crash")
            if not run.has("trying again"):
                raise Fail("1: blockpipe never said it lost Redis:\n" + tail(run.log_path))
            run.stop("1")
            print(f"1 ok: Redis restarted and crashed; exact up to {head}, "
                  f"{consumer.view.entries} entries, no duplicate")

            # 2. continue mode: down longer than --wait-for-db
            hook = WebhookReceiver()
            run = start(bp, node, r, db, os.path.join(tmp.name, "2.log"), "continue", 1,
                        ["--alert", "output_failing", "--alert-webhook", hook.url])
            miner.for_seconds(1, run, "2: start")
            r.shutdown()
            down_at = redis_cp = None
            miner.until(lambda: run.has("this output is set aside"), run,
                        "2: the Redis output set aside")
            miner.until(lambda: run.has("outputs_set_aside=1"), run,
                        "2: a stats line saying so")
            miner.until(lambda: output_failing(hook) == ["firing"], run,
                        "2: --alert output_failing firing (webhook)")
            down_at = sqlite_cp(db)
            miner.until(lambda: (sqlite_cp(db) or 0) >= down_at + 8, run,
                        "2: SQLite advancing while Redis is down")
            miner.for_seconds(3, run, "2: Redis down")
            r.start()
            redis_cp = redis_checkpoint(r, CHAIN)
            miner.until(lambda: run.has("answers again"), run, "2: the probe finding Redis")
            miner.for_seconds(1, run, "2: catching up")
            head = settle(node, r, run, db, consumer, "2: after Redis was down for a while")
            if not run.has("to catch it up"):
                raise Fail("2: the pipeline never went back for Redis:\n" + tail(run.log_path))
            miner.until(lambda: output_failing(hook) == ["firing", "resolved"], run,
                        "2: --alert output_failing resolved once Redis is caught up")
            run.stop("2")
            hook.close()
            if output_failing(hook) != ["firing", "resolved"] or not run.has(
                    "resolved: output_failing"):
                raise Fail(f"2: output_failing webhook calls {output_failing(hook)}, want "
                           f"firing, resolved (and the log line)")
            print(f"2 ok: Redis set aside at {redis_cp[0]} while SQLite went from {down_at} on; "
                  f"caught up to {head}, exact, no duplicate; --alert output_failing fired "
                  f"and resolved once each")

            # 3. down at start
            r.shutdown()
            run = start(bp, node, r, db, os.path.join(tmp.name, "3.log"), "continue", 1)
            start_sqlite = sqlite_cp(db)
            miner.until(lambda: (sqlite_cp(db) or 0) >= start_sqlite + 4, run,
                        "3: SQLite advancing with Redis down since the start")
            if not run.has("reading checkpoint"):
                raise Fail("3: no message about the Redis output at start:\n" + tail(run.log_path))
            r.start()
            miner.until(lambda: run.has("answers again"), run, "3: the probe finding Redis")
            head = settle(node, r, run, db, consumer, "3: Redis down at start")
            run.stop("3")
            print(f"3 ok: Redis down at start, caught up to {head}; exact, no duplicate")
            print("OK: Redis restarted, crashed, down for a while and down at start: nothing "
                  "dropped, nothing twice")
        finally:
            if run is not None:
                run.kill()
            tmp.cleanup()


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError) as e:
        sys.exit(f"FAIL: {e}")
