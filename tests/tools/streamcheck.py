"""streamcheck.py - the consumer side of the stream outputs' tests (Redis, Kafka): a consumer
that applies each `apply` entry and undoes each `revert`, checked against the node's chain.
stdlib only.

    view = ChainView("redis blocks")
    view.feed("blocks", {"type": "apply", "number": "3", "hash": "0x..", "data": "{...}"})
    view.check(node_chain(node), "after reorg 2")    # raises Fail naming the first difference

An entry (a stream entry's fields, or a pub/sub / Kafka message parsed from JSON) has type,
chain, number, hash, parent_hash and data (the row as JSON text or an object). What the
view refuses, as a consumer would be hurt by it: a block applied twice without a revert in
between (a duplicate), a block applied on top of a parent it does not hold, a revert of a
block it does not hold, a transaction or log delivered twice for one block, a block's metrics row delivered twice.
The `metrics` entity (chain_metrics_block rows) is checked against metricscheck.py's
recomputation from the node's blocks and receipts by check_metrics().
"""

from __future__ import annotations

import json

from pgcheck import Fail


def _data(e):
    d = e.get("data")
    if isinstance(d, str):
        d = json.loads(d)
    return d


class ChainView:
    def __init__(self, label: str, chain: str | None = None):
        self.label = label
        self.chain = chain  # when given, every entry must name it
        self.blocks: dict[int, tuple[str, str]] = {}  # number -> (hash, parent_hash)
        self.txs: dict[str, list[str]] = {}           # block hash -> tx hashes in order
        self.logs: dict[str, set] = {}                # block hash -> {(tx index, log index)}
        self.metrics: dict[str, dict] = {}            # block hash -> chain_metrics_block row
        self.entries = 0
        self.reverts = 0
        self.applies = {"blocks": 0, "transactions": 0, "logs": 0, "metrics": 0}

    def feed(self, entity: str, e: dict):
        self.entries += 1
        typ, n, h = e["type"], int(e["number"]), e["hash"]
        where = f"{self.label}: {entity} entry #{self.entries} ({typ} {n} {h[:12]})"
        if self.chain is not None and e.get("chain") != self.chain:
            raise Fail(f"{where}: names chain {e.get('chain')!r}, want {self.chain!r}")
        if typ == "revert":
            self.reverts += 1
            if entity == "blocks":
                if self.blocks.get(n, (None,))[0] != h:
                    raise Fail(f"{where}: revert of a block the consumer does not hold "
                               f"(it holds {self.blocks.get(n)})")
                if n + 1 in self.blocks:
                    raise Fail(f"{where}: revert below block {n + 1}, which is still held")
                del self.blocks[n]
            elif entity == "transactions":
                self.txs.pop(h, None)
            elif entity == "metrics":
                self.metrics.pop(h, None)
            else:
                self.logs.pop(h, None)
            return
        if typ != "apply":
            raise Fail(f"{where}: type {typ!r}")
        d = _data(e)
        self.applies[entity] += 1
        if entity == "blocks":
            if n in self.blocks:
                raise Fail(f"{where}: block {n} applied while {self.blocks[n][0]} is held "
                           f"(a duplicate, or a missing revert)")
            if n > 0 and n - 1 in self.blocks and self.blocks[n - 1][0] != e["parent_hash"]:
                raise Fail(f"{where}: parent {e['parent_hash']} is not the held block {n - 1}")
            if d["hash"] != h or d["number"] != n:
                raise Fail(f"{where}: data names block {d['number']} {d['hash']}")
            self.blocks[n] = (h, e["parent_hash"])
        elif entity == "transactions":
            lst = self.txs.setdefault(h, [])
            if d["hash"] in lst:
                raise Fail(f"{where}: transaction {d['hash']} delivered twice")
            if d["block_hash"] != h:
                raise Fail(f"{where}: transaction of block {d['block_hash']}")
            lst.append(d["hash"])
        elif entity == "metrics":
            if h in self.metrics:
                raise Fail(f"{where}: the metrics row of block {h} delivered twice")
            if d["block_hash"] != h or d["block_number"] != n:
                raise Fail(f"{where}: metrics row of block {d['block_number']} {d['block_hash']}")
            self.metrics[h] = d
        else:
            s = self.logs.setdefault(h, set())
            k = (d["transaction_index"], d["log_index"])
            if k in s:
                raise Fail(f"{where}: log {k} delivered twice")
            s.add(k)

    def check(self, chain: list, label: str, entities=("blocks",)):
        """The view holds exactly chain (pgcheck.node_chain): every block with its hash and
        parent, and for the entities carried the tx hashes in order and the log counts."""
        where = f"{self.label}: {label}"
        if sorted(self.blocks) != list(range(len(chain))):
            got = sorted(self.blocks)
            raise Fail(f"{where}: holds blocks {got[:3]}..{got[-3:]} ({len(got)}), "
                       f"want 0..{len(chain) - 1}")
        for n, want in enumerate(chain):
            if self.blocks[n] != (want["hash"], want["parent_hash"]):
                raise Fail(f"{where}: block {n} is {self.blocks[n]}, node has "
                           f"{(want['hash'], want['parent_hash'])}")
        canon = {b["hash"] for b in chain}
        if "transactions" in entities:
            for h in self.txs:
                if self.txs[h] and h not in canon:
                    raise Fail(f"{where}: holds transactions of orphaned block {h}")
            for n, want in enumerate(chain):
                if self.txs.get(want["hash"], []) != want["txs"]:
                    raise Fail(f"{where}: block {n} txs {self.txs.get(want['hash'])}, node has "
                               f"{want['txs']}")
        if "logs" in entities:
            for h in self.logs:
                if self.logs[h] and h not in canon:
                    raise Fail(f"{where}: holds logs of orphaned block {h}")
            for n, want in enumerate(chain):
                if len(self.logs.get(want["hash"], ())) != want["logs"]:
                    raise Fail(f"{where}: block {n} has {len(self.logs.get(want['hash'], ()))} "
                               f"logs, node has {want['logs']}")


