"""USD prices of the derived tables (fees_paid_usd), SQLite and PostgreSQL.

A chain of blocks every ~10 minutes over ~4 hours. (1) `--prices FILE` (CSV) covering only
the first half, each point twice in its second in milliseconds (the later value counts):
blocks there get fees_paid_native x the latest price at or before them (at most
--price-max-age older), the others and every window holding one of them stay NULL; (2) a
`run` given a JSON-lines file covering the rest fills them in with its first batch, windows
too; (3) `--price-url` against this test's own CoinGecko-shaped server (simple/price and
market_chart/range, the API key in x-cg-demo-api-key), which answers the first range request
with 429 + Retry-After: blockpipe waits and asks again, and the blocks are priced from the
history it got; the same with `--native-token BNB` and the key from COINGECKO_API_KEY (not
logged): binancecoin is asked for with that key, a --prices file's ETH rows are ignored, and
the blocks are priced from the BNB points; (4) a server that only fails (HTTP 500, then
malformed JSON): the backfill still succeeds, USD stays NULL, the failure is logged. Every check compares every derived row
with tests/tools/metricscheck.py's recomputation from the node's blocks and the output's own
prices table (which must hold the points given).
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from metricscheck import Expected, Mismatch, compare, read_pg, read_sqlite  # noqa: E402
from pg import Postgres  # noqa: E402

ORIGIN = "pricechain"
MAX_AGE = 900
KEEP = ["--retention-block", "0", "--retention-sets", "0", "--retention-1m", "0",
        "--retention-1h", "0"]


COIN_OFFSET = {"binancecoin": 700.0}  # another token's prices differ from ethereum's


def price_of(t, coin="ethereum"):
    """The server's (and the files') price at a point (CoinGecko's id `coin`)."""
    return 1000.0 + (t // 300) % 500 + 0.25 - COIN_OFFSET.get(coin, 0.0)


DAY = 86400


def step_of(lo, hi, now):
    """The seconds between the points CoinGecko's range endpoint answers [lo, hi] with when
    asked at `now` (its automatic granularity): a day within the last day 5-minutely, up to
    90 days hourly, longer ranges daily (00:00 UTC)."""
    if hi - lo <= DAY and lo >= now - DAY:
        return 300
    return 3600 if hi - lo <= 90 * DAY else DAY


def gecko_points(lo, hi, step, coin="ethereum"):
    return [(t, price_of(t, coin)) for t in range(lo - lo % step, hi + 1, step) if t >= lo]


class FakeGecko(http.server.ThreadingHTTPServer):
    """CoinGecko's /simple/price (ids=a,b: each id's price) and /coins/{id}/market_chart/range
    (price_of the id, with the real API's granularity by the range's length: step_of; `now`
    is the clock when set, else the wall clock). mode "fail" answers 500,
    "garbage" malformed JSON. Without a clock /simple/price answers a fixed past time (1000)
    and the range endpoint any span; with `clock` set (unix seconds, the test advances it)
    /simple/price answers price_of(clock) last updated at clock, and the range endpoint knows
    no point after it, as the real API. `down` (settable): every request answers 500 (429
    with Retry-After for /simple/price) until cleared. `rate_limit_first`: the first range
    request gets a 429. `reach_days`: a range beginning more than that many days before now
    is refused as the demo plan does (HTTP 401, error_code 10012). `steps`: each range
    answered, (from, to, step)."""

    def __init__(self, mode="ok", clock=None, rate_limit_first=True, reach_days=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = mode
        self.clock = clock
        self.down = False
        self.rate_limit_first = rate_limit_first
        self.reach_days = reach_days
        self.requests = []
        self.steps = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/api/v3"

    def stop(self):
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # a client killed in the middle of an answer (tests SIGKILL blockpipe)
        super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        srv = self.server
        u = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        with srv.lock:
            srv.requests.append((u.path, q, self.headers.get("x-cg-demo-api-key")))
            n_range = sum(1 for p, _, _ in srv.requests if p.endswith("/market_chart/range"))
        clock = srv.clock
        if srv.down and u.path == "/api/v3/simple/price":
            return self.answer(429, {"status": {"error_code": 429, "error_message": "limit"}},
                               [("Retry-After", "1")])
        if srv.mode == "fail" or srv.down:
            return self.answer(500, {"status": {"error_code": 500, "error_message": "down"}})
        if srv.mode == "garbage":
            return self.answer(200, "{not json")
        if u.path == "/api/v3/simple/price":
            ids = q.get("ids", "?").split(",")
            if clock is not None:
                return self.answer(200, {c: {"usd": price_of(clock, c), "last_updated_at": clock}
                                         for c in ids})
            # a fixed past time: the current price must not change the blocks' expected USD
            return self.answer(200, {c: {"usd": 1.5, "last_updated_at": 1000} for c in ids})
        if u.path.startswith("/api/v3/coins/") and u.path.endswith("/market_chart/range"):
            if n_range == 1 and srv.rate_limit_first:
                return self.answer(429, {"status": {"error_code": 429,
                                                    "error_message": "rate limit"}},
                                   [("Retry-After", "1")])
            lo, hi = int(q["from"]), int(q["to"])
            now = time.time() if clock is None else clock
            if srv.reach_days is not None and lo < now - srv.reach_days * DAY:
                return self.answer(401, {"error": {"status": {
                    "timestamp": "2026-01-01T00:00:00.000Z", "error_code": 10012,
                    "error_message": "Your request exceeds the allowed time range. Public API "
                    f"users are limited to querying historical data within the past "
                    f"{srv.reach_days} days."}}})
            step = step_of(lo, hi, now)
            coin = u.path.split("/")[4]
            with srv.lock:
                srv.steps.append((lo, hi, step))
            pts = gecko_points(lo, hi if clock is None else min(hi, clock), step, coin)
            return self.answer(200, {"prices": [[t * 1000, p] for t, p in pts],
                                     "market_caps": [], "total_volumes": []})
        return self.answer(404, {"error": "not found"})


def build_chain(node, wl):
    ts = int(node.block("latest")["timestamp"], 16)
    for i in range(24):
        ts += 577 + (i % 5) * 7
        node.rpc("evm_setNextBlockTimestamp", [ts])
        wl.mine_batch(3 + i % 4)
    head = node.block_number()
    blocks = [node.block(n, True) for n in range(head + 1)]
    receipts = [node.receipts(n) for n in range(head + 1)]
    return blocks, receipts


def points(lo, hi):
    return gecko_points(lo, hi, 300)


def run(cmd, timeout=300, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise Mismatch(f"{' '.join(cmd)}: exit {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stderr


def stored_prices(read_prices):
    return sorted((int(t), float(u)) for t, u in read_prices())


def check(label, blocks, receipts, got, prices, want_null, want_priced):
    exp = Expected(blocks, receipts, ORIGIN, prices=prices, max_age=MAX_AGE)
    compare(exp, got, label=f"{label}: ")
    usd = [r["fees_paid_usd"] for r in got["chain_metrics_block"].values()
           if r["txcount"] > 0]
    nulls, priced = sum(u is None for u in usd), sum(u is not None for u in usd)
    if (nulls > 0) != want_null or (priced > 0) != want_priced:
        raise Mismatch(f"{label}: {priced} blocks with USD, {nulls} without; want "
                       f"{'some' if want_priced else 'none'} with, "
                       f"{'some' if want_null else 'none'} without")
    print(f"{label}: every derived row equals the recomputation ({priced} blocks priced, "
          f"{nulls} NULL)")


def file_phases(bp, node, wl, blocks, receipts, tmp, output, read, read_prices, label):
    head = len(blocks) - 1
    ts = [int(b["timestamp"], 16) for b in blocks]
    mid = ts[len(ts) // 2]
    first = os.path.join(tmp, f"{label}-first.csv")
    with open(first, "w") as f:
        f.write("timestamp,symbol,usd\n")
        for t, u in points(ts[0] - 600, mid):
            # two ticks in one second (milliseconds): one point, the later value (PostgreSQL
            # refuses an upsert that changes a row twice)
            f.write(f"{t * 1000 + 123},ETH,{u + 1!r}\n{t * 1000 + 456},ETH,{u!r}\n")
            f.write(f"{t},BTC,99999.0\n")  # another symbol: ignored
    run([bp, "backfill", "--rpc", node.url, "--output", output, "--chain", ORIGIN, "--from", "0",
         "--to", str(head), "--prices", first, "--price-max-age", str(MAX_AGE)] + KEEP)
    have = stored_prices(read_prices)
    if have != points(ts[0] - 600, mid):
        raise Mismatch(f"{label}: the prices table holds {len(have)} points, want the file's")
    check(f"{label} file covering the first half", blocks, receipts, read(), have, True, True)

    rest = os.path.join(tmp, f"{label}-rest.jsonl")
    with open(rest, "w") as f:
        for t, u in points(mid, ts[-1] + 600):
            f.write(json.dumps({"timestamp": t, "symbol": "eth", "usd": u}) + "\n")
    p = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", output, "--chain", ORIGIN,
                          "--prices", rest, "--price-max-age", str(MAX_AGE), "--poll-interval",
                          "0.2"] + KEEP, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        node.rpc("evm_setNextBlockTimestamp", [ts[-1] + 60])
        wl.mine_batch(2)  # the batch that brings the prices
        blocks.append(node.block(head + 1, True))
        receipts.append(node.receipts(head + 1))
        wait_until(lambda: read()["chain_metrics_block"].get(head + 1), 60,
                   f"{label}: block {head + 1} written")
    finally:
        p.terminate()
        _, err = p.communicate(timeout=60)
    if p.returncode != 0:
        raise Mismatch(f"{label}: run exited {p.returncode}:\n{err[-3000:]}")
    have = stored_prices(read_prices)
    check(f"{label} the rest of the prices later", blocks, receipts, read(), have, False, True)


def fetcher_phases(bp, node, blocks, receipts, tmp):
    head = len(blocks) - 1
    srv = FakeGecko()
    db = os.path.join(tmp, "gecko.db")
    try:
        err = run([bp, "backfill", "--rpc", node.url, "--output", f"sqlite:{db}", "--chain",
                   ORIGIN, "--from", "0", "--to", str(head), "--price-url", srv.url,
                   "--price-max-age", str(MAX_AGE), "--price-interval", "0.2"] + KEEP
                  + ["--coingecko-api-key", "test-key"])
    finally:
        srv.stop()
    ranges = [r for r in srv.requests if r[0].endswith("/market_chart/range")]
    if len(ranges) < 2 or "rate-limited" not in err:
        raise Mismatch(f"want a 429 on the first range request and another request after it "
                       f"(and a 'rate-limited' line); requests {srv.requests}:\n{err[-2000:]}")
    if any(k != "test-key" for _, _, k in srv.requests):
        raise Mismatch(f"requests without the API key header: {srv.requests}")
    have = stored_prices(lambda: sqlite_prices(db))
    lo, hi, step = srv.steps[-1]
    if step != 300 or not set(gecko_points(lo, hi, step)) <= set(have):
        raise Mismatch(f"the prices table lacks points the range endpoint gave, or the range "
                       f"asked ({lo}..{hi}, {step} s points) is not a day's 5-minute points")
    current = [r for r in srv.requests if r[0].endswith("/simple/price")]
    if not current or current[0][1].get("ids") != "ethereum" or (1000, 1.5) not in have:
        raise Mismatch(f"the current price (/simple/price, every --price-interval) was not "
                       f"asked for or not stored: {current[:2]}, prices {have[:3]}")
    check("CoinGecko range history after a 429", blocks, receipts, read_sqlite(db, ORIGIN), have,
          False, True)
    native_token_phase(bp, node, blocks, receipts, tmp)

    for mode in ("fail", "garbage"):
        srv = FakeGecko(mode)
        db = os.path.join(tmp, f"{mode}.db")
        try:
            err = run([bp, "backfill", "--rpc", node.url, "--output", f"sqlite:{db}", "--chain",
                       ORIGIN, "--from", "0", "--to", str(head), "--price-url", srv.url] + KEEP)
        finally:
            srv.stop()
        if "prices" not in err or not srv.requests:
            raise Mismatch(f"{mode}: the failing price server was not asked or not logged:\n"
                           f"{err[-2000:]}")
        check(f"a price server that answers {mode}", blocks, receipts, read_sqlite(db, ORIGIN),
              [], True, False)


def native_token_phase(bp, node, blocks, receipts, tmp):
    """--native-token BNB, the API key from COINGECKO_API_KEY: the fetcher asks for
    binancecoin with the key, stores BNB prices (a --prices file's ETH rows are ignored), and
    the blocks are priced from them (looked up by symbol: none would be ETH's)."""
    head = len(blocks) - 1
    eth = os.path.join(tmp, "eth-decoy.csv")
    ts = [int(b["timestamp"], 16) for b in blocks]
    with open(eth, "w") as f:
        f.write("timestamp,symbol,usd\n")
        for t in range(ts[0] - 600, ts[-1] + 1, 300):
            f.write(f"{t},ETH,7.0\n")
    srv = FakeGecko()
    db = os.path.join(tmp, "bnb.db")
    try:
        err = run([bp, "backfill", "--rpc", node.url, "--output", f"sqlite:{db}", "--chain",
                   ORIGIN, "--from", "0", "--to", str(head), "--price-url", srv.url,
                   "--price-max-age", str(MAX_AGE), "--price-interval", "0.2", "--native-token",
                   "BNB", "--prices", eth] + KEEP,
                  env=dict(os.environ, COINGECKO_API_KEY="env-secret-key"))
    finally:
        srv.stop()
    if not srv.requests or any(k != "env-secret-key" for _, _, k in srv.requests):
        raise Mismatch(f"COINGECKO_API_KEY: requests without its key: {srv.requests}")
    if "env-secret-key" in err:
        raise Mismatch("COINGECKO_API_KEY's value is in the log")
    coins = {p.split("/")[4] for p, _, _ in srv.requests if p.startswith("/api/v3/coins/")}
    ids = {q.get("ids") for p, q, _ in srv.requests if p.endswith("/simple/price")}
    if coins != {"binancecoin"} or ids - {"binancecoin"}:
        raise Mismatch(f"--native-token BNB: asked for coins {coins}, simple/price ids {ids}, "
                       "want binancecoin")
    have = stored_prices(lambda: sqlite_prices(db, "BNB"))
    others = stored_prices(lambda: sqlite_prices(db, "ETH"))
    if not have or others:
        raise Mismatch(f"prices table: {len(have)} BNB points (want some), {len(others)} ETH "
                       "points (want none: the file's ETH rows are another symbol's)")
    check("--native-token BNB, COINGECKO_API_KEY", blocks, receipts, read_sqlite(db, ORIGIN),
          have, False, True)


def sqlite_prices(path, symbol="ETH"):
    import sqlite3
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT timestamp, usd FROM prices WHERE symbol = ?",
                          (symbol,)).fetchall()
    finally:
        db.close()


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-prices-") as tmp, Anvil() as node:
        wl = Workload(node, seed=77)
        wl.setup()
        blocks, receipts = build_chain(node, wl)
        fetcher_phases(bp, node, blocks, receipts, tmp)
        db = os.path.join(tmp, "file.db")
        file_phases(bp, node, wl, list(blocks), list(receipts), tmp, f"sqlite:{db}",
                    lambda: read_sqlite(db, ORIGIN), lambda: sqlite_prices(db), "sqlite")
        with Postgres() as pg:
            blocks, receipts = build_chain(node, wl)  # more blocks, the same chain
            file_phases(bp, node, wl, blocks, receipts, tmp, pg.url(),
                        lambda: read_pg(pg, ORIGIN),
                        lambda: pg.sql("SELECT timestamp, usd FROM prices WHERE symbol = 'ETH'"),
                        "postgres")
    print("PASS")


if __name__ == "__main__":
    main()
