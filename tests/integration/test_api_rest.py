"""The API's REST endpoints over SQLite and PostgreSQL, checked against the node.

anvil gets a workload of every transaction type (transfers with 256-bit values, contract
deployments, logging and reverting calls). Two `blockpipe run --api` follow it, one into
SQLite, one into a private PostgreSQL. Once both have the node's head, each API must answer
exactly what the node says:
- /api/blocks (all, and page by page through next_cursor, newest first and ?order=asc, a
  ?from/?to range), /api/blocks/{number|hash|latest};
- /api/transactions?block=N (every block, in index order), ?address=A (sender or receiver,
  paged), /api/transactions/{hash} with its receipt fields and logs, 256-bit values as exact
  decimal strings;
- /api/transactions?from_block=&to_block=, /api/logs?from=&to= (exactly the range, paged);
- /api/logs?address=&topic0= and ?transaction=;
- bad parameters are 400 naming the parameter (invalid UTF-8 included), unknown things 404,
  writes to read endpoints 405;
- /metrics passes `promtool check metrics` and has every metric docs/API.md documents;
  /health, /ready and the status endpoints say the
  chain is caught up.
Then `blockpipe serve` over the SQLite file answers the same without indexing (and
/api/arch/blocks an empty list: an EVM chain's file has no Arch tables), and stops on SIGINT
with exit 0.
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, unq, wait_until  # noqa: E402
from apiclient import API_ANY, Api, api_port, start_blockpipe as start, wait_http  # noqa: E402
from pg import Postgres  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "4242"))
HANG = 180  # seconds: only a guard against a hang


def fail(msg):
    raise AssertionError(msg)


def start_api(args, log_path):
    """start() of args with --api API_ANY: (the process, the port its API listens on)."""
    p = start(args + ["--api", API_ANY], log_path)
    try:
        return p, api_port(log_path, HANG, p)
    except BaseException:
        p.kill()
        p.wait()
        raise


def stop(proc, what):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail(f"{what} did not stop within 30 s of SIGINT")
    if rc != 0:
        fail(f"{what} exited with {rc} after SIGINT")


def node_chain(node, head):
    """Per block: the node's block (full txs) and receipts."""
    return [(node.block(n, True), node.receipts(n)) for n in range(head + 1)]


def expect_status(api, path, status, needle):
    got, _, body = api.get(path)
    text = body["error"] if isinstance(body, dict) and "error" in body else str(body)
    if got != status or needle not in text:
        fail(f"GET {path}: want {status} mentioning {needle!r}, got {got} {body}")


def page_all(api, path, limit):
    """Every row of a list endpoint, following next_cursor."""
    rows, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = api.ok(url)
        rows += body["data"]
        pages += 1
        if body["count"] != len(body["data"]):
            fail(f"{url}: count {body['count']} but {len(body['data'])} rows")
        cursor = body["next_cursor"]
        if not cursor:
            return rows, pages
        if pages > 10000:
            fail(f"{path}: paging does not end")


def check_blocks(api, chain, label):
    head = len(chain) - 1
    rows = api.ok("/api/blocks?limit=1000&order=asc")["data"]
    if [r["number"] for r in rows] != list(range(head + 1)):
        fail(f"{label}: /api/blocks?order=asc numbers {[r['number'] for r in rows]}")
    for r, (b, _) in zip(rows, chain):
        want = {"hash": b["hash"], "parent_hash": b["parentHash"],
                "gas_used": unq(b["gasUsed"]), "timestamp": unq(b["timestamp"]),
                "transaction_count": len(b["transactions"]),
                "base_fee_per_gas": str(unq(b["baseFeePerGas"]))}
        got = {k: r[k] for k in want}
        if got != want:
            fail(f"{label}: block {r['number']}: {got} != node {want}")
    paged, pages = page_all(api, "/api/blocks", 3)
    if [r["number"] for r in paged] != list(range(head, -1, -1)):
        fail(f"{label}: paging /api/blocks by 3 gave {[r['number'] for r in paged]}")
    n = random.Random(SEED).randrange(head + 1)
    by_num = api.ok(f"/api/blocks/{n}")["data"]
    by_hash = api.ok(f"/api/blocks/{chain[n][0]['hash']}")["data"]
    by_upper = api.ok(f"/api/blocks/{chain[n][0]['hash'].upper().replace('0X', '0x')}")["data"]
    if not (by_num == by_hash == by_upper and by_num["hash"] == chain[n][0]["hash"]):
        fail(f"{label}: /api/blocks/{n} and by hash differ: {by_num} {by_hash}")
    if api.ok("/api/blocks/latest")["data"]["number"] != head:
        fail(f"{label}: /api/blocks/latest is not {head}")
    lo, hi = block_range(head)
    for q in (f"from={lo}&to={hi}", f"from_block={lo}&to_block={hi}"):
        got = [r["number"] for r in page_all(api, f"/api/blocks?{q}", 2)[0]]
        if got != list(range(hi, lo - 1, -1)):
            fail(f"{label}: /api/blocks?{q} paged by 2: {got}")
    print(f"check: {label}: blocks 0..{head} equal the node's (all at once, and in {pages} "
          f"pages of 3 through next_cursor), by number, hash and latest; ?from={lo}&to={hi} "
          f"(and from_block/to_block) exactly that range, paged", flush=True)


