"""The derived tables of an output that drops out and rejoins (--output-failure continue): one
`run` follows anvil into SQLite and PostgreSQL; PostgreSQL is killed three times while blocks
come (several senders, token events), so that SQLite goes on alone and PostgreSQL is set aside,
then restarted: the run catches it up from its checkpoint (src/core/pipeline.c rejoin). The
outages are laid out so that the windows straddle them: blocks of one minute (so of one hour and
one day) before and during the first outage; minutes and an hour boundary inside one day during
the second; a day boundary during the third. After each catch-up every row of every derived
table of BOTH outputs (chain_metrics_block/_1m/_1h/_1d, contract_metrics_*, active_addresses,
contract_senders, token_transfers) must equal tests/tools/metricscheck.py's recomputation from
the node's own blocks and receipts and the USD prices given: the catch-up replays blocks the
metrics module saw already, and its open windows (their sender sets, the minute's contract sums)
must not count them twice nor take them for known. Prices come from this test's CoinGecko-shaped
server; a new one is learnt while PostgreSQL is out (it reprices a block PostgreSQL holds): an
output prices its blocks from its own `prices` table, so the rejoined one must get it too."""
import http.server
import json
import os
import signal
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from anvil import wait_until  # noqa: E402
from metricscheck import Expected, Mismatch, compare  # noqa: E402
from metricsdrive import ORIGIN, RETENTION_FOREVER, Scenario, tail  # noqa: E402
from pg import Postgres  # noqa: E402
import test_metrics_pg  # noqa: E402
import test_metrics_sqlite  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "3030"))
HANG = 120  # seconds: only a guard against a hang, never a measure
SET_ASIDE = "this output is set aside (--output-failure continue)"
MAX_AGE = 10 * 86400  # every point prices every block after it in this test


