"""Several chains in one process into ClickHouse, Redis, Kafka and JSON lines (issue 13 part 1).

Three anvil chains (chain ids 1301, 1302, 1303, random workloads) are followed by one
`blockpipe run --config FILE` (a `chains:` list a1, a2, a3) into one ClickHouse database
(tests/tools/clickhouse.py), one Redis (streams, tests/tools/redis.py), one Kafka (librdkafka's
mock cluster, tests/tools/kafka.py) and one JSON-lines directory, all shared by the chains.
Once every output's checkpoint of every chain is its node's head, per chain and output:
- ClickHouse: the rows of the chain (FINAL) are exactly its node's blocks, transactions and
  logs, every column equal, `chain` the chain's name (tests/tools/rowcheck.py);
- Redis streams {prefix}{entity}:{chain} and Kafka topics (keyed by the chain), read from the
  start as a consumer would: every block applied exactly once, in order (each extends the
  one before), every entry naming its chain, the replay equal to the node's chain;
- blocks.jsonl replayed (the chain's lines; every line names one of the chains) is the node's
  chain, each block's rows once per write, every field equal.
Then a2 is reorganised (anvil_reorg depth 3 with new transactions, +1 block) while a1 gets a
block: afterwards every output holds each chain's node chain again, a2's old branch is
reverted (Redis/Kafka revert entries, JSON-lines revert lines; ClickHouse holds none of it) and
no output holds a revert (those, or ClickHouse -1 rows not merged away yet) of a1 or a3.
SIGINT exits 0.
An etl-csv output (ethereum-etl's columns: no chain column) shared by two chains is refused
at start, naming the output and the way out; with one chain it is accepted.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from anvil import Anvil, Workload  # noqa: E402
from clickhouse import ClickHouse  # noqa: E402
from kafka import KafkaMock, checkpoint_of, committed  # noqa: E402
from pgcheck import Fail, blockpipe_bin, node_chain, tail, wait_for  # noqa: E402
from redis import Redis  # noqa: E402
from streamcheck import RedisConsumer, kafka_view, redis_checkpoint, reorg_txs  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1301"))
NAMES = ["a1", "a2", "a3"]
ENTITIES = ("blocks", "transactions", "logs")
DB = "multi"
PREFIX = "bp:"
HANG = 90


def ch_cps(ch):
    try:
        rows = ch.sql("SELECT chain, number, concat('0x', lower(hex(hash))) FROM checkpoints "
                      "ORDER BY seq", DB)
    except RuntimeError:
        return {}  # no tables yet
    return {c: (int(n), h) for c, n, h in rows}  # the newest row of each chain wins


def jsonl_cps(d):
    try:
        with open(os.path.join(d, "checkpoint.json")) as f:
            return {c: (v["number"], v["hash"]) for c, v in json.load(f)["chains"].items()}
    except (OSError, ValueError, KeyError):
        return {}


def checkpoints(ch, r, k, jdir):
    """{output: {chain: (number, hash)}}."""
    kafka = {c: checkpoint_of(k, c, prefix=PREFIX) for c in NAMES}
    return {"clickhouse": ch_cps(ch), "redis": {c: redis_checkpoint(r, c, PREFIX) for c in NAMES},
            "kafka": kafka, "jsonl": jsonl_cps(jdir)}


def caught_up(nodes, ch, r, k, jdir, proc, err_path, label):
    want = {}
    for name, node in nodes.items():
        h = node.block_number()
        want[name] = (h, node.block(h, False)["hash"])

    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        cps = checkpoints(ch, r, k, jdir)
        return all(cps[o].get(c) == w for o in cps for c, w in want.items())
    try:
        wait_for(ok, HANG, f"{label}: every output's checkpoint of every chain at its head", 0.3)
    except Fail as e:
        raise Fail(f"{e}\nwant {want}\nhave {checkpoints(ch, r, k, jdir)}\n{tail(err_path)}") \
            from None


def check_all(nodes, ch, r, k, jdir, label):
    """Per chain and output: exactly the node's chain, in order, once, named by the chain."""
    ch_rows = rowcheck.ch_rows(ch, DB)
    kafka_recs = committed(k, k.consume(*[PREFIX + e for e in ENTITIES]), PREFIX)
    reverts = {}
    for name, node in nodes.items():
        head = node.block_number()
        data = rowcheck.fetch(node.url, range(head + 1))
        chain = node_chain(node)
        mine = {t: [x for x in ch_rows[t] if x["chain"] == name] for t in ENTITIES}
        counts = rowcheck._compare_all(f"{label}: clickhouse chain {name}", mine, data,
                                       rowcheck.ch_value, name)
        rc = RedisConsumer(r, name, PREFIX, ENTITIES, label=f"{label}: redis {name}")
        rc.poll()
        rc.view.check(chain, "", ENTITIES)
        kv = kafka_view(k, name, PREFIX, ENTITIES, f"{label}: kafka {name}", recs=kafka_recs,
                        chains=NAMES)
        kv.check(chain, "", ENTITIES)
        rowcheck.jsonl_exact(jdir, data, name, label=f"{label}: jsonl {name}", chains=NAMES)
        jrev = _jsonl_reverts(jdir, name)
        ch_neg = int(ch.sql(f"SELECT count() FROM blocks WHERE chain = '{name}' AND _sign = -1",
                            DB)[0][0])
        reverts[name] = {"redis": rc.view.reverts, "kafka": kv.reverts, "jsonl": jrev,
                         "clickhouse": ch_neg}
        print(f"{label}: chain {name}: 0..{head}, {counts['transactions']} txs, "
              f"{counts['logs']} logs in every output; reverts {reverts[name]}")
    return reverts


