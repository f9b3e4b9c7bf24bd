"""The API's analytics, predictions and keyed-stream endpoints over SQLite and PostgreSQL.

anvil gets a workload (transfers, deployments, logging and reverting calls) whose blocks are
spread over minutes, hours and days (evm_increaseTime). Two `blockpipe run --ml on --api`
follow it, one into SQLite (its keyed streams in the same file, the default store), one into
a private PostgreSQL (its keyed streams in a private Redis). Once both have the head:
- /api/analytics?grain=1m|1h|1d answers every row of chain_metrics_<grain> exactly as the
  database holds it (floats to the bit, 256-bit sums as decimal strings, the view's time
  column), newest first, a from/to range selects exactly the windows inside it, and
  top_contracts are the contract windows of those windows with the most transactions (the
  database's rows, in that order); both outputs answer the same JSON;
- POST /api/predictions gives every transaction's ml_predictions row (fraud_score equal to
  the database's), unknown hashes as found=false with fraud_score null, in the order asked;
- /api/v1/streaming: publish (POST, needs the token: 401 without it, 403 on a server that has
  none), latest, history?count=, pairs, each entry's value exactly as published; concurrent
  publications, reads and bad bodies (answered in rounds) each get their own answer;
- bad parameters and bodies are 4xx naming what is wrong.
"""

import concurrent.futures
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, unq, wait_until  # noqa: E402
from apiclient import SSE, Api, wait_http  # noqa: E402
from metricscheck import LAYOUT, read_pg, read_sqlite  # noqa: E402
from pg import Postgres  # noqa: E402
from redis import Redis  # noqa: E402
from test_api_rest import expect_status, fail, start_api, stop, wait_head  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "5151"))
HANG = 180  # seconds: only a guard against a hang
TOKEN = "s3cret-token"
STEPS = (7, 41, 65, 3, 3700, 20, 90000, 59, 61, 7300, 2)  # seconds between blocks


def post(api, path, body, token=True):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {TOKEN}"
    return api.request("POST", path, body=data, headers=h)


def expect_post(api, path, body, status, needle, token=True):
    got, _, ans = post(api, path, body, token)
    text = ans["error"] if isinstance(ans, dict) and "error" in ans else str(ans)
    if got != status or needle not in text:
        fail(f"POST {path} {body!r:.80}: want {status} mentioning {needle!r}, got {got} {ans}")


def db_value(col, v):
    """A database value as the API must show it."""
    if v is None:
        return None
    if col in ("fees_paid_wei", "base_fee_per_gas", "median_gas_price"):
        return str(v)
    return v


def same_row(label, table, api_row, db_rows):
    keys, vals = LAYOUT[table]
    k = tuple(api_row[c] for c in keys)
    want = db_rows.get(k[0] if len(k) == 1 else k)
    if want is None:
        fail(f"{label}: {table} row {k} of the API is not in the database")
    for c in vals:
        if api_row.get(c) != db_value(c, want[c]):
            fail(f"{label}: {table} {k} {c}: API {api_row.get(c)!r}, database {want[c]!r}")
    return k


