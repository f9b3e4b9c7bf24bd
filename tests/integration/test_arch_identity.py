"""An Arch chain's identity is its genesis block's hash (get_block_hash(0), first 8 bytes):
endpoints of another Arch network are refused, as EVM endpoints of another chain id are.

Three `blockpipe simnode --chain-type arch`: A and A2 (the same seed: one network, two nodes)
and B (another seed: another genesis, another network).
- `backfill --rpc A --rpc A2` stores blocks 0..5 (the two agree);
- `backfill --rpc A --rpc B` fails at start, naming both endpoints and their genesis ids, and
  writes nothing;
- `run --rpc A --rpc B`: the same refusal.
The genesis ids in the message must be the first 16 hex digits of each node's
get_block_hash(0) (so a user can check them). Stdlib only; needs BLOCKPIPE.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

ARGS = ["--chain-type", "arch", "--block-time", "0", "--start-head", "20", "--txs-per-block", "2"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def genesis(node):
    return node.rpc_batch([("get_block_hash", [0])])[0]


def blockpipe(bp, cmd, urls, db):
    args = [bp, cmd, "--chain-type", "arch", "--output", f"sqlite:{db}", "--log-level", "info"]
    for u in urls:
        args += ["--rpc", u]
    args += ["--from", "0", "--to", "5"] if cmd == "backfill" else ["--start-block", "0"]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def stored(db):
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'arch_blocks'").fetchone():
            return 0  # made at an Arch chain's first write
        return con.execute("SELECT count(*) FROM arch_blocks").fetchone()[0]
    finally:
        con.close()


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    nodes = []
    try:
        a = Simnode(bp, ARGS + ["--seed", "7"])
        nodes.append(a)
        a2 = Simnode(bp, ARGS + ["--seed", "7"])
        nodes.append(a2)
        b = Simnode(bp, ARGS + ["--seed", "8"])
        nodes.append(b)
        ga, ga2, gb = genesis(a), genesis(a2), genesis(b)
        if ga != ga2 or ga == gb:
            fail(f"simnode genesis hashes: seed 7 {ga} / {ga2}, seed 8 {gb}: the test needs "
                 "equal ones for one seed and different ones for two")
        with tempfile.TemporaryDirectory(prefix="bp-arch-id-") as tmp:
            db = os.path.join(tmp, "same.db")
            r = blockpipe(bp, "backfill", [a.urls[0], a2.urls[0]], db)
            if r.returncode != 0 or stored(db) != 6:
                fail(f"two nodes of one network: exit {r.returncode}, {stored(db)} blocks "
                     f"stored (want 6):\n{r.stderr[-2000:]}")
            if f"chain arch (genesis id {ga[:16]})" not in r.stderr:
                fail(f"the log does not show the genesis id {ga[:16]}:\n{r.stderr[-2000:]}")
            print(f"one network, two nodes (genesis {ga[:16]}...): 6 blocks stored")
            for cmd in ("backfill", "run"):
                db = os.path.join(tmp, f"{cmd}.db")
                r = blockpipe(bp, cmd, [a.urls[0], b.urls[0]], db)
                want = [f"rpc[1] {b.urls[0]} serves genesis id {gb[:16]}",
                        f"rpc[0] {a.urls[0]} serves {ga[:16]}",
                        "every endpoint of a chain must serve the same chain",
                        "get_block_hash(0)"]
                missing = [w for w in want if w not in r.stderr]
                if r.returncode == 0 or missing:
                    fail(f"{cmd} with endpoints of two networks: exit {r.returncode}, missing "
                         f"{missing} in:\n{r.stderr[-2000:]}")
                if stored(db):
                    fail(f"{cmd} with endpoints of two networks stored {stored(db)} blocks")
                print(f"{cmd} with endpoints of two networks: refused, nothing stored")
    finally:
        for n in nodes:
            n.kill()
    print("OK")


if __name__ == "__main__":
    main()
