"""/api/analytics and POST /api/predictions over a ClickHouse output, through a reorg.

anvil gets a workload (transfers, deployments, logging and reverting calls, token events) whose
blocks are spread over minutes, hours and days; `blockpipe run --ml on --confirmations 0 --api`
writes it into a private ClickHouse (the first output: the one the API reads) and a SQLite
file. Once both hold the head, and again after anvil reorgs the last 3 blocks (new
transactions in their place) and mines on:
- every window of /api/analytics?grain=1m|1h|1d (chain_metrics) and every contract window
  (top_contracts, asked window by window) equals tests/tools/metricscheck.py's recomputation
  from the node's own blocks and receipts, each window once (the rollups keep a row per version
  and a row of 0 blocks for a window a reorg emptied: the reader must show the newest, and
  not the empty ones);
- the answers equal the ClickHouse tables as a query sees them (FINAL), floats to the bit,
  newest first, ranges, top contracts in their order, bad parameters 400
  (test_api_analytics.check_analytics, as for SQLite and PostgreSQL);
- ml_predictions (FINAL) holds exactly one row per canonical transaction of every block from
  the first scored one on (none of the reverted blocks' transactions, all of the new
  branch's), each key's signs alternate (sum(_sign) = FINAL's row count), and POST
  /api/predictions answers each score as the table has it, the reverted transactions
  found=false;
- `blockpipe serve` over the SQLite file answers the same /api/analytics JSON as ClickHouse.
"""

import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from apiclient import Api, wait_http  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from metricscheck import (LAYOUT, Expected, Mismatch, TokenEmitter, compare,  # noqa: E402
                          read_clickhouse)
from test_api_analytics import check_analytics, post  # noqa: E402
from test_api_rest import fail, start_api, stop, wait_head  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "7171"))
HANG = 180  # seconds: only a guard against a hang
DB = "gtp"
STEPS = (7, 41, 65, 3, 3700, 20, 90000, 59, 61, 7300, 2)  # seconds between blocks
BIG = ("fees_paid_wei", "base_fee_per_gas", "median_gas_price")
GRAINS = ("1m", "1h", "1d")


def settled(api, node):
    """Every output's checkpoint is the node's head block (ClickHouse has no transactions: a
    read is whole once the checkpoint moved)."""
    head = node.block_number()
    want = node.block(head, False)["hash"]
    outs = api.ok("/api/sync-status")["outputs"]
    return len(outs) == 2 and all(o["checkpoint"] == head for o in outs) and \
        api.ok("/api/blocks/latest")["data"]["hash"] == want


def wait_settled(api, node, proc, label):
    wait_head(api, node.block_number(), proc, label)
    deadline = time.monotonic() + HANG
    while not settled(api, node):
        if time.monotonic() > deadline or proc.poll() is not None:
            fail(f"{label}: the outputs did not reach the node's head {node.block_number()}")
        time.sleep(0.2)


def api_value(col, v):
    return int(v) if col in BIG and v is not None else v


def api_tables(api):
    """The derived tables as /api/analytics answers them, keyed as metricscheck reads them."""
    got = {}
    for g in GRAINS:
        rows = api.ok(f"/api/analytics?grain={g}&limit=1000&top=0")["data"]["chain_metrics"]
        vals = LAYOUT[f"chain_metrics_{g}"][1]
        chain = {}
        for r in rows:
            if r["window_start"] in chain:
                fail(f"/api/analytics?grain={g}: window {r['window_start']} answered twice")
            chain[r["window_start"]] = {c: api_value(c, r[c]) for c in vals}
        got[f"chain_metrics_{g}"] = chain
        vals = LAYOUT[f"contract_metrics_{g}"][1]
        contracts = {}
        for w in chain:
            one = api.ok(f"/api/analytics?grain={g}&from={w}&to={w}&top=100")["data"]
            if [r["window_start"] for r in one["chain_metrics"]] != [w]:
                fail(f"/api/analytics?grain={g}&from={w}&to={w}: {one['chain_metrics']}")
            for r in one["top_contracts"]:
                k = (r["window_start"], r["contract_address"])
                if k in contracts or k[0] != w:
                    fail(f"/api/analytics?grain={g}&from={w}&to={w}: contract row {k} again or "
                         f"outside the window")
                contracts[k] = {c: api_value(c, r[c]) for c in vals}
        got[f"contract_metrics_{g}"] = contracts
    return got


