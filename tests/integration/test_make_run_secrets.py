"""`RPC_URL=https://provider/KEY make run` shows no key anywhere.

A provider's URL carries its key in the path or the query; a database URL its password.
scripts/run.sh is started as `make run` starts it, with RPC_URL a simnode URL with a key in
its path and query (simnode answers on any path) and DATABASE_URL a SQLite file:
- the chain is indexed (blocks committed, read from /api/sync-status);
- no key is in what the user sees or what is kept: the script's output (its banner printed
  the URL whole before), /api/sync-status, /metrics, /api/realtime/status, the dashboard's
  status document at /, the SQLite file and its WAL;
- Ctrl-C: blockpipe exits 0, and so does the script.
The banner's masking of an output URL's password is checked on the function itself
(masked_output, a postgres:// and a redis:// URL), as no server is needed for it.
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
from apiclient import Api  # noqa: E402
from pgcheck import Fail, blockpipe_bin, kill_running, wait_for  # noqa: E402
from server import free_port  # noqa: E402
from simnode import Simnode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SH = os.path.join(ROOT, "scripts", "run.sh")
HANG = 90  # a hang guard only
KEY, QKEY, PW = "PathKey5ecret", "QueryKey5ecret", "Passw0rd5ecret"


def masked_output(url):
    script = f'source <(sed -n "/^masked_output()/,/^}}/p" "{RUN_SH}"); masked_output "$1"'
    return subprocess.run(["bash", "-c", script, "bash", url], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    for url, want in ((f"postgres://bp:{PW}@db.example:5432/chain",
                       "postgres://bp:***@db.example:5432/chain"),
                      (f"redis://:{PW}@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
                      ("sqlite:blockpipe.db", "sqlite:blockpipe.db")):
        got = masked_output(url)
        if got != want:
            sys.exit(f"FAIL: masked_output({url!r}) = {got!r}, expected {want!r}")
    print("check: the banner masks an output URL's password", flush=True)

    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-makerun-secrets-")
    db = os.path.join(tmp.name, "bp.db")
    node = proc = None
    out = []
    try:
        node = Simnode(bp, ["--block-time", "1", "--start-head", "5", "--txs-per-block", "2"])
        port = free_port()
        env = dict(os.environ, BLOCKPIPE=bp, API_LISTEN=f"127.0.0.1:{port}",
                   RPC_URL=f"{node.urls[0]}/v2/{KEY}?apikey={QKEY}",
                   DATABASE_URL=f"sqlite:{db}", STATS_INTERVAL="1")
        for name in ("OUTPUT", "ANKR_RPC_URL", "WEBSOCKET_URL"):
            env.pop(name, None)
        proc = subprocess.Popen(["bash", RUN_SH], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=tmp.name)
        reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
        reader.start()
        api = Api(port)

        def committed():
            try:
                return (api.ok("/api/sync-status").get("chains") or [{}])[0].get("committed")
            except (OSError, AssertionError, ValueError):
                return None
        wait_for(lambda: (committed() or 0) >= 3, HANG, "blocks committed")
        wait_for(lambda: sum("stats head=" in line for line in out) >= 2, HANG, "stats lines")
        seen = {"script output": "".join(out)}
        for path in ("/api/sync-status", "/metrics", "/api/realtime/status", "/"):
            status, _, body = api.get(path)
            seen[path] = body if isinstance(body, str) else json.dumps(body)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(HANG)
        reader.join(10)
        seen["script output"] = "".join(out)
        if rc != 0:
            raise Fail(f"run.sh exited {rc} after Ctrl-C")
        for name in (db, db + "-wal"):
            if os.path.exists(name):
                with open(name, "rb") as f:
                    seen[name] = f.read().decode("latin-1")
        for where, text in seen.items():
            for secret in (KEY, QKEY):
                if secret in text:
                    at = text.index(secret)
                    raise Fail(f"the key {secret} is in {where}: ...{text[max(0, at - 80):at + 40]}")
        if "indexing http://127.0.0.1:" not in seen["script output"]:
            raise Fail("the banner does not name the node's host")
        print(f"check: indexed (3 blocks or more), no key in {sorted(seen)}; Ctrl-C: exit 0",
              flush=True)
    except (Fail, AssertionError, OSError, subprocess.TimeoutExpired) as e:
        print("".join(out[-40:]))
        sys.exit(f"FAIL: {e}")
    finally:
        kill_running(proc)
        if node:
            node.kill()
        tmp.cleanup()
    print(f"OK: make run with a keyed RPC_URL shows no key ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
