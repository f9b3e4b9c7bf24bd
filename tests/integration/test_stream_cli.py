"""Keyed streams through the command line (`blockpipe stream ...`), without and with Redis.

For the embedded SQLite store (sqlite:FILE, no server) and for a redis-server with a
password (redis://:pw@.../0?prefix=ks:&maxlen=0, and through STREAM_STORE):
 - publish prints the stored entry; latest is the newest; history the newest first, at most
   --limit; keys the sorted keys under a prefix; a value read from stdin with `-`;
 - subscribe --from 0 --count 2 replays the first two entries in order and exits;
 - a subscriber started before three more publications (from other processes) prints
   those three, in order (and nothing published before it started), and stops on SIGINT
   with exit 0;
 - a value that is not JSON exits 2, a key with no entry exits 1, an unknown store exits 2.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin  # noqa: E402
from redis import Redis  # noqa: E402

HANG = 60


def cli(bp, store, *args, stdin=None, env=None):
    cmd = [bp, "stream"] + (["--store", store] if store else []) + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=HANG, env=env)
    return p.returncode, p.stdout, p.stderr


def ok(bp, store, *args, stdin=None, env=None):
    rc, out, err = cli(bp, store, *args, stdin=stdin, env=env)
    if rc != 0:
        raise Fail(f"stream {' '.join(args)}: exit {rc}: {err}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")] or out


def values(entries):
    return [e["value"] for e in entries]


def exercise(bp, store, label, env=None):
    s = None if env else store
    first = ok(bp, s, "publish", "price/eth", '{"usd": 3000}', env=env)[0]
    if (first["key"], first["value"]) != ("price/eth", {"usd": 3000}):
        raise Fail(f"{label}: publish printed {first}")
    ok(bp, s, "publish", "price/eth", '{"usd": 3001}', env=env)
    ok(bp, s, "publish", "price/btc", "-", stdin='{"usd": 60000}\n', env=env)
    ok(bp, s, "publish", "other", "[1, 2, 3]", env=env)
    if values(ok(bp, s, "latest", "price/eth", env=env)) != [{"usd": 3001}]:
        raise Fail(f"{label}: latest is not the newest")
    h = ok(bp, s, "history", "price/eth", "--limit", "5", env=env)
    if values(h) != [{"usd": 3001}, {"usd": 3000}]:
        raise Fail(f"{label}: history {values(h)}, want newest first")
    if values(ok(bp, s, "history", "price/eth", "--limit", "1", env=env)) != [{"usd": 3001}]:
        raise Fail(f"{label}: history --limit 1")
    keys = ok(bp, s, "keys", "price/", env=env)
    if keys.split() != ["price/btc", "price/eth"]:
        raise Fail(f"{label}: keys price/ printed {keys!r}")
    replay = ok(bp, s, "subscribe", "price/eth", "--from", "0", "--count", "2", env=env)
    if values(replay) != [{"usd": 3000}, {"usd": 3001}]:
        raise Fail(f"{label}: subscribe --from 0 replayed {values(replay)}")

    # a live subscriber: what is published after it started, in order, until SIGINT (exit 0)
    cmd = [bp, "stream"] + (["--store", s] if s else []) + ["subscribe", "live"]
    sub = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(sub.stdout), daemon=True)
    reader.start()
    ok(bp, s, "publish", "live", '"maybe before the subscriber started"', env=env)
    time.sleep(1.0)  # the subscriber takes its starting point meanwhile (either way is right)
    for i in range(3):
        ok(bp, s, "publish", "live", json.dumps({"n": i}), env=env)
    deadline = time.monotonic() + HANG
    while not any('"n":2' in line for line in list(lines)) and time.monotonic() < deadline:
        if sub.poll() is not None:
            break
        time.sleep(0.05)
    sub.send_signal(signal.SIGINT)
    rc = sub.wait(HANG)
    reader.join(HANG)
    got = [json.loads(line)["value"] for line in lines]
    want = [{"n": 0}, {"n": 1}, {"n": 2}]
    if rc != 0 or got not in (want, ["maybe before the subscriber started"] + want):
        raise Fail(f"{label}: the subscriber printed {got} (exit {rc}: {sub.stderr.read()})")

    rc, _, err = cli(bp, s, "publish", "k", "{not json", env=env)
    if rc != 2 or "not JSON" not in err:
        raise Fail(f"{label}: a value that is not JSON: exit {rc} ({err})")
    rc, _, err = cli(bp, s, "latest", "no/such/key", env=env)
    if rc != 1 or "has no entry" not in err:
        raise Fail(f"{label}: a key with no entry: exit {rc} ({err})")
    print(f"  {label}: ok")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    with tempfile.TemporaryDirectory(prefix="bp-stream-cli-") as tmp:
        exercise(bp, f"sqlite:{tmp}/streams.db", "SQLite store")
        rc, _, err = cli(bp, "memcached://x", "keys")
        if rc != 2 or "expected sqlite:PATH or redis://" not in err:
            raise Fail(f"an unknown store: exit {rc} ({err})")
    with Redis(password="kpw") as r:
        url = r.url(query="prefix=ks:&maxlen=0")
        exercise(bp, url, "Redis store")
        if r.call("XLEN", "ks:kv:price/eth") != 2:
            raise Fail("Redis store: ks:kv:price/eth does not hold the 2 entries")
        env = dict(os.environ, STREAM_STORE=r.url(db=2))
        exercise(bp, None, "Redis store from STREAM_STORE", env=env)
    print("OK: keyed streams through the CLI, without and with Redis")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
