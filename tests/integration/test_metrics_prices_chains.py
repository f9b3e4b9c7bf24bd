"""USD prices with several chains in one process (issue 10 part 4).

Three anvil chains (`p1`, `p2` with ETH, `p3` with `native_token: BNB`, whose prices the server
makes differ from ETH's) are followed by one `blockpipe run --config FILE` (a `chains:` list)
into one SQLite file and one PostgreSQL database, both shared by the chains, with prices from
test_metrics_prices.py's CoinGecko-shaped server whose clock the test advances: /simple/price
answers the price at the clock, last updated at the clock, and the range endpoint knows no
point after it. Each round mines blocks on every chain at chain time t, waits until both
outputs hold them (no price yet: USD NULL), moves the clock to t - 60 (a current price older
than the blocks, within --price-max-age: it prices them, as CoinGecko's last_updated_at lies
before the blocks written just before it arrives), waits until the fetcher has it and mines a
block per chain until a round of them stored no new point (a chain hands the points learnt
meanwhile to the outputs with its next batch). Then every derived row of every chain in both
outputs equals tests/tools/metricscheck.py's recomputation from the node and the output's own
prices table of the chain's own token, and every block with transactions from the rounds has
USD (p3's from BNB's store: one /simple/price request asks ids=ethereum,binancecoin, and the
range endpoint is asked per id, although the command line's --price-coin-id ethereum is every
chain's default: it names the top level's token's coin, ETH's, so the BNB chain keeps
binancecoin): the point reached every chain's metrics module of its token
(not only the one that computed next) and repriced their blocks and windows, although another
chain had stored the identical price row first (SQLite changed no row, PostgreSQL's upsert
updated none).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Anvil, Workload, wait_until  # noqa: E402
from metricscheck import Expected, Mismatch, compare, read_pg, read_sqlite  # noqa: E402
from pg import Postgres  # noqa: E402
from test_metrics_prices import KEEP, FakeGecko, sqlite_prices, stored_prices  # noqa: E402

CHAINS = {"p1": (1401, "ETH"), "p2": (1402, "ETH"), "p3": (1403, "BNB")}
SYMBOLS = sorted({sym for _, sym in CHAINS.values()})
MAX_AGE = 900
ROUNDS = 2


def head_ts(node):
    return int(node.block("latest", False)["timestamp"], 16)


def mine_at(node, wl, ts, k):
    node.rpc("evm_setNextBlockTimestamp", [ts])
    return wl.mine_batch(k)


def asked(srv, k):
    """Waits until /simple/price was asked k more times."""
    def current():
        with srv.lock:
            return sum(1 for p, _, _ in srv.requests if p.endswith("/simple/price"))
    n0 = current()
    wait_until(lambda: current() >= n0 + k, 30, f"{k} more /simple/price requests")


def written(outputs, heads):
    """Every output holds every chain's block heads[name]."""
    return all(o["read"](name)["chain_metrics_block"].get(n)
               for o in outputs for name, n in heads.items())


def all_prices(o):
    """An output's stored points of every symbol in use."""
    return {sym: stored_prices(lambda: o["prices"](sym)) for sym in SYMBOLS}