def node_chain(node):
    head = node.block_number()
    return ([node.block(n, True) for n in range(head + 1)],
            [node.receipts(n) for n in range(head + 1)])


def check_vs_node(api, ch, node, chain, label):
    blocks, receipts = node_chain(node)
    exp = Expected(blocks, receipts, chain)
    only = [f"{k}_metrics_{g}" for k in ("chain", "contract") for g in GRAINS]
    try:
        counts = compare(exp, api_tables(api), only=only, label=f"{label}: /api/analytics ")
        compare(exp, read_clickhouse(ch, DB, chain), label=f"{label}: ClickHouse ")
    except Mismatch as e:
        fail(str(e))
    print(f"check: {label}: /api/analytics equals the recomputation from the node: "
          + " ".join(f"{t}={n}" for t, n in counts.items()), flush=True)
    return blocks


def check_ml(api, ch, blocks, chain, gone, label):
    """ml_predictions exact: every canonical tx from the first scored block on, once."""
    lit = chain.replace("'", "\\'")
    rows = ch.sql(f"SELECT block_number, transaction_index, concat('0x', "
                  f"lower(hex(transaction_hash))), fraud_score, model FROM {DB}.ml_predictions "
                  f"FINAL WHERE origin_key = '{lit}'")
    signs = ch.sql(f"SELECT sum(_sign) FROM {DB}.ml_predictions WHERE origin_key = '{lit}'")
    if int(signs[0][0] or 0) != len(rows):
        fail(f"{label}: ml_predictions sum(_sign) {signs[0][0]}, FINAL {len(rows)} rows")
    got = {(int(n), int(i)): (h, float(f)) for n, i, h, f, _ in rows}
    if len(got) != len(rows) or not got:
        fail(f"{label}: ml_predictions has {len(rows)} rows, {len(got)} keys")
    first = min(n for n, _ in got)
    want = {(int(b["number"], 16), int(t["transactionIndex"], 16)): t["hash"].lower()
            for b in blocks[first:] for t in b["transactions"]}
    if set(got) != set(want):
        extra, missing = sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5]
        fail(f"{label}: ml_predictions from block {first}: unexpected {extra}, missing {missing}")
    for k, (h, f) in got.items():
        if want[k] != h or not 0 <= f <= 1:
            fail(f"{label}: ml_predictions {k}: {h} {f}, the node has {want[k]}")
    ask = [h for h, _ in got.values()] + list(gone)
    # in requests of 100: every hash costs the API two ClickHouse queries (the transaction's
    # block, then its row), and with the warm-up scored too one request of them all took over
    # the client's 30 s on a loaded machine
    data = []
    for k in range(0, len(ask), 100):
        part = ask[k:k + 100]
        status, _, body = post(api, "/api/predictions", {"transaction_hashes": part},
                               token=False)
        if status != 200 or body["count"] != len(part):
            fail(f"{label}: POST /api/predictions: {status} {body}")
        data += body["data"]
    scores = {h: (k, f) for k, (h, f) in got.items()}
    for h, r in zip(ask, data):
        if h in scores:
            (n, i), f = scores[h]
            if not r["found"] or (r["block_number"], r["transaction_index"], r["fraud_score"]) \
                    != (n, i, f):
                fail(f"{label}: prediction of {h}: {r}, ClickHouse ({n}, {i}, {f})")
        elif r["found"] or r["fraud_score"] is not None:
            fail(f"{label}: the reverted transaction {h} still has a score: {r}")
    print(f"check: {label}: ml_predictions holds exactly the {len(got)} canonical transactions "
          f"from block {first} on; POST /api/predictions answers them"
          + (f", {len(gone)} reverted ones found=false" if gone else ""), flush=True)