def block_range(head):
    """A block range inside the chain for the ?from/?to checks (inclusive)."""
    return head // 3, max(head // 3, 2 * head // 3)


def check_transactions(api, chain, label):
    ntx, addr_txs = 0, {}
    for b, receipts in chain:
        n = unq(b["number"])
        want = [t["hash"] for t in b["transactions"]]
        got = [t["hash"] for t in api.ok(f"/api/transactions?block={n}&order=asc")["data"]]
        if got != want:
            fail(f"{label}: /api/transactions?block={n}: {got} != node {want}")
        ntx += len(want)
        for t in b["transactions"]:
            for a in (t["from"], t.get("to")):
                if a:
                    addr_txs.setdefault(a.lower(), set()).add(t["hash"])
    # one address: as sender or receiver, paged by 2, newest first
    addr = max(addr_txs, key=lambda a: len(addr_txs[a]))
    rows, pages = page_all(api, f"/api/transactions?address={addr}", 2)
    if {r["hash"] for r in rows} != addr_txs[addr] or len(rows) != len(addr_txs[addr]):
        fail(f"{label}: ?address={addr}: {len(rows)} rows, node has {len(addr_txs[addr])}")
    keys = [(r["block_number"], r["transaction_index"]) for r in rows]
    if keys != sorted(keys, reverse=True):
        fail(f"{label}: ?address= rows are not newest first: {keys}")
    lo, hi = block_range(len(chain) - 1)
    want = [t["hash"] for b, _ in chain[lo:hi + 1] for t in b["transactions"]]
    got = [r["hash"] for r in page_all(
        api, f"/api/transactions?from_block={lo}&to_block={hi}&order=asc", 3)[0]]
    if got != want:
        fail(f"{label}: /api/transactions?from_block={lo}&to_block={hi}: {got} != node {want}")
    # every transaction in detail: exact value and receipt, its logs
    big = 0
    for b, receipts in chain:
        for t, rc in zip(b["transactions"], receipts):
            d = api.ok(f"/api/transactions/{t['hash']}")["data"]
            want = {"hash": t["hash"], "value": str(unq(t["value"])),
                    "from_address": t["from"].lower(), "nonce": unq(t["nonce"]),
                    "receipt_gas_used": unq(rc["gasUsed"]), "receipt_status": unq(rc["status"])}
            got = {k: d[k] for k in want}
            if got != want:
                fail(f"{label}: /api/transactions/{t['hash']}: {got} != node {want}")
            if not isinstance(d["value"], str):
                fail(f"{label}: value is not a decimal string: {d['value']!r}")
            big += unq(t["value"]) >= 2 ** 64
            wl = [(unq(lg["logIndex"]), lg["address"].lower(), lg["data"]) for lg in rc["logs"]]
            gl = [(lg["log_index"], lg["address"], lg["data"]) for lg in d["logs"]]
            if gl != wl:
                fail(f"{label}: logs of {t['hash']}: {gl} != node {wl}")
    if big == 0:
        fail(f"{label}: the workload made no value above 2^64 (want one to check exactness)")
    print(f"check: {label}: {ntx} transactions by block and in detail (receipt fields, logs, "
          f"{big} values above 2^64 exact); ?address={addr[:10]}…: {len(rows)} in {pages} "
          f"pages", flush=True)


def check_logs(api, chain, label):
    logs = [lg for _, receipts in chain for rc in receipts for lg in rc["logs"]]
    by = {}
    for lg in logs:
        if lg["topics"]:
            by.setdefault((lg["address"].lower(), lg["topics"][0]), []).append(lg)
    if not by:
        fail(f"{label}: the workload made no log with a topic")
    (addr, t0), want = max(by.items(), key=lambda kv: len(kv[1]))
    rows, _ = page_all(api, f"/api/logs?address={addr}&topic0={t0}&order=asc", 2)
    got = [(r["block_number"], r["log_index"], r["transaction_hash"]) for r in rows]
    exp = [(unq(lg["blockNumber"]), unq(lg["logIndex"]), lg["transactionHash"]) for lg in want]
    if got != exp:
        fail(f"{label}: /api/logs?address&topic0: {got} != node {exp}")
    every, _ = page_all(api, "/api/logs", 7)
    if len(every) != len(logs):
        fail(f"{label}: /api/logs paged: {len(every)} rows, node has {len(logs)}")
    lo, hi = block_range(len(chain) - 1)
    exp = [(unq(lg["blockNumber"]), unq(lg["logIndex"])) for lg in logs
           if lo <= unq(lg["blockNumber"]) <= hi]
    got = [(r["block_number"], r["log_index"])
           for r in page_all(api, f"/api/logs?from={lo}&to={hi}&order=asc", 3)[0]]
    if got != exp:
        fail(f"{label}: /api/logs?from={lo}&to={hi}: {got} != node {exp}")
    print(f"check: {label}: logs by address+topic0 ({len(rows)}), all {len(logs)} paged, and "
          f"the {len(exp)} of blocks {lo}..{hi} (?from&to)", flush=True)


