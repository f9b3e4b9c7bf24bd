"""The API's REST endpoints over a ClickHouse output, through a reorg.

anvil gets a workload of every transaction type; `blockpipe run --api` writes it into a private
ClickHouse (read back by the API: the first output that can be read) and a SQLite file. Once
it has the head, the ClickHouse-backed API must answer exactly what the node says
(/api/blocks all and paged, by number, hash and latest; /api/transactions by block and
address, paged; /api/logs by address+topic0 and paged; bad parameters 400). Then anvil
reorgs the last 3 blocks and mines more: the reverted blocks' rows are still in ClickHouse as
+1/-1 pairs, and the API (FINAL) must show only the new canonical chain. Last, every block
and every transaction with its logs answered from ClickHouse must be the same JSON as
`blockpipe serve` answers from the SQLite file (every column, 256-bit values as decimal
strings).
"""

import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from apiclient import Api, wait_http  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from test_api_rest import (check_blocks, check_errors, check_logs,  # noqa: E402
                           check_transactions, fail, node_chain, start_api, stop,
                           wait_head)

SEED = int(os.environ.get("BP_SEED", "6161"))
HANG = 180


def check_all(api, node, label):
    head = node.block_number()
    chain = node_chain(node, head)
    check_blocks(api, chain, label)
    check_transactions(api, chain, label)
    check_logs(api, chain, label)
    return head, chain


def settled(api, head, want):
    """Every output's checkpoint is the head (ClickHouse has no transactions: while a batch is
    written a reader may see its new rows before its reverts' -1 rows), and the latest block
    answered is the node's head block (a reorg keeps the number)."""
    outs = api.ok("/api/sync-status")["outputs"]
    return outs and all(o["checkpoint"] == head for o in outs) and \
        api.ok("/api/blocks/latest")["data"]["hash"] == want


def wait_hash(api, node, proc, label):
    head = node.block_number()
    want = node.block(head, False)["hash"]
    wait_head(api, head, proc, label)
    deadline = time.monotonic() + HANG
    while not settled(api, head, want):
        if time.monotonic() > deadline or proc.poll() is not None:
            fail(f"{label}: /api/blocks/latest is not the node's head {head} {want}")
        time.sleep(0.2)


def same_as_sqlite(api, ref, chain):
    """Every block and transaction (with its logs) as the same JSON from both outputs."""
    for path in ("/api/blocks?limit=1000", "/api/logs?limit=1000&order=asc"):
        a, b = api.ok(path), ref.ok(path)
        if a != b:
            fail(f"ClickHouse and SQLite answer {path} differently:\n{a}\n{b}")
    ntx = 0
    for b, _ in chain:
        for t in b["transactions"]:
            a, r = api.ok(f"/api/transactions/{t['hash']}"), ref.ok(f"/api/transactions/{t['hash']}")
            if a != r:
                fail(f"transaction {t['hash']}: ClickHouse {a} != SQLite {r}")
            ntx += 1
    return ntx


def main():
    print(__doc__)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="bp-api-ch-")
    procs = []
    node = Anvil()
    try:
        with ClickHouse() as ch:
            wl = Workload(node, seed=SEED)
            wl.setup()
            for _ in range(12):
                wl.mine_batch(rng.randrange(1, 6))
            wl.big_transfer()
            node.mine()
            p, port = start_api(["run", "--rpc", node.url, "--start-block", "0", "--output",
                                 ch.url(), "--output", f"sqlite:{tmp}/bp.db", "--poll-interval",
                                 "0.2", "--api-rate-limit", "0"], os.path.join(tmp, "run.log"))
            procs.append(p)
            api = Api(port)
            wait_http(port, HANG, p)
            wait_hash(api, node, p, "clickhouse")
            head, _ = check_all(api, node, "clickhouse")
            check_errors(api, "clickhouse")
            reverted = [node.block(n, False)["hash"] for n in range(head - 2, head + 1)]
            node.rpc("anvil_reorg", [3, []])
            wl.after_reorg()
            for _ in range(3):
                wl.mine_batch(rng.randrange(1, 4))
            wait_hash(api, node, p, "clickhouse after the reorg")
            head, chain = check_all(api, node, "clickhouse after the reorg")
            for h in reverted:
                st, _, body = api.get(f"/api/blocks/{h}")
                if st != 404:
                    fail(f"the reverted block {h} is still answered: {st} {body}")
            raw = ch.post("SELECT count() FROM blocks WHERE _sign = -1", db="bp").decode().strip()
            if int(raw) < 3:
                fail(f"ClickHouse holds {raw} -1 rows of blocks: the reorg did not reach it")
            print(f"check: after a reorg of depth 3 ({raw} -1 block rows in ClickHouse) the "
                  f"API shows only the canonical chain up to {head}", flush=True)
            sp, sport = start_api(["serve", "--output", f"sqlite:{tmp}/bp.db"],
                                  os.path.join(tmp, "serve.log"))
            procs.append(sp)
            wait_http(sport, HANG, sp)
            ntx = same_as_sqlite(api, Api(sport), chain)
            print(f"check: {head + 1} blocks, {ntx} transactions with logs: the same JSON from "
                  f"ClickHouse as from SQLite", flush=True)
            stop(sp, "blockpipe serve")
            stop(p, "blockpipe run")
    except AssertionError as e:
        for name in ("run.log", "serve.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path, errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"OK: REST over ClickHouse equals the node through a reorg, and SQLite "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
