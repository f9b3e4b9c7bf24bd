"""Kafka's transactional ids across processes (issue 13 part 6; docs/ARCHITECTURE.md "Chains
over several hosts"), on librdkafka's mock cluster.

Two simnode chains (k1, k2: a block every 0.2 s) in one `chains:` config, one Kafka output.
- Process A runs `--shard 1/2` (k1), process B `--shard 2/2` (k2), both with the default
  transactional id: each logs an id of its own, derived from its checkpoint name and chains
  (the ids differ and name the chain), and both produce into the same topics at once, neither
  fenced (no "fenced" line), both chains' checkpoints move, and each warns at start that no
  output holds a chain writer lock (Kafka has none). The mock cluster does not fence by
  itself (below), so the ids logged are what shows that two shards never share one.
- B stops (SIGTERM, exit 0). A's next commit is answered PRODUCER_FENCED, as a broker answers
  the older of two producers with one transactional id once the newer one has called
  init_transactions (a host started twice, or two hosts given one id). librdkafka 2.0.2's mock
  cluster does not fence by itself: it gives every InitProducerId a producer id of its own, so
  two processes with one id both write there (tried: both went on); the test makes it answer
  as a broker would (tests/tools/kafka_mock.c "fail"). A must say so (an error line naming
  its id and saying it was fenced), stop writing k1 (exit 1: its only chain stopped) and make
  no new producer (that would fence the newer one back, and the two would take turns).
- Process C then runs A's shard with the default id: it logs A's id (the same shard restarted,
  on any host, has the same id, so its init_transactions would fence A and abort what A left
  open) and resumes k1 from the last checkpoint record. Beside it, D runs B's shard with
  `--kafka-transactional-id bp-host-b`: the explicit id is the one it uses, and it resumes k2.
- In the end (C and D stopped with SIGTERM, exit 0), a read-committed consumer of each chain
  (tests/tools/kafka.py: the records of transactions that wrote a checkpoint record) holds
  blocks 0..checkpoint of the chain's node, each once, in order, with its transactions.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from kafka import KafkaMock, checkpoint_of  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from pgcheck import RunProc as Proc  # noqa: E402
from simnode import Simnode  # noqa: E402
from streamcheck import kafka_view  # noqa: E402

CHAINS = ["k1", "k2"]
PREFIX = "f_"
ENTITIES = ("blocks", "transactions")
HANG = 90



def txid(p):
    """The transactional id the process's Kafka output logged at start."""
    m = re.search(r"transactional\.id ([^\s',()]+)", p.text())
    if not m:
        raise Fail(f"{p.name} logged no transactional.id:\n{tail(p.path)}")
    return m.group(1)


def cp(k, chain):
    got = checkpoint_of(k, chain, prefix=PREFIX)
    return got[0] if got else -1