def main():
    print(__doc__)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="bp-api-analytics-ch-")
    node, procs = Anvil(), []
    try:
        with ClickHouse() as ch:
            wl = Workload(node, seed=SEED)
            wl.setup()
            em = TokenEmitter(wl, rng)
            for _ in range(20):  # the model scores after BP_MODEL_WARMUP (256) transactions
                wl.mine_batch(15)
            for step in STEPS * 2:
                node.rpc("evm_increaseTime", [step])
                for _ in range(rng.randrange(1, 5)):
                    em.send() if rng.random() < 0.3 else wl.random_tx()
                node.mine()
                wl.collect_deploys()
            p, port = start_api(["run", "--rpc", node.url, "--start-block", "0", "--output",
                                 ch.url(DB), "--output", f"sqlite:{tmp}/bp.db", "--ml", "on",
                                 "--confirmations", "0", "--poll-interval", "0.2",
                                 "--api-rate-limit", "0"], os.path.join(tmp, "run.log"))
            procs.append(p)
            api = Api(port)
            wait_http(port, HANG, p)
            wait_settled(api, node, p, "clickhouse")
            chain = api.ok("/api/analytics?limit=1")["data"]["chain"]
            blocks = check_vs_node(api, ch, node, chain, "clickhouse")
            check_analytics(api, read_clickhouse(ch, DB, chain), "clickhouse")
            check_ml(api, ch, blocks, chain, (), "clickhouse")

            head = node.block_number()
            gone = [t["hash"].lower() for b in blocks[head - 2:] for t in b["transactions"]]
            pairs = [[{"from": rng.choice(wl.accounts), "to": rng.choice(wl.accounts),
                       "value": hex(10 ** 15)}, k] for k in range(3)]
            node.rpc("anvil_reorg", [3, pairs])
            wl.after_reorg()
            for step in (30, 61, 3601):
                node.rpc("evm_increaseTime", [step])
                wl.mine_batch(rng.randrange(1, 4))
            wait_settled(api, node, p, "clickhouse after the reorg")
            blocks = check_vs_node(api, ch, node, chain, "clickhouse after a reorg of depth 3")
            ch_answers = check_analytics(api, read_clickhouse(ch, DB, chain),
                                         "clickhouse after the reorg")
            empty = {g: int(ch.sql(f"SELECT count() FROM {DB}.chain_metrics_{g} FINAL WHERE "
                                   f"block_count = 0")[0][0]) for g in GRAINS}
            print(f"  windows the reorg emptied (rows of 0 blocks the API leaves out): {empty}")
            if not any(empty.values()):
                fail("the reorg emptied no window: the test shows nothing about empty windows")
            canonical = {t["hash"].lower() for b in blocks for t in b["transactions"]}
            gone = [h for h in gone if h not in canonical]
            if not gone:
                fail("the reorg left every transaction of the reverted blocks canonical")
            check_ml(api, ch, blocks, chain, gone, "clickhouse after the reorg")
            stop(p, "blockpipe run")

            sp, sport = start_api(["serve", "--output", f"sqlite:{tmp}/bp.db"],
                                  os.path.join(tmp, "serve.log"))
            procs.append(sp)
            wait_http(sport, HANG, sp)
            ref = Api(sport)
            for g in GRAINS:
                a = ref.ok(f"/api/analytics?grain={g}&limit=1000&top=100")["data"]
                if a != ch_answers[g]:
                    fail(f"/api/analytics?grain={g}: SQLite answers {a}\nClickHouse "
                         f"{ch_answers[g]}")
            stop(sp, "blockpipe serve")
            print("check: SQLite (blockpipe serve) answers the same /api/analytics JSON as "
                  "ClickHouse", flush=True)
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
    print(f"OK: /api/analytics and /api/predictions over ClickHouse equal the recomputation "
          f"through a reorg ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