def check_analytics(api, db, label):
    """Every window of every grain, a range, the top contracts, and the errors."""
    answers = {}
    for grain, length, tcol in (("1m", 60, "timestamp"), ("1h", 3600, "hour_ts"),
                                ("1d", 86400, "day_ts")):
        table = f"chain_metrics_{grain}"
        body = api.ok(f"/api/analytics?grain={grain}&limit=1000&top=100")["data"]
        rows = body["chain_metrics"]
        starts = [r["window_start"] for r in rows]
        if starts != sorted(db[table], reverse=True) or not starts:
            fail(f"{label}: {grain} windows {starts} of chain {body['chain']!r}, database "
                 f"{sorted(db[table], reverse=True)}")
        for r in rows:
            same_row(label, table, r, db[table])
            want = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["window_start"]))
            if r[tcol] != want or r["window_start"] % length:
                fail(f"{label}: {grain} window {r['window_start']}: {tcol} {r[tcol]!r}")
        # top contracts: the contract windows of those windows, most transactions first
        ctable = f"contract_metrics_{grain}"
        cdb = db[ctable]
        order = sorted(cdb, key=lambda k: (-cdb[k]["txcount"], -k[0], k[1]))
        got = [same_row(label, ctable, r, cdb) for r in body["top_contracts"]]
        if got != order[:100] or not got:
            fail(f"{label}: {grain} top contracts {got[:5]}..., want {order[:5]}...")
        # a range: the windows inside it, oldest first when asked
        if len(starts) >= 3:
            lo, hi = starts[-2], starts[1]
            ranged = api.ok(f"/api/analytics?grain={grain}&from={lo}&to={hi}&order=asc&top=3")
            rs = [r["window_start"] for r in ranged["data"]["chain_metrics"]]
            if rs != sorted(s for s in starts if lo <= s <= hi):
                fail(f"{label}: {grain} from={lo}&to={hi}: {rs}")
            inside = [k for k in order if lo <= k[0] <= hi][:3]
            tops = [(r["window_start"], r["contract_address"])
                    for r in ranged["data"]["top_contracts"]]
            if tops != inside:
                fail(f"{label}: {grain} range top 3 {tops}, want {inside}")
        answers[grain] = body
    limited = api.ok("/api/analytics?grain=1m&limit=2&top=0")["data"]
    if len(limited["chain_metrics"]) != 2 or limited["top_contracts"]:
        fail(f"{label}: limit=2&top=0: {limited}")
    for path, needle in (("/api/analytics?grain=5m", "grain"), ("/api/analytics?from=x", "from"),
                         ("/api/analytics?from=10&to=5", "from"),
                         ("/api/analytics?limit=0", "limit"), ("/api/analytics?top=101", "top"),
                         ("/api/analytics?bogus=1", "bogus")):
        expect_status(api, path, 400, needle)
    counts = ", ".join(f"{g}: {len(a['chain_metrics'])}" for g, a in answers.items())
    print(f"check: {label}: /api/analytics equals chain_metrics_1m/1h/1d and contract_metrics "
          f"({counts} windows)", flush=True)
    return answers


def check_predictions(api, db, hashes, label):
    scores = {h: (n, i, f) for n, i, h, f, _ in db["ml_predictions"]}
    if set(scores) != set(hashes):  # every one, the model's warm-up included
        fail(f"{label}: ml_predictions has {len(scores)} rows for {len(hashes)} transactions")
    unknown = "0x" + "ab" * 32
    ask = list(hashes) + [unknown, hashes[0].upper().replace("0X", "0x")]
    got, _, body = post(api, "/api/predictions", {"transaction_hashes": ask}, token=False)
    if got != 200 or body["count"] != len(ask):
        fail(f"{label}: POST /api/predictions: {got} {body}")
    for h, r in zip(ask, body["data"]):
        h = h.lower()
        if r["transaction_hash"] != h:
            fail(f"{label}: prediction for {h} answered as {r['transaction_hash']}")
        if h not in scores:  # unknown
            if r["found"] or r["fraud_score"] is not None or len(r) != 3:
                fail(f"{label}: a hash without a score: {r}")
            continue
        n, i, f = scores[h]
        if not r["found"] or (r["block_number"], r["transaction_index"], r["fraud_score"]) != (
                n, i, f) or not r["model"]:
            fail(f"{label}: prediction of {h}: {r}, database {(n, i, f)}")
    scored = next(iter(scores))
    bare = post(api, "/api/predictions", [scored], token=False)
    if bare[0] != 200 or bare[2]["data"][0]["fraud_score"] != scores[scored][2]:
        fail(f"{label}: a bare array body: {bare}")
    for body, needle in ((b"{not json", "not JSON"), ({"transaction_hashes": []}, "1 to 1000"),
                         ({"transaction_hashes": ["0x12"]}, "transaction_hashes[0]"),
                         ({"transaction_hashes": [7]}, "transaction_hashes[0]"),
                         ({"hashes": [hashes[0]]}, "transaction_hashes"),
                         ({"transaction_hashes": [unknown] * 1001}, "1 to 1000")):
        expect_post(api, "/api/predictions", body, 400, needle, token=False)
    expect_status(api, "/api/predictions", 405, "POST")
    print(f"check: {label}: POST /api/predictions gives the {len(scores)} scores of "
          f"ml_predictions exactly (every transaction), an unknown hash found=false; bad "
          f"bodies 400", flush=True)