def node_chain(node, upto):
    """[{hash, parent_hash, txs}] of blocks 0..upto (streamcheck.ChainView.check's shape)."""
    blocks = rowcheck.rpc_batch(node.urls[0], [("eth_getBlockByNumber", [hex(n), False])
                                               for n in range(upto + 1)])
    return [{"hash": b["hash"], "parent_hash": b["parentHash"],
             "txs": [h.lower() for h in b["transactions"]], "logs": 0} for b in blocks]


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-kafka-fencing-")
    nodes, procs = [], []
    with KafkaMock() as k:
        try:
            for i in range(len(CHAINS)):
                nodes.append(Simnode(bp, ["--chain-id", str(4001 + i), "--seed", str(40 + i),
                                          "--block-time", "0.2", "--start-head", "10",
                                          "--txs-per-block", "1-3"]))
            cfg = {"output": k.url(f"entities={','.join(ENTITIES)}&prefix={PREFIX}"),
                   "start_block": 0, "poll_interval": 0.2, "stats_interval": 5,
                   "chains": [{"name": c, "chain_id": 4001 + i, "rpc": nodes[i].urls[0]}
                              for i, c in enumerate(CHAINS)]}
            path = os.path.join(tmp.name, "chains.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            run = ["--config", path]
            a = Proc(bp, tmp.name, "A", run + ["--shard", "1/2"])
            procs.append(a)
            b = Proc(bp, tmp.name, "B", run + ["--shard", "2/2"])
            procs.append(b)
            wait_for(lambda: a.alive() and b.alive() and min(cp(k, c) for c in CHAINS) >= 20,
                     HANG, "A and B both writing their chain")
            ida, idb = txid(a), txid(b)
            if ida == idb or "k1" not in ida or "k2" not in idb:
                raise Fail(f"shards 1/2 and 2/2 use default ids {ida!r} and {idb!r}: want two "
                           f"different ids, each naming its chain")
            for p in (a, b):
                if "fenced" in p.text():
                    raise Fail(f"{p.name} was fenced with an id of its own:\n{tail(p.path)}")
                # Kafka alone keeps no second process off a chain: each says so at start
                if "no output holds a chain writer lock (Kafka)" not in p.text():
                    raise Fail(f"{p.name} did not warn that no output locks:\n{tail(p.path)}")
            print(f"A ({ida}) and B ({idb}), default ids, produce at once, unfenced:",
                  {c: cp(k, c) for c in CHAINS})

            b.stop()
            k.fail(26, 90)  # EndTxn: PRODUCER_FENCED
            try:
                rc = a.p.wait(timeout=HANG)
            except subprocess.TimeoutExpired:
                raise Fail(f"A still runs after its commit was fenced:\n{tail(a.path)}") from None
            text = a.text()
            if rc != 1 or "was fenced" not in text or f"'{ida}'" not in text:
                raise Fail(f"A exited {rc}, want 1 with an error line saying it was fenced, "
                           f"naming {ida}:\n{tail(a.path)}")
            if text.count("init_transactions") or "a new producer is made" in text:
                raise Fail(f"A made a new producer after it was fenced:\n{tail(a.path)}")
            print("A fenced:", [ln for ln in text.splitlines() if "was fenced" in ln][0][:300])
            at, bt = cp(k, "k1"), cp(k, "k2")
            c = Proc(bp, tmp.name, "C", run + ["--shard", "1/2"])
            procs.append(c)
            d = Proc(bp, tmp.name, "D", run + ["--shard", "2/2",
                                               "--kafka-transactional-id", "bp-host-b"])
            procs.append(d)
            wait_for(lambda: c.alive() and d.alive() and cp(k, "k1") >= at + 10
                     and cp(k, "k2") >= bt + 10, HANG, "C writing k1 after A, D k2 after B")
            if txid(c) != ida:
                raise Fail(f"C, A's shard restarted, uses {txid(c)!r}, not A's {ida!r}")
            if txid(d) != "bp-host-b":
                raise Fail(f"D was given --kafka-transactional-id bp-host-b but uses {txid(d)!r}")
            for p in (c, d):
                if "fenced" in p.text():
                    raise Fail(f"{p.name} was fenced:\n{tail(p.path)}")
            print(f"C ({txid(c)}, A's id) took k1 over at {at}, now at {cp(k, 'k1')}; "
                  f"D (bp-host-b, explicit) took k2 over at {bt}, now at {cp(k, 'k2')}")
            d.stop()
            c.stop()
            for i, chain in enumerate(CHAINS):
                top = cp(k, chain)
                view = kafka_view(k, chain, PREFIX, ENTITIES, f"kafka {chain}", chains=CHAINS)
                view.check(node_chain(nodes[i], top), "the end", ENTITIES)
                print(f"{chain}: blocks 0..{top} once each, in order, with their transactions")
        finally:
            for p in procs:
                p.kill()
            for n in nodes:
                n.kill()
            tmp.cleanup()
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