def check_errors(api, label):
    h = "0x" + "ab" * 32
    for path, status, needle in [
            ("/api/blocks?limit=0", 400, "limit: '0'"),
            ("/api/blocks?limit=abc", 400, "limit: 'abc'"),
            ("/api/blocks?limit=1001", 400, "from 1 to 1000"),
            ("/api/blocks?from=-1", 400, "from: '-1'"),
            ("/api/blocks?colour=red", 400, "unknown parameter 'colour'"),
            ("/api/blocks?cursor=zzz", 400, "cursor: 'zzz'"),
            ("/api/transactions?cursor=12", 400, "cursor: '12'"),
            ("/api/transactions?address=0x12", 400, "address: '0x12'"),
            ("/api/transactions?address=%ff%fe", 400, "address: '\\xff\\xfe'"),
            ("/api/transactions?source=mempool", 400, "source: 'mempool'"),
            ("/api/logs?topic0=0xzz", 400, "topic0"),
            ("/api/blocks/xyz", 400, "block: 'xyz'"),
            ("/api/transactions/0x12", 400, "transaction: '0x12'"),
            ("/api/blocks/99999999", 404, "not found"),
            (f"/api/transactions/{h}", 404, "not found"),
            ("/nope", 404, "no such endpoint"),
    ]:
        expect_status(api, path, status, needle)
    got, hdrs, body = api.request("POST", "/api/blocks", body=b"{}")
    if got != 405 or "GET" not in hdrs.get("allow", ""):
        fail(f"{label}: POST /api/blocks: want 405 with Allow: GET, got {got} {hdrs} {body}")
    ok = api.ok("/api/transactions?source=all&limit=1")
    if ok["count"] != 1:
        fail(f"{label}: ?source=all must be accepted: {ok}")
    print(f"check: {label}: 16 bad requests are 400/404 naming the parameter, POST is 405",
          flush=True)


def documented_metrics():
    """The metric families of docs/API.md's /metrics table (`_x_total` after a name is that
    name's prefix with the suffix: `blockpipe_rpc_requests_total`, `_errors_total`)."""
    doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                            "API.md")).read()
    table = doc[doc.index("## Prometheus"):doc.index("## Push")]
    names = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        base = None
        for tok in re.findall(r"`([^`]+)`", line.split("|")[1]):
            tok = tok.split("{")[0].strip()
            if tok.startswith("blockpipe_"):
                names.add(tok)
                base = tok
            elif tok.startswith("_") and base:
                names.add(base[:base.rindex("_requests_total")] + tok)
    if len(names) < 40:
        fail(f"docs/API.md: only {len(names)} metrics found in its table: {sorted(names)}")
    return names


