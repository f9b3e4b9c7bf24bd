"""The Redis output's options through the command line and the environment.

Against a redis-server with requirepass and only a TLS port (a test CA; client certificates
optional), `blockpipe backfill` of a small anvil chain:
 - rediss:// with the password, --redis-tls-ca (the test CA), a client certificate: exit 0,
   the streams hold exactly the chain;
 - the same through REDIS_URL (and REDIS_TLS_CA) with no --output: exit 0;
 - a wrong password: exit 1, "AUTH refused", the password never shown;
 - another CA: exit 1, the certificate refused (verification, not a silent plain connection);
 - client certificates required (CONFIG SET tls-auth-clients yes): without one exit 1, with
   --redis-tls-cert/--redis-tls-key exit 0;
 - --stream-entities blocks,metrics with --metrics off: exit 2, "metrics is off"; with
   --fetch blocks (no receipts: no derived rows): exit 1, "needs the derived rows", nothing
   written;
 - --redis-maxlen 20 on a server with 4-entry stream nodes: after 60 blocks a stream holds
   20..24 entries (MAXLEN ~ trims whole nodes) and its last entry is the head.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from pgcheck import Fail, blockpipe_bin, node_chain  # noqa: E402
from redis import Redis, entries, make_test_ca  # noqa: E402
from streamcheck import RedisConsumer, redis_checkpoint  # noqa: E402

CHAIN = "31337"


def backfill(bp, node, head, *extra, env=None, url=None):
    cmd = [bp, "backfill", "--rpc", node.url, "--from", "0", "--to", str(head),
           "--wait-for-db", "0"]
    if url:
        cmd += ["--output", url]
    p = subprocess.run(cmd + list(extra), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120, env=env)
    return p.returncode, p.stdout + p.stderr


def expect(rc_out, rc, text, label, secret=None):
    got_rc, out = rc_out
    if got_rc != rc or text not in out:
        raise Fail(f"{label}: exit {got_rc} (want {rc}), output lacks {text!r}:\n{out[-2000:]}")
    if secret and secret in out:
        raise Fail(f"{label}: the password was shown:\n{out[-2000:]}")
    print(f"  {label}: exit {rc}, says {text!r}")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    with Anvil() as node, Redis(password="pw-s3cret", tls=True,
                                settings={"stream-node-max-entries": "4"}) as r, \
            tempfile.TemporaryDirectory(prefix="bp-redis-opt-") as tmp:
        wl = Workload(node, seed=3)
        wl.setup()
        for _ in range(60):
            wl.mine_batch(wl.rng.randrange(0, 3))
        head = node.block_number()
        chain = node_chain(node)
        tls = ["--redis-tls-ca", r.ca]
        base = f"rediss://:pw-s3cret@127.0.0.1:{r.port}/0"

        expect(backfill(bp, node, head, *tls, "--redis-tls-cert", r.client_cert,
                        "--redis-tls-key", r.client_key, "--stream-entities",
                        "blocks,transactions", url=base + "?maxlen=0"),
               0, "backfill done", "TLS, password, client certificate")
        c = RedisConsumer(r, CHAIN, entities=("blocks", "transactions"))
        c.poll()
        c.view.check(chain, "TLS backfill", ("blocks", "transactions"))

        env = dict(os.environ, REDIS_URL=f"rediss://:pw-s3cret@127.0.0.1:{r.port}/1",
                   REDIS_TLS_CA=r.ca)
        env.pop("OUTPUT", None)
        env.pop("DATABASE_URL", None)
        expect(backfill(bp, node, head, env=env), 0, "backfill done", "REDIS_URL")
        with r.connect() as conn:
            conn.call("SELECT", "1")
            if conn.call("XLEN", f"blockpipe:blocks:{CHAIN}") == 0:
                raise Fail("REDIS_URL: database 1 holds no stream")

        expect(backfill(bp, node, head, *tls, url=f"rediss://:wrong-pw@127.0.0.1:{r.port}/0"),
               1, "AUTH refused", "wrong password", secret="wrong-pw")
        other = make_test_ca(tmp)
        expect(backfill(bp, node, head, "--redis-tls-ca", other["ca"], url=base), 1,
               "certificate", "another CA")
        r.call("CONFIG", "SET", "tls-auth-clients", "yes")
        rc, out = backfill(bp, node, head, *tls, url=base + "?prefix=nocert:")
        if rc != 1:
            raise Fail(f"no client certificate where one is required: exit {rc}, want 1:\n"
                       f"{out[-2000:]}")
        print("  no client certificate where one is required: exit 1")
        expect(backfill(bp, node, head, *tls, "--redis-tls-cert", r.client_cert, "--redis-tls-key",
                        r.client_key, url=base + "?prefix=cert:"),
               0, "backfill done", "the client certificate where one is required")
        r.call("CONFIG", "SET", "tls-auth-clients", "optional")
        expect(backfill(bp, node, head, *tls, "--stream-entities", "blocks,metrics", "--metrics",
                        "off", url=base), 2, "metrics is off", "metrics with --metrics off")
        expect(backfill(bp, node, head, *tls, "--stream-entities", "blocks,metrics", "--fetch",
                        "blocks", url=base + "?prefix=nofetch:"), 1, "needs the derived rows",
               "metrics with --fetch blocks")
        if r.call("KEYS", "nofetch:*"):
            raise Fail(f"metrics with --fetch blocks wrote {r.call('KEYS', 'nofetch:*')}")

        expect(backfill(bp, node, head, *tls, "--redis-maxlen", "20", "--redis-prefix", "m:",
                        url=base), 0, "backfill done", "--redis-maxlen 20")
        n = r.call("XLEN", f"m:blocks:{CHAIN}")
        last = entries(r.call("XREVRANGE", f"m:blocks:{CHAIN}", "+", "-", "COUNT", "1"))
        if not 20 <= n <= 24 or int(last[0][1]["number"]) != head:
            raise Fail(f"--redis-maxlen 20: XLEN {n} (want 20..24), last entry "
                       f"{last[0][1]['number']} (want {head})")
        if redis_checkpoint(r, CHAIN, prefix="m:") != (head, chain[head]["hash"]):
            raise Fail("--redis-maxlen 20: the checkpoint is not the head")
        print(f"  --redis-maxlen 20: XLEN {n} after {head + 1} blocks, the last entry the head")
        print("OK: password, TLS (CA, client certificate), REDIS_URL, MAXLEN and the errors")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