def _jsonl_reverts(jdir, name):
    with open(os.path.join(jdir, "blocks.jsonl")) as f:
        return sum(1 for o in map(json.loads, f) if o["type"] == "revert" and o["chain"] == name)


def config(path, nodes, urls):
    chains = [{"name": n, "chain_id": 1301 + i, "rpc": nodes[n].url, "start_block": 0,
               "reorg_window": 16} for i, n in enumerate(NAMES)]
    cfg = {"outputs": urls, "confirmations": 0, "poll_interval": 0.2, "stats_interval": 2,
           "max_memory": "256MiB", "workers": 2, "chains": chains}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML


def etl_csv_refused(bp, tmp, nodes):
    path = os.path.join(tmp, "csv.json")
    outdir = os.path.join(tmp, "csv")
    config(path, nodes, [f"etl-csv:{outdir}"])
    p = subprocess.run([bp, "run", "--config", path], capture_output=True, text=True,
                       timeout=HANG, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    if p.returncode != 2 or f"etl-csv:{outdir}" not in out or "chain column" not in out \
            or "jsonl" not in out:
        raise Fail(f"etl-csv shared by 3 chains: exit {p.returncode}, want 2 naming the output, "
                   f"the missing chain column and jsonl:\n{out[-2000:]}")
    print("etl-csv shared by 3 chains refused:", [ln for ln in out.splitlines() if "etl-csv" in ln][0])
    p = subprocess.run([bp, "backfill", "--config", path, "--chain", "a1", "--from", "0",
                        "--to", "1"], capture_output=True, text=True, timeout=HANG,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0 or not os.path.exists(os.path.join(outdir, "blocks.csv")):
        raise Fail(f"etl-csv with one chain of the list (--chain a1): exit {p.returncode}:\n"
                   f"{(p.stdout + p.stderr)[-2000:]}")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-chains-outputs-")
    err_path = os.path.join(tmp.name, "run.log")
    jdir = os.path.join(tmp.name, "jsonl")
    proc = None
    with ClickHouse() as ch, Redis() as r, KafkaMock() as k, \
            Anvil(["--chain-id", "1301"]) as n1, Anvil(["--chain-id", "1302"]) as n2, \
            Anvil(["--chain-id", "1303"]) as n3:
        nodes = dict(zip(NAMES, (n1, n2, n3)))
        wls = {n: Workload(node, seed=SEED + i) for i, (n, node) in enumerate(nodes.items())}
        for wl in wls.values():
            wl.setup()
            for _ in range(rng.randrange(3, 7)):
                wl.mine_batch(rng.randrange(0, 5))
        etl_csv_refused(bp, tmp.name, nodes)
        path = os.path.join(tmp.name, "chains.json")
        ent = "entities=" + ",".join(ENTITIES)
        config(path, nodes, [ch.url(DB), r.url(query=f"{ent}&maxlen=0&prefix={PREFIX}"),
                             k.url(f"{ent}&prefix={PREFIX}"), f"jsonl://{jdir}"])
        try:
            with open(err_path, "w") as err:
                proc = subprocess.Popen([bp, "run", "--config", path], stdin=subprocess.DEVNULL,
                                        stdout=err, stderr=err)
            for wl in wls.values():
                wl.mine_batch(rng.randrange(1, 4))
            caught_up(nodes, ch, r, k, jdir, proc, err_path, "initial sync")
            check_all(nodes, ch, r, k, jdir, "initial sync")
            n2.rpc("anvil_reorg", [3, reorg_txs(rng, wls["a2"], 3)])
            wls["a2"].after_reorg()
            wls["a2"].mine_batch(1)
            wls["a1"].mine_batch(2)
            caught_up(nodes, ch, r, k, jdir, proc, err_path, "a2 reorganised")
            reverts = check_all(nodes, ch, r, k, jdir, "a2 reorganised")
            # ClickHouse's -1 rows may be merged away with their +1 rows already (the exact
            # check above found none of the old branch): the stream and file outputs must say
            if not all(v for o, v in reverts["a2"].items() if o != "clickhouse"):
                raise Fail(f"a2's reorg did not reach every output as reverts: {reverts['a2']}")
            for name in ("a1", "a3"):
                if any(reverts[name].values()):
                    raise Fail(f"a2's reorg reverted {name}'s data: {reverts[name]}")
            proc.send_signal(signal.SIGINT)
            if proc.wait(HANG) != 0:
                raise Fail(f"exit {proc.returncode} after SIGINT:\n{tail(err_path)}")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            tmp.cleanup()
    print("OK: three chains in one process into ClickHouse, Redis, Kafka and JSON lines: each "
          "chain exactly once, in order, named; a2's reorg reverted a2 alone")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, TimeoutError, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
