"""CoinGecko's range granularity and the demo plan's reach (audit A5).

The real range endpoint answers a day within the last day with 5-minute points, up to 90 days
with hourly points and longer ranges with daily ones (00:00 UTC); the demo/public plan refuses
history older than 365 days. test_metrics_prices.py's FakeGecko does the same. An anvil chain
whose genesis lies 420 days back, with a block every 2-6 days up to about 60 days ago, is
backfilled into SQLite in one batch (it spans a year) with the default --price-max-age (7200 s):
(1) against a server with all the history: every block with transactions gets USD (hourly
points price every block), every range asked spans at most 90 days, and every derived row
equals tests/tools/metricscheck.py's recomputation from the node and the output's prices table;
(2) against a server refusing history older than 365 days: the blocks older than that stay
NULL, the younger ones are priced (the request reaching across the limit is asked again from
within it), and the refusal is logged once as a warning naming the span and the server's
words; (3) with --price-max-age 1800 (below CoinGecko's hourly history): the blocks further
than 1800 s from an hourly point stay NULL and a warning says why.
"""
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload  # noqa: E402
from metricscheck import Expected, Mismatch, compare, read_sqlite  # noqa: E402
from test_metrics_prices import (DAY, KEEP, FakeGecko, run, sqlite_prices,  # noqa: E402
                                 stored_prices)

ORIGIN = "history"


def build_chain(node, wl, t0):
    rng = random.Random(5)
    ts = t0
    while ts < t0 + 355 * DAY:
        ts += rng.randrange(2 * DAY, 6 * DAY) + rng.randrange(DAY)
        node.rpc("evm_setNextBlockTimestamp", [ts])
        wl.mine_batch(1 + rng.randrange(3))
    head = node.block_number()
    return [node.block(n, True) for n in range(head + 1)], [node.receipts(n) for n in range(head + 1)]


def backfill(bp, node, srv, db, head, *extra):
    return run([bp, "backfill", "--rpc", node.url, "--output", f"sqlite:{db}", "--chain", ORIGIN,
                "--from", "0", "--to", str(head), "--batch-size", "1000", "--price-url", srv.url,
                "--price-interval", "60", *extra] + KEEP)


def usd_by_ts(got):
    return {r["block_timestamp"]: r["fees_paid_usd"]
            for r in got["chain_metrics_block"].values() if r["txcount"] > 0}


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    t0 = int(time.time()) - 420 * DAY
    with tempfile.TemporaryDirectory(prefix="bp-prices-history-") as tmp, \
            Anvil(["--timestamp", str(t0)]) as node:
        wl = Workload(node, seed=23)
        wl.setup()
        blocks, receipts = build_chain(node, wl, t0)
        head = len(blocks) - 1
        ts = [int(b["timestamp"], 16) for b in blocks]
        print(f"{head + 1} blocks over {(ts[-1] - ts[0]) / DAY:.0f} days, the last "
              f"{(time.time() - ts[-1]) / DAY:.0f} days ago")

        srv = FakeGecko(rate_limit_first=False)
        db = os.path.join(tmp, "full.db")
        try:
            err = backfill(bp, node, srv, db, head)
        finally:
            srv.stop()
        have = stored_prices(lambda: sqlite_prices(db))
        got = read_sqlite(db, ORIGIN)
        compare(Expected(blocks, receipts, ORIGIN, prices=have), got, label="full history: ")
        nulls = [t for t, u in usd_by_ts(got).items() if u is None]
        if nulls:
            raise Mismatch(f"full history: {len(nulls)} of {len(usd_by_ts(got))} blocks without "
                           f"USD (hourly points price every block); ranges asked (from, to, "
                           f"step): {srv.steps}\n{err[-2000:]}")
        wide = [(lo, hi, step) for lo, hi, step in srv.steps if hi - lo > 90 * DAY or step > 3600]
        if wide or not srv.steps:
            raise Mismatch(f"ranges asked wider than 90 days (daily points): {wide} of "
                           f"{srv.steps}:\n{err[-2000:]}")
        if len(srv.steps) > 6:
            raise Mismatch(f"{len(srv.steps)} range requests for a year: want 5 or so")
        print(f"full history: {len(srv.steps)} range requests of at most 90 days, every block "
              f"priced, every derived row equals the recomputation")

        srv = FakeGecko(rate_limit_first=False, reach_days=365)
        db = os.path.join(tmp, "demo.db")
        try:
            err = backfill(bp, node, srv, db, head)
        finally:
            srv.stop()
        reach = time.time() - 365 * DAY
        refused = [ln for ln in err.splitlines() if "refused" in ln]
        warned = [ln for ln in refused if ln.split()[1:2] == ["warn"]]
        words = "limited to querying historical data within the past 365 days"
        if len(warned) != 1 or words not in warned[0] or "history" not in warned[0]:
            raise Mismatch(f"want one warning naming the refused span and the server's words, "
                           f"have {refused}:\n{err[-3000:]}")
        have = stored_prices(lambda: sqlite_prices(db))
        got = read_sqlite(db, ORIGIN)
        compare(Expected(blocks, receipts, ORIGIN, prices=have), got, label="demo plan: ")
        usd = usd_by_ts(got)
        old = [u for t, u in usd.items() if t < reach]
        young = [u for t, u in usd.items() if t > reach + DAY + 7200]
        if not old or any(u is not None for u in old) or not young or None in young:
            raise Mismatch(f"demo plan: {sum(u is not None for u in old)} of {len(old)} blocks "
                           f"older than 365 days priced (want none), "
                           f"{sum(u is None for u in young)} of {len(young)} younger ones NULL "
                           f"(want none); requests {srv.requests}")
        print(f"demo plan: {len(old)} blocks older than 365 days NULL, {len(young)} younger ones "
              f"priced; logged: {warned[0][:300]}")

        srv = FakeGecko(rate_limit_first=False)
        db = os.path.join(tmp, "sparse.db")
        try:
            err = backfill(bp, node, srv, db, head, "--price-max-age", "1800")
        finally:
            srv.stop()
        have = stored_prices(lambda: sqlite_prices(db))
        got = read_sqlite(db, ORIGIN)
        compare(Expected(blocks, receipts, ORIGIN, prices=have, max_age=1800), got,
                label="--price-max-age 1800: ")
        if "more than --price-max-age 1800" not in err or None not in usd_by_ts(got).values():
            raise Mismatch(f"--price-max-age 1800: want NULL USD for some blocks and a warning "
                           f"saying why:\n{err[-3000:]}")
        print("--price-max-age 1800: blocks away from hourly points NULL, and said why")
    print("PASS")


if __name__ == "__main__":
    main()