def check_metrics(view: ChainView, node, origin: str, label: str, prices=(), max_age=7200):
    """The view holds exactly one metrics row per canonical block (none of an orphan), each
    equal to metricscheck's recomputation from the node's blocks and receipts, its 256-bit
    columns decimal strings and its floats JSON numbers; returns (rows, priced rows)."""
    from metricscheck import LAYOUT, Expected, Mismatch, _value, compare  # noqa: PLC0415
    head = node.block_number()
    blocks = [node.block(n, True) for n in range(head + 1)]
    receipts = [node.receipts(n) for n in range(head + 1)]
    where = f"{view.label}: {label}"
    canon = {b["hash"] for b in blocks}
    if set(view.metrics) != canon:
        extra = sorted(set(view.metrics) - canon)[:3]
        missing = sorted(canon - set(view.metrics))[:3]
        raise Fail(f"{where}: metrics rows for {len(view.metrics)} blocks, want {len(canon)}: "
                   f"orphans {extra}, missing {missing}")
    got = {}
    for d in view.metrics.values():
        if d["origin_key"] != origin:
            raise Fail(f"{where}: metrics row with origin_key {d['origin_key']!r}")
        for c in ("fees_paid_wei", "base_fee_per_gas", "median_gas_price"):
            if d[c] is not None and not isinstance(d[c], str):
                raise Fail(f"{where}: {c} is {d[c]!r}, want a decimal string")
        for c in ("fees_paid_native", "fees_paid_usd"):
            if d[c] is not None and not isinstance(d[c], (int, float)):
                raise Fail(f"{where}: {c} is {d[c]!r}, want a JSON number")
        got[d["block_number"]] = {c: _value(c, d[c]) for c in LAYOUT["chain_metrics_block"][1]}
    exp = Expected(blocks, receipts, origin, prices=prices, max_age=max_age)
    try:
        compare(exp, {"chain_metrics_block": got}, only=("chain_metrics_block",),
                label=f"{where}: ")
    except Mismatch as e:
        raise Fail(str(e)) from None
    return len(got), sum(r["fees_paid_usd"] is not None for r in got.values())


def latest_tx(chain: list):
    """(block hash, tx hash) of the newest canonical transaction, None when none."""
    for b in reversed(chain):
        if b["txs"]:
            return b["hash"], b["txs"][-1]
    return None


# ---- Redis ------------------------------------------------------------------------------

ENTITIES = ("blocks", "transactions", "logs")


class RedisConsumer:
    """Reads the streams {prefix}{entity}:{chain} from the start with XREAD, as a consumer
    that keeps its last id would, into a ChainView."""

    def __init__(self, r, chain: str, prefix: str = "blockpipe:", entities=ENTITIES,
                 label: str = "redis streams"):
        self.r, self.chain, self.prefix, self.entities = r, chain, prefix, entities
        self.view = ChainView(label, chain)
        self.last = {e: "0" for e in entities}

    def poll(self):
        """Everything added since the last poll."""
        from redis import entries  # noqa: PLC0415 - tests/tools on the path
        keys = [f"{self.prefix}{e}:{self.chain}" for e in self.entities]
        with self.r.connect() as c:
            while True:
                got = c.call("XREAD", "COUNT", "1000", "STREAMS", *keys,
                             *[self.last[e] for e in self.entities])
                if not got:
                    return
                for key, ents in got:
                    e = key[len(self.prefix):].rsplit(":", 1)[0]
                    for eid, fields in entries(ents):
                        self.view.feed(e, fields)
                        self.last[e] = eid


