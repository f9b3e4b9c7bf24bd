"""Every endpoint of a pool must serve the chain: checked at start, and again whenever an
endpoint comes back.

1. At start two live endpoints serve different chain ids (simnodes 1337 and 999): blockpipe
   must refuse (exit 1) with one message naming both endpoints and both ids, and write no
   block.
2. rpc[0] is simnode A (chain id 1337, a block every 0.2 s); rpc[1] (preferred: priority 0)
   is a port nothing listens on when `blockpipe run` starts. Then simnode B comes up on that
   port, ahead of A (so blockpipe would ask it for the newest blocks):
   a. B serves chain id 999: blockpipe must say rpc[1] is never used, its stats line must
      read state=other-chain with requests=0, and the output must be A's chain.
   b. B serves A's chain (same seed and id): blockpipe must say rpc[1] is in use, rpc[1]
      must carry requests, and the output must be A's chain.
3. rpc[1] (preferred) is a switchable proxy (tests/tools/rpcgate.py) to A; it serves blocks,
   then goes down (connections closed unanswered) until blockpipe notices (a head poll of
   it fails, or it is ejected) and has no request to it in flight, then comes back:
   a. in front of simnode C (another seed, chain id 999): blockpipe must ask it eth_chainId
      again, say it is never used, and send it no block request at all from then on; the
      output must be A's chain.
   b. in front of A again: blockpipe must ask eth_chainId again before any block request,
      say so ("again after it was down"), and then use it again.
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
from rpcgate import RpcGate  # noqa: E402
from simnode import Simnode  # noqa: E402

BLOCKPIPE = os.environ.get("BLOCKPIPE")
HANG = 60
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
    # B's port, held until B binds it (SO_REUSEADDR, as simnode's listener): refused meanwhile,
    # and no other test's free port or outgoing connection can take it
    hold = socket.socket()
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hold.bind(("127.0.0.1", 0))
    port = hold.getsockname()[1]
    db = os.path.join(tmp, f"out{b_chain_id}.db")
    err_path = os.path.join(tmp, f"out{b_chain_id}.log")
    cmd = [BLOCKPIPE, "run", "--rpc", f'{{"url": "{a.urls[0]}", "priority": 1}}', "--rpc",
           f'{{"url": "http://127.0.0.1:{port}", "priority": 0}}', "--start-block", "0",
           "--poll-interval", "0.2", "--stats-interval", "0.3", "--output", f"sqlite:{db}"]
    errf = open(err_path, "w")
    bp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
    b = None

    def log():
        with open(err_path, errors="replace") as f:
            return f.read()
    try:
        wait_for(lambda: re.search(r"rpc\[1\].*eth_chainId failed", log()), HANG,
                 "the start check to find rpc[1] down", bp)
        # ahead of A by 20 blocks: the freshest blocks are B's to give, once it is trusted
        b = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", str(b_chain_id), "--start-head", "48",
                                        "--listen", f"127.0.0.1:{port}"])
        hold.close()
        if b_chain_id == 1337:
            said, stats = "answers eth_chainId 1337 now: in use", r"state=\S+ .*? requests=[1-9]"
        else:
            said, stats = "serves chain id 999, not 1337", r"state=other-chain "
        wait_for(lambda: said in log(), HANG, f"blockpipe to say {said!r}", bp)
        wait_for(lambda: re.search(rf"stats rpc\[1\] \S+ {stats}", log()[log().index(said):]),
                 HANG, f"a stats line of rpc[1] with {stats!r} after that", bp)
        wait_for(lambda: (count_blocks(db) or 0) >= 10, HANG, "10 blocks stored", bp)
        bp.send_signal(signal.SIGINT)
        bp.wait(30)
        errf.close()
        err = log()
        if bp.returncode != 0:
            fail(f"blockpipe run exited {bp.returncode}:\n{err[-3000:]}")
        if "rpc[1]" not in err or "eth_chainId failed" not in err:
            fail(f"the start did not say rpc[1] is unchecked:\n{err[-3000:]}")
        check_chain([a, b] if b_chain_id == 1337 else [a], db)
        return last_stats(err, 1), err
    finally:
        if bp.poll() is None:
            bp.kill()
            bp.wait()
        if not errf.closed:
            errf.close()
        hold.close()
        a.kill()
        if b:
            b.kill()


def start_mismatch(tmp):
    a = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", "1337", "--start-head", "20"])
    b = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", "999", "--start-head", "20"])
    db = os.path.join(tmp, "mismatch.db")
    try:
        p = subprocess.run([BLOCKPIPE, "run", "--rpc", a.urls[0], "--rpc", b.urls[0],
                            "--start-block", "0", "--output", f"sqlite:{db}"],
                           capture_output=True, text=True, timeout=60)
    finally:
        a.kill()
        b.kill()
    if p.returncode != 1:
        fail(f"endpoints of chains 1337 and 999: exit {p.returncode}, want 1:\n"
             f"{p.stderr[-3000:]}")
    lines = [ln for ln in p.stderr.splitlines()
             if a.urls[0] in ln and b.urls[0] in ln and "1337" in ln and "999" in ln]
    if not lines:
        fail(f"no error naming both endpoints and both chain ids:\n{p.stderr[-3000:]}")
    if os.path.exists(db):
        c = sqlite3.connect(db)
        try:
            n = c.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
        except sqlite3.OperationalError:
            n = 0
        c.close()
        if n:
            fail(f"{n} blocks written although the endpoints disagree on the chain")
    print(f"1. refused at start: {lines[0].split(' error ')[-1]}")


def wait_for(pred, timeout, what, bp):
    deadline = time.monotonic() + timeout
    while not pred():
        if bp.poll() is not None:
            fail(f"blockpipe exited {bp.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def ejected_and_back(tmp, other_chain):
    a = Simnode(BLOCKPIPE, CHAIN + ["--chain-id", "1337", "--start-head", "20"])
    c = Simnode(BLOCKPIPE, ["--seed", "77", "--txs-per-block", "3", "--block-time", "0.2",
                            "--chain-id", "999", "--start-head", "60"]) if other_chain else None
    gate = RpcGate(a.urls[0])
    db = os.path.join(tmp, f"back{other_chain}.db")
    err_path = os.path.join(tmp, f"back{other_chain}.log")
    cmd = [BLOCKPIPE, "run", "--rpc", f'{{"url": "{a.urls[0]}", "priority": 1}}', "--rpc",
           f'{{"url": "{gate.url}", "priority": 0}}', "--start-block", "0",
           "--poll-interval", "0.2", "--stats-interval", "0.3", "--output", f"sqlite:{db}"]
    errf = open(err_path, "w")
    bp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)

    def log():
        with open(err_path, errors="replace") as f:
            return f.read()
    try:
        wait_for(lambda: gate.blocks() >= 10, 60, "block requests through rpc[1]", bp)
        gate.down = True
        wait_for(lambda: "head poll of rpc[1] failed" in log() or
                 f"rpc {gate.url} ejected" in log(), 60, "blockpipe to notice rpc[1] is down", bp)
        # and no request sent before that still on its way (it could reach the node that
        # comes back: the swap would have happened during the request)
        noticed = len(log())
        wait_for(lambda: re.search(r"stats rpc\[1\] \S+ state=\S+ head=\S+ in_flight=0 ",
                                   log()[noticed:]), 60, "rpc[1] to have nothing in flight", bp)
        mark_log = len(log())
        mark = gate.switch(upstream=c.urls[0] if other_chain else a.urls[0], down=False)
        label = "3a. back on another chain" if other_chain else "3b. back on the chain"
        if other_chain:
            wait_for(lambda: "rpc[1]" in log()[mark_log:] and "serves chain id 999, not 1337"
                     in log()[mark_log:], 60, "rpc[1] to be found on chain 999", bp)
            top = max_block(db)
            wait_for(lambda: (max_block(db) or 0) >= (top or 0) + 10, 60,
                     "10 more blocks through rpc[0]", bp)
        else:
            wait_for(lambda: "again after it was down" in log()[mark_log:], 60,
                     "rpc[1] to name the chain again", bp)
            wait_for(lambda: any(n is not None for i, _, n in gate.log if i >= mark), 60,
                     "block requests through rpc[1] again", bp)
        bp.send_signal(signal.SIGINT)
        bp.wait(30)
        errf.close()
        err = log()
        if bp.returncode != 0:
            fail(f"{label}: blockpipe exited {bp.returncode}:\n{err[-3000:]}")
        after = sorted((i, m, n) for i, m, n in gate.log if i >= mark)
        asked = [k for k, (_, m, _) in enumerate(after) if m == "eth_chainId"]
        blocks = [k for k, (_, _, n) in enumerate(after) if n is not None]
        if not asked:
            fail(f"{label}: rpc[1] was not asked eth_chainId again: {after[:10]}")
        if other_chain and blocks:
            fail(f"{label}: rpc[1] got {len(blocks)} block requests after it came back on "
                 f"another chain: {[after[i] for i in blocks[:5]]}")
        if not other_chain and (not blocks or blocks[0] < asked[0]):
            fail(f"{label}: block requests before eth_chainId: {after[:10]}")
        check_chain([a], db)
        state, _ = last_stats(err, 1)
        if other_chain and state != "other-chain":
            fail(f"{label}: rpc[1] state={state}, want other-chain")
        print(f"{label}: asked eth_chainId again, then "
              + ("no block request; output = A's chain" if other_chain else
                 f"{len(blocks)} block requests; output = A's chain"))
    finally:
        if bp.poll() is None:
            bp.kill()
            bp.wait()
        if not errf.closed:
            errf.close()
        gate.close()
        a.kill()
        if c:
            c.kill()


def count_blocks(db):
    return blocks_query(db, "SELECT COUNT(*) FROM blocks")


def max_block(db):
    return blocks_query(db, "SELECT MAX(number) FROM blocks")


def blocks_query(db, sql):
    """The one value sql answers, or None while the database or its table is not there yet."""
    try:
        c = sqlite3.connect(db, timeout=10)
        try:
            return c.execute(sql).fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return None


def main():
    if not BLOCKPIPE:
        fail("BLOCKPIPE is not set")
    print(__doc__.strip())
    with tempfile.TemporaryDirectory(prefix="bp-chaincheck-") as tmp:
        start_mismatch(tmp)
        (state, requests), err = scenario(tmp, 999)
        if "serves chain id 999, not 1337" not in err:
            fail(f"no error naming the other chain:\n{err[-3000:]}")
        if state != "other-chain" or requests != 0:
            fail(f"rpc[1] serving chain 999: state={state} requests={requests}")
        print("2a. down at start, then another chain: never used")
        (state, requests), err = scenario(tmp, 1337)
        if "answers eth_chainId 1337 now: in use" not in err:
            fail(f"rpc[1] was not taken into use:\n{err[-3000:]}")
        if state == "unchecked" or requests == 0:
            fail(f"rpc[1] serving the chain: state={state} requests={requests}")
        print(f"2b. down at start, then the chain: in use, {requests} requests")
        ejected_and_back(tmp, True)
        ejected_and_back(tmp, False)


if __name__ == "__main__":
    main()
