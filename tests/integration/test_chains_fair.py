"""A chain catching up does not starve a chain at its head (issue 13 part 1).

One `blockpipe run --config FILE` follows two simnode chains into one SQLite file, with
max_memory 128MiB for the process: `big` starts at block 0 of a chain of 10,000,000 blocks of
200 transactions that all exist at once (it is catching up for the whole test, filling the
memory it may use and writing 100-block batches), `head` is a chain that grows by a small
block every 0.5 s. While `big` is still far behind its node, `head` must commit its node's
new blocks as they come: its checkpoint is seen within 2 blocks of its node's head at 10
different heights (every sample also checks that `big` is still catching up and that `big`
made progress, so both chains run at once). No duration is asserted: the deadline is only a
hang guard. Then SIGINT: exit 0, and `head`'s rows equal its node's (tests/tools/rowcheck.py).
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from simnode import Simnode  # noqa: E402

HEIGHTS = 10
DEADLINE = 300  # a hang guard only


def cps(db):
    """{chain: checkpoint number} (the checkpoints table only: the others grow large)."""
    if not os.path.exists(db):
        return {}
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(c.execute("SELECT chain, number FROM checkpoints").fetchall())
    except sqlite3.OperationalError:
        return {}  # the tables are not made yet
    finally:
        c.close()


def head(node):
    return int(node.rpc_batch([("eth_blockNumber", [])])[0], 16)


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    big = Simnode(bp, ["--chain-id", "501", "--block-time", "0", "--length", "10000000",
                       "--txs-per-block", "200", "--seed", "3"])
    small = Simnode(bp, ["--chain-id", "502", "--block-time", "0.5", "--txs-per-block", "0-5",
                         "--seed", "4"])
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="bp-chains-fair-")
    db = os.path.join(tmp.name, "fair.db")
    err_path = os.path.join(tmp.name, "stderr.txt")
    try:
        cfg = {"output": f"sqlite:{db}", "max_memory": "128MiB", "poll_interval": 0.2,
               "stats_interval": 2, "confirmations": 0, "start_block": 0,
               "chains": [{"name": "big", "chain_id": 501, "rpc": big.urls[0]},
                          {"name": "head", "chain_id": 502, "rpc": small.urls[0]}]}
        path = os.path.join(tmp.name, "fair.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        with open(err_path, "w") as err:
            proc = subprocess.Popen([bp, "run", "--config", path], stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=err)
            seen, big_first = set(), [None]

            def fair():
                if proc.poll() is not None:
                    raise Fail(f"blockpipe exited {proc.returncode}:\n{tail(err_path)}")
                node_head = head(small)  # before the checkpoint: never ahead of it
                c = cps(db)
                if "big" not in c or "head" not in c:
                    return False
                if c["big"] > 9_000_000:
                    raise Fail(f"big is no longer catching up ({c['big']}): the test is void")
                big_first[0] = c["big"] if big_first[0] is None else big_first[0]
                if c["head"] >= node_head - 2:
                    seen.add(c["head"])
                return len(seen) >= HEIGHTS and c["big"] > big_first[0]
            try:
                wait_for(fair, DEADLINE, f"head's checkpoint at its node's head at {HEIGHTS} "
                         f"heights while big catches up", 0.1)
            except Fail as e:
                raise Fail(f"{e}: seen at {sorted(seen)}, checkpoints {cps(db)}\n"
                           f"{tail(err_path)}") from None
            c = cps(db)
            print(f"head kept up at heights {sorted(seen)} while big was at {c['big']} "
                  f"(from {big_first[0]}) of {head(big)}")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=120)
            proc = None
            if rc != 0:
                raise Fail(f"exit {rc} after SIGINT:\n{tail(err_path)}")
        last = cps(db)["head"]
        rows = rowcheck.sqlite_rows(db)
        mine = {t: [r for r in rows[t] if r["chain"] == "head"]
                for t in ("blocks", "transactions", "logs")}
        counts = rowcheck._compare_all("sqlite chain head", mine,
                                       rowcheck.fetch(small.urls[0], range(last + 1)),
                                       rowcheck.sqlite_value, "head")
        print(f"head's rows equal its node: {counts}\nOK")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        big.kill()
        small.kill()


if __name__ == "__main__":
    main()
