"""The output contract (tests/contract/outputs_contract.c, test_outputs_contract.py) with Arch
rows: `outputs_contract --family arch` drives every output that stores Arch blocks
(bp_sink.families: SQLite, PostgreSQL, also through its staging tables, and ClickHouse) through
the same scenario - batches of APPLY, reorgs cut anywhere in APPLY/REVERT runs, a reorg back to
a branch reverted before, crashes at the backend's crash points, SIGKILLs at random times, each
followed by a reopen and a resume as the pipeline does it - with a chain of Arch blocks (failed
and rolled-back transactions, accounts a transaction lists twice), read back from arch_blocks,
arch_transactions and arch_account_updates after every step: the output must hold exactly the
canonical chain, its checkpoint and recent() the chain's top (Arch hashes: bare hex). A separate
test from the EVM one so that each stays well within its time limit. BP_SEED and
BP_CONTRACT_KILLS change the random parts.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clickhouse import ClickHouse  # noqa: E402
from pg import Postgres  # noqa: E402
from test_outputs_contract import CH_POINTS, KILLS, PG_POINTS, SEED, program  # noqa: E402

# (name, server or None, URL of a fresh output from (temp dir, server), crash points)
ARCH_BACKENDS = [
    ("sqlite", None, lambda d, s: f"sqlite:{d}/arch.db", ["sqlite.before_commit"]),
    ("postgres", Postgres, lambda d, s: s.url(query="schema=contract_arch"), PG_POINTS),
    ("postgres, staging tables", Postgres,
     lambda d, s: s.url(scheme="postgresql", query="schema=contract_arch_staging&mode=staging"),
     PG_POINTS),
    ("clickhouse", ClickHouse, lambda d, s: s.url("contract_arch"), CH_POINTS),
]


def main():
    print(__doc__.strip())
    prog = program()
    failed = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bp-contract-arch-"))
        servers = {}
        for i, (name, server, url_of, points) in enumerate(ARCH_BACKENDS):
            if server and server not in servers:
                servers[server] = stack.enter_context(server())
            d = os.path.join(tmp, str(i))
            os.mkdir(d)
            cmd = [prog, "--seed", SEED, "--kills", KILLS, "--family", "arch"]
            for point in points:
                cmd += ["--crash", point]
            cmd.append(url_of(d, servers.get(server)))
            t0 = time.monotonic()
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=600)
            out = (p.stdout + p.stderr).strip()
            status = "ok" if p.returncode == 0 else f"FAILED (exit {p.returncode})"
            print(f"--- {name}, Arch rows: {status} in {time.monotonic() - t0:.1f} s\n{out}\n",
                  flush=True)
            if p.returncode != 0 or "(Arch rows): ok" not in out:
                failed.append(name)
    if failed:
        print(f"FAIL: the output contract with Arch rows does not hold for: {', '.join(failed)}")
        return 1
    print(f"ok: {len(ARCH_BACKENDS)} outputs hold the output contract with Arch rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
