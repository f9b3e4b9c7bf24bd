"""An endpoint that is down at start gets requests only once it names the chain's id.

rpc[0] is simnode A (chain id 1337, a block every 0.2 s); rpc[1] (preferred: priority 0) is a
port nothing listens on when `blockpipe run` starts. Then simnode B comes up on that port,
ahead of A (so blockpipe would ask it for the newest blocks):
1. B serves chain id 999: blockpipe must say rpc[1] is never used, its stats line must read
   state=other-chain with requests=0, and the output must be A's chain.
2. B serves A's chain (same seed and id): blockpipe must say rpc[1] is in use, rpc[1] must
   carry requests, and the output must be A's chain.
Stdlib only; needs BLOCKPIPE.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from simnode import Simnode  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
CHAIN = ["--seed", "5", "--txs-per-block", "3", "--block-time", "0.2"]


def fail(msg):
    raise AssertionError(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_stats(err, ep):
    lines = re.findall(rf"stats rpc\[{ep}\] \S+ state=(\S+) .*? requests=(\d+) ", err)
    if not lines:
        fail(f"no stats line for rpc[{ep}]:\n{err[-3000:]}")
    state, requests = lines[-1]
    return state, int(requests)


def check_chain(nodes, db):
    """Every stored block is the chain's: A's, or (above A's head) B's when B serves it too."""
    c = sqlite3.connect(db)
    rows = c.execute("SELECT number, hash FROM blocks ORDER BY number").fetchall()
    c.close()
    if len(rows) < 10:
        fail(f"only {len(rows)} blocks indexed")
    calls = [("eth_getBlockByNumber", [hex(n), False]) for n, _ in rows]
    answers = [node.rpc_batch(calls) for node in nodes]
    for i, (n, h) in enumerate(rows):
        want = next((a[i] for a in answers if a[i]), None)
        if not want or want["hash"] != h:
            fail(f"block {n}: stored {h}, the chain has {want and want['hash']}")


def scenario(tmp, b_chain_id):
    a = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", "1337", "--start-head", "20"])
    port = free_port()
    db = os.path.join(tmp, f"out{b_chain_id}.db")
    cmd = [BLOCKPIPE, "run", "--rpc", f'{{"url": "{a.urls[0]}", "priority": 1}}', "--rpc",
           f'{{"url": "http://127.0.0.1:{port}", "priority": 0}}', "--start-block", "0",
           "--poll-interval", "0.2", "--stats-interval", "0.3", "--output", f"sqlite:{db}"]
    bp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    b = None
    try:
        time.sleep(1.5)
        # ahead of A by 20 blocks: the freshest blocks are B's to give, once it is trusted
        b = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", str(b_chain_id), "--start-head", "48",
                                        "--listen", f"127.0.0.1:{port}"])
        time.sleep(3.0)
        bp.send_signal(signal.SIGINT)
        _, err = bp.communicate(timeout=30)
        if bp.returncode != 0:
            fail(f"blockpipe run exited {bp.returncode}:\n{err[-3000:]}")
        if "rpc[1]" not in err or "eth_chainId failed" not in err:
            fail(f"the start did not say rpc[1] is unchecked:\n{err[-3000:]}")
        check_chain([a, b] if b_chain_id == 1337 else [a], db)
        return last_stats(err, 1), err
    finally:
        if bp.poll() is None:
            bp.kill()
        a.kill()
        if b:
            b.kill()


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE is not set")
    with tempfile.TemporaryDirectory(prefix="bp-chaincheck-") as tmp:
        (state, requests), err = scenario(tmp, 999)
        if "serves chain id 999, not 1337" not in err:
            fail(f"no error naming the other chain:\n{err[-3000:]}")
        if state != "other-chain" or requests != 0:
            fail(f"rpc[1] serving chain 999: state={state} requests={requests}")
        print("other chain: never used")
        (state, requests), err = scenario(tmp, 1337)
        if "answers eth_chainId 1337 now: in use" not in err:
            fail(f"rpc[1] was not taken into use:\n{err[-3000:]}")
        if state == "unchecked" or requests == 0:
            fail(f"rpc[1] serving the chain: state={state} requests={requests}")
        print(f"same chain: in use, {requests} requests")


if __name__ == "__main__":
    main()
