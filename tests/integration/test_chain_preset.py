"""--chain-preset: checked against eth_chainId at start, its defaults applied, overridable.

Against blockpipe's synthetic node (simnode, --chain-id as told):
1. `--chain-preset base` on a node answering 8453 backfills, and the stats/log line shows the
   preset's confirmations and reorg window were taken (no flag set them);
2. the same preset on a node answering 10 stops before any block with an error naming both
   ids, the preset and OP Mainnet (the chain 10 is) - nothing written;
3. `preset: polygon` in the config file with --confirmations 3 on the command line: the flag
   wins over the preset's 16;
4. an unknown name is refused naming it and listing the presets.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["BP_SOURCE_DIR"], "tests", "tools"))
from simnode import Simnode  # noqa: E402

BP = os.environ["BLOCKPIPE"]


def backfill(args, timeout=120):
    return subprocess.run([BP, "backfill", "--log-level", "debug"] + args, capture_output=True,
                          text=True, timeout=timeout)


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


def main():
    print(__doc__.strip().splitlines()[0])
    with tempfile.TemporaryDirectory(prefix="bp-preset-") as tmp:
        base = Simnode(BP, ["--chain-id", "8453", "--length", "40", "--txs-per-block", "1"])
        other = Simnode(BP, ["--chain-id", "10", "--length", "40", "--txs-per-block", "1"])
        poly = Simnode(BP, ["--chain-id", "137", "--length", "40", "--txs-per-block", "1"])
        try:
            db = os.path.join(tmp, "ok.db")
            p = backfill(["--rpc", base.urls[0], "--chain-preset", "base", "--from", "0",
                          "--to", "5", "--output", f"sqlite:{db}"])
            check(p.returncode == 0, f"base on 8453 exited {p.returncode}: {p.stderr[-2000:]}")
            n = sqlite3.connect(db).execute("SELECT count(*) FROM blocks").fetchone()[0]
            check(n == 6, f"base on 8453 stored {n} blocks, expected 6")
            check("reorg window 512" in p.stderr or "reorg_window=512" in p.stderr
                  or "window 512" in p.stderr,
                  f"the preset's reorg window 512 is not in the log:\n{p.stderr[-3000:]}")

            db2 = os.path.join(tmp, "wrong.db")
            p = backfill(["--rpc", other.urls[0], "--chain-preset", "base", "--from", "0",
                          "--to", "5", "--output", f"sqlite:{db2}"])
            check(p.returncode != 0, "base on a chain-10 node did not fail")
            for needle in ("--chain-preset base", "8453", "eth_chainId 10", "OP Mainnet"):
                check(needle in p.stderr, f"the error lacks {needle!r}:\n{p.stderr[-2000:]}")
            rows = 0
            if os.path.exists(db2):
                con = sqlite3.connect(db2)
                if con.execute("SELECT count(*) FROM sqlite_master WHERE name='blocks'"
                               ).fetchone()[0]:
                    rows = con.execute("SELECT count(*) FROM blocks").fetchone()[0]
            check(rows == 0, f"{rows} blocks written with the wrong chain")

            cfg = os.path.join(tmp, "cfg.yaml")
            with open(cfg, "w") as f:
                f.write(f"preset: polygon\nrpc: {poly.urls[0]}\n")
            p = backfill(["--config", cfg, "--confirmations", "3", "--from", "0", "--to", "5",
                          "--output", f"sqlite:{os.path.join(tmp, 'poly.db')}"])
            check(p.returncode == 0, f"preset from the file exited {p.returncode}: "
                                     f"{p.stderr[-2000:]}")
            check("confirmations 3" in p.stderr or "confirmations=3" in p.stderr,
                  f"--confirmations 3 did not win over the preset's 16:\n{p.stderr[-3000:]}")

            p = backfill(["--rpc", base.urls[0], "--chain-preset", "nochain", "--from", "0",
                          "--to", "1"])
            check(p.returncode == 2 and "nochain" in p.stderr and "arbitrum" in p.stderr,
                  f"an unknown preset: exit {p.returncode}, {p.stderr[-1000:]}")
        finally:
            for s in (base, other, poly):
                s.kill()
    print("OK")


if __name__ == "__main__":
    main()
