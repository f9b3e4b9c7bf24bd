"""--api with an Arch chain is refused at start, before any output is made: the API's readers
and push (REST, WebSocket, SSE, webhooks) serve the EVM tables and blocks only (docs/ARCH.md).

- `run --chain-type arch --api HOST:PORT`: exit 2, the message names --chain-type arch, --api and
  the arch_* tables; the SQLite file is not created;
- `run --config` of a chains: list with an Arch entry and `api:`: the same, naming the chain;
- the same run without --api works (a backfill of 0..3 stores 4 arch_blocks rows), so the
  refusal is the API's.
Stdlib only; needs BLOCKPIPE.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402
from server import free_port  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def refused(r, db, what, want):
    missing = [w for w in want if w not in r.stderr]
    if r.returncode != 2 or missing:
        fail(f"{what}: exit {r.returncode} (want 2), missing {missing} in:\n{r.stderr[-2000:]}")
    if os.path.exists(db):
        fail(f"{what}: the output {db} was created before the refusal")
    print(f"{what}: refused at start, nothing created")


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0", "--start-head", "10"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-arch-api-") as tmp:
            api = f"127.0.0.1:{free_port()}"
            want = ["--chain-type arch with --api", "arch_blocks", "EVM tables"]
            db = os.path.join(tmp, "one.db")
            r = subprocess.run([bp, "run", "--chain-type", "arch", "--rpc", node.urls[0],
                                "--output", f"sqlite:{db}", "--api", api],
                               capture_output=True, text=True, timeout=60)
            refused(r, db, "run --chain-type arch --api", want)
            cfg = os.path.join(tmp, "chains.yaml")
            db = os.path.join(tmp, "chains.db")
            with open(cfg, "w") as f:
                f.write(f"output: sqlite:{db}\napi: {api}\nchains:\n  - name: archnet\n"
                        f"    chain_type: arch\n    rpc: {node.urls[0]}\n")
            r = subprocess.run([bp, "run", "--config", cfg], capture_output=True, text=True,
                               timeout=60)
            refused(r, db, "a chains: list with an Arch chain and api:",
                    want + ["chain 'archnet'"])
            db = os.path.join(tmp, "noapi.db")
            r = subprocess.run([bp, "backfill", "--chain-type", "arch", "--rpc", node.urls[0],
                                "--output", f"sqlite:{db}", "--from", "0", "--to", "3"],
                               capture_output=True, text=True, timeout=60)
            n = 0
            if os.path.exists(db):
                con = sqlite3.connect(db)
                n = con.execute("SELECT count(*) FROM arch_blocks").fetchone()[0]
                con.close()
            if r.returncode != 0 or n != 4:
                fail(f"without --api: exit {r.returncode}, {n} blocks:\n{r.stderr[-2000:]}")
            print("without --api: 4 blocks stored")
    finally:
        node.kill()
    print("OK")


if __name__ == "__main__":
    main()