class Subscriber:
    """A thread SUBSCRIBEd to the {prefix}{entity}_updates:{chain} channels, folding every
    message into a ChainView (errors kept for check())."""

    def __init__(self, r, chain: str, prefix: str = "blockpipe:", entities=ENTITIES):
        import threading  # noqa: PLC0415
        self.view = ChainView("redis pub/sub")
        self.error = None
        self.count = 0
        self.conn = r.connect(timeout=None)
        chans = [f"{prefix}{e}_updates:{chain}" for e in entities]
        self.entity_of = dict(zip(chans, entities))
        self.conn.send("SUBSCRIBE", *chans)
        for _ in chans:
            self.conn.reply()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                kind, chan, payload = self.conn.reply()
                if kind != "message":
                    continue
                with self.lock:
                    self.count += 1
                    self.view.feed(self.entity_of[chan], json.loads(payload))
        except Exception as e:  # noqa: BLE001 - reported by check()
            if not isinstance(e, (OSError, ConnectionError)) or self.error is None:
                self.error = self.error or e

    def check(self, chain: list, label: str, entities=ENTITIES):
        with self.lock:
            if self.error and not isinstance(self.error, (OSError, ConnectionError)):
                raise Fail(f"redis pub/sub: {self.error}")
            self.view.check(chain, label, entities)

    def close(self):
        self.conn.close()


def redis_checkpoint(r, chain: str, prefix: str = "blockpipe:", name: str = "redis"):
    """(number, hash) of the output's checkpoint, None when it has none."""
    h = r.call("HGETALL", f"{prefix}checkpoint:{name}:{chain}")
    d = dict(zip(h[0::2], h[1::2]))
    return (int(d["number"]), d["hash"]) if "number" in d else None


# ---- Kafka ------------------------------------------------------------------------------

def kafka_view(k, chain: str, prefix: str = "", entities=ENTITIES, label: str = "kafka",
               recs=None, chains=None):
    """A consumer of the topics {prefix}{entity} from the beginning, read committed (on the
    mock cluster: the records of transactions that wrote a checkpoint record, see
    tests/tools/kafka.py), folded into a ChainView. A chain's records must all be in one
    partition of each topic (keyed by the chain): their order is then the order written.
    chains: the topics are shared by these chains (each record keyed by one of them, its
    value naming the same); `chain`'s records are taken. recs: the records already read."""
    from kafka import committed  # noqa: PLC0415 - tests/tools on the path
    view = ChainView(label, chain)
    if recs is None:
        recs = committed(k, k.consume(*[prefix + e for e in entities]), prefix)
    recs = sorted(recs, key=lambda r: (r["topic"], r["partition"], r["offset"]))
    for r in recs:
        if chains is not None and (r["key"] not in chains or r["value"]["chain"] != r["key"]):
            raise Fail(f"{label}: {r['topic']} record with key {r['key']}, chain "
                       f"{r['value']['chain']}; want one of {sorted(chains)} in both")
    for e in entities:
        mine = [r for r in recs if r["topic"] == prefix + e
                and (chains is None or r["key"] == chain)]
        parts = {r["partition"] for r in mine}
        if len(parts) > 1:
            raise Fail(f"{label}: topic {prefix + e}: chain {chain} in partitions {sorted(parts)}")
        for r in mine:
            if r["key"] != chain or r["value"]["chain"] != chain:
                raise Fail(f"{label}: {e} record with key {r['key']}, chain "
                           f"{r['value']['chain']}; want {chain}")
            view.feed(e, r["value"])
    return view


# ---- what the stream tests share ---------------------------------------------------------

def reorg_txs(rng, wl, depth):
    """anvil_reorg's replacement transactions: a transfer and a call emitting logs, each in a
    random block of the new branch."""
    from anvil import log_calldata  # noqa: PLC0415
    a = wl.accounts
    pairs = [[{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
               "value": hex(rng.randrange(1, 10 ** 18))}, rng.randrange(depth)]]
    if wl.contracts:
        pairs.append([{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": log_calldata(rng, rng.randrange(1, 5))}, rng.randrange(depth)])
    return pairs


def kill_rounds(cmd, checkpoint, head, rounds, rng, log_path, hang=120):
    """Rounds of `cmd` (a backfill up to head) SIGKILLed a random 0-20 ms after checkpoint()
    ((number, hash) or None) passed a random block a little above the last one; returns how
    many kills landed before the end of the range."""
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import time  # noqa: PLC0415
    mid = 0
    for rnd in range(rounds):
        cp = checkpoint()
        at = (cp[0] if cp else 0) + rng.randrange(2, 10)
        with open(log_path, "w") as log:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            end = time.monotonic() + hang
            while p.poll() is None and time.monotonic() < end:
                now = checkpoint()
                if now and now[0] >= at:
                    time.sleep(rng.randrange(0, 20) / 1000)
                    break
            p.send_signal(signal.SIGKILL)
            p.wait()
        cp = checkpoint()
        mid += cp is not None and cp[0] < head
        print(f"  round {rnd}: killed at checkpoint {cp and cp[0]}")
    return mid