class Gecko(http.server.ThreadingHTTPServer):
    """Answers /simple/price with the point the test set last (no history: the range endpoint
    has none), counting the answers since."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), GeckoHandler)
        self.lock = threading.Lock()
        self.point, self.answers, self.points = None, 0, []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/api/v3"

    def set_point(self, ts, usd):
        """The current price from now on."""
        with self.lock:
            self.point, self.answers = (ts, usd), 0
            self.points.append((ts, usd))

    def wait_taken(self):
        """Until blockpipe took the point (asked twice since: its fetcher adds a point before
        it asks again)."""
        wait_until(lambda: self.answers >= 2, HANG, f"blockpipe to fetch the price {self.point}")

    def stop(self):
        self.shutdown()
        self.server_close()


class GeckoHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        with srv.lock:
            point = srv.point
            if self.path.startswith("/api/v3/simple/price"):
                srv.answers += 1
        if self.path.startswith("/api/v3/simple/price"):
            body = {"ethereum": {"usd": point[1], "last_updated_at": point[0]}}
        elif "/market_chart/range" in self.path:
            body = {"prices": [], "market_caps": [], "total_volumes": []}
        else:
            body = {"status": {"error_code": 404, "error_message": "not found"}}
        data = json.dumps(body).encode()
        self.send_response(200 if "status" not in body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SqliteBackend(test_metrics_sqlite.SqliteBackend):
    def prices(self):
        db = self._db()
        try:
            return db.execute("SELECT timestamp, usd FROM prices WHERE symbol = 'ETH'").fetchall()
        finally:
            db.close()


class ServerDown:
    """Mixed into the backend of the output that drops out: while its server is down it has
    no checkpoint to read."""

    def checkpoint(self):
        try:
            return super().checkpoint()
        except OSError:
            return None


class PgBackend(ServerDown, test_metrics_pg.PgBackend):
    def prices(self):
        return self.pg.sql("SELECT timestamp, usd FROM prices WHERE symbol = 'ETH'")


class Rejoin:
    """server: the dropping output's (.kill(), .start()); out: its backend (.url, .label,
    .checkpoint(), .read(origin), .prices())."""

    def __init__(self, bp, tmp, server, out, gecko):
        self.gecko = gecko
        self.lite = SqliteBackend(os.path.join(tmp, "bp.db"))
        self.out, self.server = out, server
        self.sc = Scenario(bp, self.lite, tmp, SEED)
        self.bp = bp
        self.err_path = self.sc.err_path
        self.proc = None

    def mine(self, steps, senders, txs=5):
        """A block after each step (seconds of chain time), txs transactions in each, from
        (and to) the first `senders` dev accounts: an outage brings senders its windows have
        not seen before it."""
        every = self.sc.wl.accounts
        self.sc.wl.accounts = every[:senders]
        try:
            self._mine(steps, txs)
        finally:
            self.sc.wl.accounts = every

    def _mine(self, steps, txs):
        for s in steps:
            self.sc.ts += s
            self.sc.node.rpc("evm_setNextBlockTimestamp", [self.sc.ts])
            for _ in range(txs):
                if self.sc.rng.random() < 0.3:
                    self.sc.em.send()
                else:
                    self.sc.wl.random_tx()
            self.sc.node.mine()
            self.sc.wl.collect_deploys()
            self.sc.wl.check_pool_empty()

    def align(self, grain, offset):
        """The next block's time: offset seconds into the next window of grain."""
        return self.sc.ts - self.sc.ts % grain + grain + offset - self.sc.ts

    def start(self):
        cmd = [self.bp, "run", "--rpc", self.sc.node.url, "--chain", ORIGIN,
               "--output", self.lite.url, "--output", self.out.url, "--output-failure",
               "continue", "--wait-for-db", "1", "--start-block", "0", "--confirmations", "0",
               "--poll-interval", "0.2", "--batch-size", "4", "--stats-interval", "1",
               "--price-url", self.gecko.url, "--price-interval", "0.2", "--price-max-age",
               str(MAX_AGE), *RETENTION_FOREVER]
        self.proc = self.sc.spawn(cmd)

    def log(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait_at_head(self, be, label):
        head = self.sc.node.block_number()
        want = (head, self.sc.node.block(head, False)["hash"])

        def ok():
            if self.proc.poll() is not None:
                raise Mismatch(f"{label}: blockpipe exited {self.proc.returncode}:\n"
                               f"{tail(self.err_path)}")
            return be.checkpoint() == want
        try:
            wait_until(ok, HANG, f"{label}: {be.label} at {want}", 0.2)
        except TimeoutError as e:
            raise Mismatch(f"{e}; have {be.checkpoint()}\n{tail(self.err_path)}") from None

    def check(self, label, backends):
        blocks, receipts = self.sc.node_chain()
        points = sorted(self.gecko.points)
        exp = Expected(blocks, receipts, ORIGIN, prices=points, max_age=MAX_AGE)
        for be in backends:
            try:
                counts = compare(exp, be.read(ORIGIN), label=f"{label}: {be.label}: ")
                have = sorted((int(t), float(u)) for t, u in be.prices())
                if have != points:
                    raise Mismatch(f"{label}: {be.label}: prices {have}, want {points}")
            except Mismatch as e:
                raise Mismatch(f"{e}\nblockpipe stderr:\n{tail(self.err_path)}") from None
            print(f"{label}: {be.label}: every derived row equals the recomputation: "
                  + " ".join(f"{t}={n}" for t, n in counts.items() if n))

    def outage(self, label, steps, senders, usd=None):
        """The output's server dies; (a new price at the newest block it holds;) blocks at steps
        come; SQLite takes them alone; the server comes back and the output is caught up."""
        aside, back = self.log().count(SET_ASIDE), self.log().count("answers again")
        self.server.kill()
        if usd:
            self.gecko.set_point(self.sc.ts, usd)
            self.gecko.wait_taken()
        self.mine(steps, senders)
        self.wait_at_head(self.lite, f"{label}, {self.out.label} down")
        wait_until(lambda: self.log().count(SET_ASIDE) > aside, HANG,
                   f"{label}: {self.out.label} to be set aside")
        self.check(f"{label}, {self.out.label} down", [self.lite])
        self.server.start()
        self.wait_at_head(self.out, f"{label}, {self.out.label} back")
        if self.log().count("answers again") <= back:
            raise Mismatch(f"{label}: {self.out.label} reached the head without rejoining the "
                           f"run:\n{tail(self.err_path)}")
        self.check(f"{label}, {self.out.label} caught up", [self.lite, self.out])

    def run(self):
        # day D, 05:00:30: room for the outages below inside one day
        self.mine([self.align(86400, 5 * 3600 + 30)] + [1, 2, 7, 13, 59, 61], 3, txs=4)
        self.gecko.set_point(self.sc.ts - 5 * 3600, 2000.25)
        self.start()
        self.gecko.wait_taken()
        # a minute's first block in both outputs (its batch brings the price at the latest),
        # the rest of the minute while the other output is out
        self.mine([self.align(60, 5)], 3)
        self.wait_at_head(self.lite, "start")
        self.wait_at_head(self.out, "start")
        self.check("start", [self.lite, self.out])
        self.outage("outage 1 (one minute)", [1, 2, 3, 2], 6, usd=2100.5)
        # minutes and an hour boundary, inside day D
        self.outage("outage 2 (minutes, an hour)", [7, 61, 250, 3601, 13, 2], 8)
        # a day boundary
        self.outage("outage 3 (a day)", [59, self.align(86400, 20), 2, 61], 10)
        self.mine([1, 70], 10)
        self.wait_at_head(self.lite, "both up")
        self.wait_at_head(self.out, "both up")
        self.check("at the end", [self.lite, self.out])

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
        self.sc.close()


def drive(bp, tmp, server, out):
    """The scenario, with the output `out` (on `server`) dropping out beside SQLite."""
    gecko = Gecko()
    r = Rejoin(bp, tmp, server, out, gecko)
    try:
        r.run()
        rc = r.proc.poll()
        if rc is not None:
            raise Mismatch(f"blockpipe exited {rc}:\n{tail(r.err_path)}")
    finally:
        r.close()
        gecko.stop()


def main():
    print(__doc__.strip().splitlines()[0])
    with Postgres() as pg, tempfile.TemporaryDirectory(prefix="bp-rejoin-") as tmp:
        drive(os.environ["BLOCKPIPE"], tmp, pg, PgBackend(pg))
    print("PASS")


if __name__ == "__main__":
    main()