def check_status(api, head, label, tmp):
    for path in ("/health", "/ready"):
        api.ok(path)
    sync = api.ok("/api/sync-status")
    c = sync["chains"][0]
    if (c["head"] != head or c["indexed"] != head or c["committed"] != head or c["lag"] != 0
            or not c["ready"]):
        fail(f"{label}: /api/sync-status: {c}")
    if not sync["outputs"] or sync["outputs"][0]["checkpoint"] != head:
        fail(f"{label}: /api/sync-status outputs: {sync['outputs']}")
    st = api.ok("/api/streaming/stats")
    if st["blocks_total"] < 1 or "uptime_s" not in st:
        fail(f"{label}: /api/streaming/stats: {st}")
    rt = api.ok("/api/realtime/status")
    if not rt["last_block"] or rt["last_block"]["number"] != head:
        fail(f"{label}: /api/realtime/status last_block: {rt['last_block']}")
    ev = api.ok("/api/realtime/events")
    if ev["counts"]["new_block"] < 1 or not ev["events"]:
        fail(f"{label}: /api/realtime/events: {ev}")
    api.ok("/api/websocket/stats")
    status, hdrs, text = api.get("/metrics")
    if status != 200 or not hdrs["content-type"].startswith("text/plain"):
        fail(f"{label}: /metrics: {status} {hdrs}")
    for name in ("blockpipe_head_block", "blockpipe_indexed_block", "blockpipe_lag_blocks",
                 "blockpipe_blocks_total", "blockpipe_rpc_requests_total",
                 "blockpipe_rpc_request_duration_seconds_bucket",
                 "blockpipe_head_to_commit_seconds_bucket", "blockpipe_output_checkpoint_block",
                 "blockpipe_output_write_seconds_bucket", "blockpipe_api_requests_total",
                 "blockpipe_reorg_depth_blocks_bucket"):
        if f"\n{name}" not in text:
            fail(f"{label}: /metrics has no {name}")
    typed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    missing = sorted(documented_metrics() - typed)
    if missing:
        fail(f"{label}: /metrics lacks metrics docs/API.md documents: {missing}")
    if f'blockpipe_indexed_block{{chain="31337"}} {head}\n' not in text:
        fail(f"{label}: /metrics does not say indexed block {head}")
    promtool = shutil.which("promtool")
    if not promtool:
        fail("promtool not found (Debian package prometheus; scripts/install-deps.sh --test)")
    path = os.path.join(tmp, f"{label}.metrics")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([promtool, "check", "metrics"], stdin=open(path), capture_output=True,
                       text=True)
    if r.returncode != 0:
        fail(f"{label}: promtool check metrics: {r.stdout}{r.stderr}")
    print(f"check: {label}: /health, /ready, status endpoints at head {head}; /metrics "
          f"({len(text.splitlines())} lines, every metric docs/API.md documents) passes "
          f"promtool check metrics", flush=True)


def check_api(api, node, chain, label, tmp):
    check_blocks(api, chain, label)
    check_transactions(api, chain, label)
    check_logs(api, chain, label)
    check_errors(api, label)
    check_status(api, len(chain) - 1, label, tmp)


def wait_head(api, head, proc, label):
    """Until every output holds the head. The chain's `indexed` is not enough: it moves when
    the coordinator puts the block in a batch, before the writer thread has committed it, so
    a database read right after it can miss the last batch (a backfill of the whole chain in
    one batch then finds the tables empty)."""
    def at_head():
        if proc.poll() is not None:
            fail(f"{label}: blockpipe exited with {proc.returncode}")
        st, _, body = api.get("/api/sync-status")
        if st == 200 and body["chains"] and body["outputs"]:
            c = body["chains"][0]
            low = min(o["checkpoint"] if o["checkpoint"] is not None else -1
                      for o in body["outputs"])
            if c["committed"] != (low if low >= 0 else None) or (
                    low >= 0 and c["indexed"] is not None and low > c["indexed"]):
                fail(f"{label}: committed {c['committed']} is not the outputs' lowest "
                     f"checkpoint {low} (indexed {c['indexed']})")
        return (st == 200 and body["chains"] and body["chains"][0]["indexed"] == head
                and body["outputs"]
                and all(o["checkpoint"] == head for o in body["outputs"]))
    wait_until(at_head, HANG, f"{label} at head {head}")


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    rng = random.Random(SEED)
    tmp = tempfile.mkdtemp(prefix="bp-apirest-")
    node = Anvil()
    pg = Postgres()
    procs = []
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for _ in range(14):
            wl.mine_batch(rng.randrange(1, 6))
        wl.big_transfer()
        node.mine()
        head = node.block_number()
        runs = []
        for label, out in (("sqlite", f"sqlite:{tmp}/bp.db"), ("postgres", pg.url())):
            p, port = start_api(["run", "--rpc", node.url, "--start-block", "0", "--output",
                                 out, "--poll-interval", "0.2", "--api-rate-limit", "0"],
                                os.path.join(tmp, f"{label}.log"))
            procs.append(p)
            runs.append((label, Api(port), p))
        chain = node_chain(node, head)
        for label, api, p in runs:
            wait_http(api.port, HANG, p)
            wait_head(api, head, p, label)
            check_api(api, node, chain, label, tmp)
        for (label, _, p) in runs:
            stop(p, f"blockpipe run ({label})")
        sp, port = start_api(["serve", "--output", f"sqlite:{tmp}/bp.db"],
                             os.path.join(tmp, "serve.log"))
        procs.append(sp)
        wait_http(port, HANG, sp)
        api = Api(port)
        check_blocks(api, chain, "serve")
        api.ok("/ready")
        expect_status(api, "/api/blocks?limit=x", 400, "limit")
        arch = api.ok("/api/arch/blocks")
        if arch != {"data": [], "count": 0, "next_cursor": None}:
            fail(f"serve: /api/arch/blocks of a file without Arch tables: {arch}")
        stop(sp, "blockpipe serve")
        print("check: serve: the SQLite file's blocks, /ready, a 400, no Arch blocks; exit 0 "
              "on SIGINT", flush=True)
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
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"OK: REST over SQLite and PostgreSQL equals the node; errors, status, metrics, serve "
          f"({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
