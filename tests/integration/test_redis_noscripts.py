"""A Redis output on a server that refuses scripts (ACL: the default user without @scripting).

The chain's writer lease is renewed by a compare-and-expire script (EVAL); on such a server
every batch's fence failed and the output never wrote. Now the lease just taken is renewed once
at once: refused, it is given back (the key deleted) and the leases are off, said once in a
warning naming EVAL; the backfill must then write blocks 0..20 of a simnode chain, each once,
its checkpoint at 20, and leave no lease key behind.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin  # noqa: E402
from redis import Redis  # noqa: E402
from simnode import Simnode  # noqa: E402
from streamcheck import redis_checkpoint  # noqa: E402

CHAIN = "5002"
LAST = 20


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    sim = Simnode(bp, ["--chain-id", CHAIN, "--length", str(LAST + 1), "--block-time", "0",
                       "--txs-per-block", "1-3"])
    try:
        with Redis() as r:
            r.call("ACL", "SETUSER", "default", "-@scripting")
            try:
                r.call("EVAL", "return 1", "0")
                raise Fail("the server still runs scripts: the test would prove nothing")
            except Exception as e:  # RedisError: NOPERM
                if "NOPERM" not in str(e):
                    raise
            p = subprocess.run([bp, "backfill", "--rpc", sim.urls[0], "--from", "0", "--to",
                                str(LAST), "--output", r.url(query="maxlen=0")],
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise Fail(f"backfill exited {p.returncode}:\n{p.stderr[-3000:]}")
            warned = [ln for ln in p.stderr.splitlines() if "refuses scripts" in ln]
            if len(warned) != 1 or "EVAL" not in warned[0]:
                raise Fail(f"want one warning that the server refuses scripts:\n"
                           f"{p.stderr[-3000:]}")
            cp = redis_checkpoint(r, CHAIN)
            entries = r.call("XRANGE", f"blockpipe:blocks:{CHAIN}", "-", "+")
            numbers = []
            for _, fields in entries:
                f = dict(zip(fields[0::2], fields[1::2]))
                if f.get("type") == "apply":
                    numbers.append(int(f["number"]))
            if numbers != list(range(LAST + 1)) or not cp or cp[0] != LAST:
                raise Fail(f"want blocks 0..{LAST} once each and checkpoint {LAST}; got "
                           f"{numbers} and {cp}")
            if r.call("KEYS", "blockpipe:lock:*"):
                raise Fail(f"a lease key was left: {r.call('KEYS', 'blockpipe:lock:*')}")
            print(f"ok: {warned[0][-200:]}\n    blocks 0..{LAST} once each, checkpoint {LAST}, "
                  f"no lease key")
    finally:
        sim.kill()


if __name__ == "__main__":
    main()