def check_round(label, nodes, outputs, since):
    for o in outputs:
        for name, node in nodes.items():
            sym = CHAINS[name][1]
            have = all_prices(o)[sym]
            head = node.block_number()
            blocks = [node.block(n, True) for n in range(head + 1)]
            receipts = [node.receipts(n) for n in range(head + 1)]
            got = o["read"](name)
            compare(Expected(blocks, receipts, name, prices=have, max_age=MAX_AGE, symbol=sym), got,
                    label=f"{label}: {o['name']} chain {name}: ")
            bare = [n for n, r in got["chain_metrics_block"].items()
                    if n >= since[name] and r["txcount"] > 0 and r["fees_paid_usd"] is None]
            if bare:
                raise Mismatch(f"{label}: {o['name']} chain {name}: blocks {bare} have no USD")
            print(f"{label}: {o['name']} chain {name}: every derived row equals the "
                  f"recomputation ({len(have)} {sym} prices)")


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    nodes, proc, srv, log = {}, None, None, None
    with tempfile.TemporaryDirectory(prefix="bp-prices-chains-") as tmp, Postgres() as pg:
        try:
            wls = {}
            for i, (name, (cid, _)) in enumerate(CHAINS.items()):
                nodes[name] = Anvil(["--chain-id", str(cid)])
                wls[name] = Workload(nodes[name], seed=31 + i)
                wls[name].setup()
            t = max(head_ts(n) for n in nodes.values()) + 600
            srv = FakeGecko(clock=1000, rate_limit_first=False)
            db = os.path.join(tmp, "p.db")
            outputs = [
                {"name": "sqlite", "read": lambda name: read_sqlite(db, name),
                 "prices": lambda sym: sqlite_prices(db, sym)},
                {"name": "postgres", "read": lambda name: read_pg(pg, name),
                 "prices": lambda sym: pg.sql("SELECT timestamp, usd FROM prices "
                                              f"WHERE symbol = '{sym}'")}]
            cfg = {"outputs": [f"sqlite:{db}", pg.url()], "confirmations": 0,
                   "poll_interval": 0.2,
                   "chains": [dict({"name": n, "chain_id": c, "rpc": nodes[n].url,
                                    "start_block": 0},
                                   **({"native_token": sym} if sym != "ETH" else {}))
                              for n, (c, sym) in CHAINS.items()]}
            path = os.path.join(tmp, "chains.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            log = open(os.path.join(tmp, "run.log"), "w")
            # --price-coin-id names ETH's coin: the BNB chain keeps binancecoin (not ethereum)
            proc = subprocess.Popen([bp, "run", "--config", path, "--price-url", srv.url,
                                     "--price-coin-id", "ethereum",
                                     "--price-interval", "0.2", "--price-max-age", str(MAX_AGE)]
                                    + KEEP, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            since = {name: node.block_number() + 1 for name, node in nodes.items()}
            for r in range(ROUNDS):
                t += 1200
                heads = {name: mine_at(node, wls[name], t + 7 * i, 3)
                         for i, (name, node) in enumerate(nodes.items())}
                wait_until(lambda: proc.poll() is None and written(outputs, heads), 90,
                           f"round {r}: both chains' blocks written")
                srv.clock = t - 60
                asked(srv, 3)  # the third answered after the second: the point is known
                # a chain takes the points learnt meanwhile with its next batch: blocks until
                # a round of them stored no new point (every chain took every stored point)
                for k in range(10):
                    before = [all_prices(o) for o in outputs]
                    heads = {name: mine_at(node, wls[name], t + 300 + 10 * k + 3 * i, 1)
                             for i, (name, node) in enumerate(nodes.items())}
                    wait_until(lambda: proc.poll() is None and written(outputs, heads), 90,
                               f"round {r}: the blocks after the price written")
                    if k and before == [all_prices(o) for o in outputs]:
                        break
                for o in outputs:
                    for sym, have in all_prices(o).items():
                        if t - 60 not in dict(have):
                            raise Mismatch(f"round {r}: {o['name']}: the {sym} price at {t - 60} "
                                           "was not stored")
                check_round(f"round {r}", nodes, outputs, since)
            if proc.poll() is not None:
                raise Mismatch(f"blockpipe exited {proc.returncode}")
            with srv.lock:
                ids = {q.get("ids") for p, q, _ in srv.requests if p.endswith("/simple/price")}
                coins = {p.split("/")[4] for p, _, _ in srv.requests
                         if p.endswith("/market_chart/range")}
            if coins - {"ethereum", "binancecoin"}:
                raise Mismatch(f"the range endpoint was asked for coins {coins}")
            if ids != {"ethereum,binancecoin"}:
                raise Mismatch(f"/simple/price asked for ids {ids}, want ethereum,binancecoin "
                               "in one request")
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
            for n in nodes.values():
                n.stop()
    print("PASS")


if __name__ == "__main__":
    main()