def check_streams(api, label, rng):
    base = "/api/v1/streaming"
    key = f"pair:ETH/USDC:{label}"
    quoted = key.replace("/", "%2F")
    sent = []
    for n in range(12):
        v = {"n": n, "price": str(rng.randrange(10**30)), "big": 10**40 + n,
             "text": "héllo \"x\""}
        got, _, body = post(api, f"{base}/{quoted}", v)
        if got != 201 or json.loads(json.dumps(body["data"]["value"])) != v:
            fail(f"{label}: publish {n}: {got} {body}")
        sent.append((body["data"]["id"], v))
    post(api, f"{base}/other:{label}", [1, 2, 3])
    latest = api.ok(f"{base}/{quoted}/latest")["data"]
    if (latest["key"], latest["id"], latest["value"]) != (key, sent[-1][0], sent[-1][1]):
        fail(f"{label}: latest {latest}, want {sent[-1]}")
    hist = api.ok(f"{base}/{quoted}/history?count=5")
    if [(e["id"], e["value"]) for e in hist["data"]] != sent[::-1][:5] or hist["count"] != 5:
        fail(f"{label}: history?count=5 {hist}")
    every = api.ok(f"{base}/{quoted}/history?count=1000")["data"]
    if [e["id"] for e in every] != [i for i, _ in sent[::-1]]:
        fail(f"{label}: history?count=1000 has {len(every)} entries, want {len(sent)}")
    keys = api.ok(f"{base}/pairs")["data"]
    if key not in keys or f"other:{label}" not in keys or keys != sorted(keys):
        fail(f"{label}: pairs {keys}")
    if api.ok(f"{base}/pairs?prefix=other:")["data"] != [f"other:{label}"]:
        fail(f"{label}: pairs?prefix=other:")
    expect_status(api, f"{base}/nothing-here/latest", 404, "nothing-here")
    expect_status(api, f"{base}/{quoted}/history?count=0", 400, "count")
    expect_status(api, f"{base}/{quoted}/latest?x=1", 400, "x")
    expect_post(api, f"{base}/{quoted}", b"{bad json", 400, "not JSON")
    expect_post(api, f"{base}/{quoted}", {"a": 1}, 401, "token", token=False)
    expect_post(api, f"{base}/{quoted}/latest", {"a": 1}, 405, "GET")
    print(f"check: {label}: /api/v1/streaming publish, latest, history, pairs; 401, 404, 400",
          flush=True)
    return len(sent) + 1 + check_streams_concurrent(api, label)


def check_streams_concurrent(api, label, n=48):
    """Publications, latest reads and bad bodies at once from 16 connections (a worker
    answers the ones waiting together in one round): each its own answer - a publication its
    entry (stored once, as sent), a bad body its 400, a read 404 or one of the entries."""
    base, key = "/api/v1/streaming", f"conc:{label}"

    def one(i):
        if i % 3 == 2:
            return "read", i, api.get(f"{base}/{key}/latest")
        body = b"{bad" if i % 9 == 4 else {"i": i}
        return "publish", i, post(api, f"{base}/{key}", body)

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(n)))
    ids, reads = {}, []
    for what, i, (got, _, body) in results:
        if what == "read":
            if got != 404:
                reads.append((got, body))
        elif i % 9 == 4:
            if got != 400 or "JSON" not in body.get("error", ""):
                fail(f"{label}: concurrent bad body {i}: {got} {body}")
        elif got != 201 or body["data"]["value"] != {"i": i} or body["data"]["key"] != key:
            fail(f"{label}: concurrent publish {i}: {got} {body}")
        else:
            ids[body["data"]["id"]] = {"i": i}
    every = api.ok(f"{base}/{key}/history?count=1000")["data"]
    if sorted((e["id"], json.dumps(e["value"])) for e in every) != \
            sorted((k, json.dumps(v)) for k, v in ids.items()):
        fail(f"{label}: concurrent: history has {len(every)} entries, {len(ids)} were published")
    for got, body in reads:
        if got != 200 or ids.get(body["data"]["id"]) != body["data"]["value"]:
            fail(f"{label}: concurrent latest: {got} {body}")
    print(f"check: {label}: {n} concurrent streaming requests, {len(ids)} publications stored "
          f"once each, {len(reads)} reads of them", flush=True)
    return len(ids)


