"""USD left NULL by a price-source outage is filled in when the source answers again (issue 10
part 4: "filled in when the price arrives").

One anvil chain followed by `blockpipe run` into SQLite with prices from test_metrics_prices.py's
CoinGecko-shaped server, whose clock follows the chain (/simple/price: the price at the clock,
last updated at the clock; the range endpoint: points every 300 s up to the clock). A block
is mined and priced; then the server goes down (HTTP 500, /simple/price 429 + Retry-After)
while the chain advances more than 2 x --price-max-age in blocks written one batch each:
those stay NULL. The server comes back (the clock at the chain's head) and blocks keep coming:
every block of the outage gets its USD (the range endpoint is asked again for the span it
failed to answer, although the current price prices the new blocks and a range request made
before the outage had asked 30 days ahead), and every derived row equals
tests/tools/metricscheck.py's recomputation from the node and the output's prices table.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from metricscheck import Expected, Mismatch, compare, read_sqlite  # noqa: E402
from test_metrics_prices import KEEP, FakeGecko, sqlite_prices, stored_prices  # noqa: E402

ORIGIN = "outage"
MAX_AGE = 300


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    proc, srv, log = None, None, None
    with tempfile.TemporaryDirectory(prefix="bp-prices-outage-") as tmp, Anvil() as node:
        try:
            wl = Workload(node, seed=41)
            wl.setup()
            t = int(node.block("latest", False)["timestamp"], 16) + 600
            srv = FakeGecko(clock=t, rate_limit_first=False)
            db = os.path.join(tmp, "o.db")
            log = open(os.path.join(tmp, "run.log"), "w")
            proc = subprocess.Popen([bp, "run", "--rpc", node.url, "--output", f"sqlite:{db}",
                                     "--chain", ORIGIN, "--start-block", "0", "--confirmations", "0",
                                     "--poll-interval", "0.2", "--price-url", srv.url,
                                     "--price-interval", "0.2", "--price-max-age", str(MAX_AGE)]
                                    + KEEP, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

            def mine(ts, k=2):
                node.rpc("evm_setNextBlockTimestamp", [ts])
                n = wl.mine_batch(k)
                wait_until(lambda: proc.poll() is None and
                           read_sqlite(db, ORIGIN)["chain_metrics_block"].get(n), 60,
                           f"block {n} written")
                return n

            wait_until(lambda: any(r[0].endswith("/simple/price") for r in srv.requests), 60,
                       "the current price asked for")
            first = mine(t + 10)
            srv.down = True
            gap = []
            for _ in range(8):  # 8 batches over 1,200 s: 4 x the max age
                t += 150
                srv.clock = t
                gap.append(mine(t + 10))
            cmb = read_sqlite(db, ORIGIN)["chain_metrics_block"]
            if all(cmb[n]["fees_paid_usd"] is not None for n in gap):
                raise Mismatch("the outage left no block without USD: nothing to test")
            print(f"outage: blocks {gap[0]}..{gap[-1]} written, "
                  f"{sum(cmb[n]['fees_paid_usd'] is None for n in gap)} without USD")
            srv.down = False

            def filled():
                nonlocal t
                t += 20
                srv.clock = t
                mine(t + 10, 1)
                rows = read_sqlite(db, ORIGIN)["chain_metrics_block"]
                return all(rows[n]["fees_paid_usd"] is not None for n in [first] + gap)
            try:
                wait_until(filled, 60, "the outage's blocks priced once the source answers",
                           interval=0.5)
            except TimeoutError as e:
                rows = read_sqlite(db, ORIGIN)["chain_metrics_block"]
                raise Mismatch(f"{e}: still NULL: "
                               f"{[n for n in gap if rows[n]['fees_paid_usd'] is None]}")
            head = node.block_number()
            blocks = [node.block(n, True) for n in range(head + 1)]
            receipts = [node.receipts(n) for n in range(head + 1)]
            have = stored_prices(lambda: sqlite_prices(db))
            compare(Expected(blocks, receipts, ORIGIN, prices=have, max_age=MAX_AGE),
                    read_sqlite(db, ORIGIN), label="after the outage: ")
            print(f"after the outage: every block priced, every derived row equals the "
                  f"recomputation ({len(have)} prices)")
            if proc.poll() is not None:
                raise Mismatch(f"blockpipe exited {proc.returncode}")
        except BaseException:
            if log:
                log.flush()
                with open(log.name) as f:
                    print(f.read()[-4000:], file=sys.stderr)
            raise
        finally:
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(60)
            if srv:
                srv.stop()
    print("PASS")


if __name__ == "__main__":
    main()