def check_minute_push(api, wl, node, proc, label):
    """An SSE client of the metrics topic gets each minute the next blocks rewrite, as
    chain_metrics_1m holds it once they are committed (the REST answer)."""
    sse = SSE(api.port, "/api/events?topics=metrics")
    minutes, last = set(), {}
    before = api.ok("/api/blocks/latest")["data"]["number"]  # kept until the next commit
    for step in (30, 30, 61, 5):
        node.rpc("evm_increaseTime", [step])
        wl.mine_batch(3)
        minutes.add(unq(node.block(node.block_number(), False)["timestamp"]) // 60 * 60)
    wait_head(api, node.block_number(), proc, label)
    # the commit is counted by the push hub just after sync-status moves: a short wait
    head = node.block_number()
    wait_until(lambda: api.ok("/api/blocks/latest")["data"]["number"] == head > before, HANG,
               f"{label}: /api/blocks/latest (was {before}) to be {head} after its commit")
    rest = {r["window_start"]: r for r in api.ok(
        "/api/analytics?grain=1m&limit=1000&top=0")["data"]["chain_metrics"]}
    deadline = time.monotonic() + HANG
    while any(last.get(m) != rest[m] for m in minutes):
        if time.monotonic() > deadline:
            fail(f"{label}: minute messages {last}, want the rows {[rest[m] for m in minutes]}")
        ev = sse.next_event(timeout=HANG)
        if ev is None:
            fail(f"{label}: the SSE stream closed")
        msg = ev["data"]
        if msg["type"] == "minute":
            last[msg["data"]["window_start"]] = msg["data"]
    sse.close()
    print(f"check: {label}: the metrics topic pushed the {len(minutes)} minutes the new blocks "
          f"rewrote, equal to /api/analytics", flush=True)


def main():
    print(__doc__)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="bp-api-analytics-")
    node, pg, redis, procs = Anvil(), Postgres(), Redis(), []
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(20):  # the model scores after BP_MODEL_WARMUP (256) transactions
            wl.mine_batch(15)
        for step in STEPS * 2:
            node.rpc("evm_increaseTime", [step])
            wl.mine_batch(rng.randrange(1, 6))
        head = node.block_number()
        hashes = [tx["hash"].lower() for n in range(head + 1)
                  for tx in node.block(n, True)["transactions"]]
        runs = []
        for label, out, store in (("sqlite", f"sqlite:{tmp}/bp.db", None),
                                  ("postgres", pg.url(), redis.url())):
            args = ["run", "--rpc", node.url, "--start-block", "0", "--output", out, "--ml", "on",
                    "--poll-interval", "0.2", "--api-rate-limit", "0", "--api-token", TOKEN]
            p, port = start_api(args + (["--stream-store", store] if store else []),
                                os.path.join(tmp, f"{label}.log"))
            procs.append(p)
            runs.append((label, Api(port), p))
        answers, published = {}, {}
        for label, api, p in runs:
            wait_http(api.port, HANG, p)
            wait_head(api, head, p, label)
            chain = api.ok("/api/analytics?limit=1")["data"]["chain"]
            db = read_sqlite(f"{tmp}/bp.db", chain) if label == "sqlite" else read_pg(pg, chain)
            answers[label] = check_analytics(api, db, label)
            check_predictions(api, db, hashes, label)
            published[label] = check_streams(api, label, rng)
        check_minute_push(runs[0][1], wl, node, runs[0][2], "sqlite")
        head = node.block_number()
        wait_head(runs[1][1], head, runs[1][2], "postgres")
        if answers["sqlite"] != answers["postgres"]:
            fail("SQLite and PostgreSQL answer different /api/analytics")
        print("check: SQLite and PostgreSQL answer the same /api/analytics", flush=True)
        with sqlite3.connect(f"{tmp}/bp.db") as db:
            n = db.execute("SELECT count(*) FROM keyed_entries").fetchone()[0]
        if n != published["sqlite"]:
            fail(f"the SQLite output's keyed_entries has {n} entries, want {published['sqlite']} "
                 "(the default store)")
        final = runs[0][1].ok("/api/analytics?grain=1h&limit=1000&top=100")["data"]
        for label, _, p in runs:
            stop(p, f"blockpipe run ({label})")
        # a server without a token refuses to publish
        sp, port = start_api(["serve", "--output", f"sqlite:{tmp}/bp.db"],
                             os.path.join(tmp, "serve.log"))
        procs.append(sp)
        wait_http(port, HANG, sp)
        api = Api(port)
        expect_post(api, "/api/v1/streaming/k", {"a": 1}, 403, "--api-token", token=False)
        if api.ok("/api/v1/streaming/pairs")["count"] != 3:  # check_streams's keys
            fail("serve: the keys of the SQLite file's streams")
        if api.ok("/api/analytics?grain=1h&limit=1000&top=100")["data"] != final:
            fail("serve: /api/analytics differs from the running pipeline's")
        stop(sp, "blockpipe serve")
        print("check: serve: 403 for a publish without --api-token; streams and analytics read",
              flush=True)
    except AssertionError as e:
        for name in ("sqlite.log", "postgres.log", "serve.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path, errors="replace").read()[-3000:])
        sys.exit(f"FAIL: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        pg.stop()
        redis.stop()
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"OK: analytics, predictions and keyed streams over SQLite and PostgreSQL "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
