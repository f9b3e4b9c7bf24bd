"""--api with an Arch chain (docs/API.md "Arch Network", docs/ARCH.md): REST over the arch_*
tables and push (WebSocket and SSE) of its blocks, forks, rollbacks and re-applies.

simnode --chain-type arch grows a block every 0.3 s from height 20 (1-6 transactions each),
and changes only when the test asks (simnode's control methods). blockpipe follows it with --ws
into SQLite with --api; a WebSocket and an SSE subscriber (topics=blocks,transactions,reorgs)
are attached from the start. Once it has caught up the test forks the node below the run's
checkpoint (simnode_fork), waited for on the new branch, then rolls back a committed block,
re-applies it and rolls it back again (simnode_rollback / simnode_reapply), each waited for in
the tables. Then:
- both subscribers get blocks and transactions as `apply`, a fork as a `reorgs` message with
  `revert`s, and each rollback / re-apply as a transactions `revert` (reason rollback) /
  `apply` (reason reapply) of the listed transactions;
- after the last rollback (its event stored): every transaction /api/arch/transactions
  lists (paged by cursor) in a block the node still has has the node's rollback_status as
  rolled_back, and the blocks below the forks have the node's hashes, previous hashes and
  transaction lists;
- with the node stopped (SIGSTOP), what each subscriber built from its messages (blocks by
  height, transactions by txid with rolled_back) becomes exactly what /api/arch/blocks and
  /api/arch/transactions answer for the heights it saw (compared until it is: 90 s guard);
- /api/arch/account_updates, /api/arch/events (both orders, paged) and the filters (account,
  transaction, topic, rolled_back), /api/arch/blocks/{height|hash|latest} and
  /api/arch/transactions/{txid} (with its account_updates) answer the SQLite rows; bad
  cursors and ids are 400, unknown ones 404;
- a `chains:` config with an Arch chain and `api:` serves it (?chain=NAME).
Stdlib only; needs BLOCKPIPE.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from apiclient import API_ANY, SSE, WS, Api, api_port, wait_http  # noqa: E402
from simnode import Simnode  # noqa: E402
import archcheck  # noqa: E402
import test_arch_run as arch  # noqa: E402
import test_arch_ws as ws  # noqa: E402

HANG = 90


def fail(msg):
    raise AssertionError(msg)


class Collector(threading.Thread):
    """Every push message of one client, as they come."""

    def __init__(self, name, client):
        super().__init__(daemon=True)
        self.name, self.client, self.msgs, self.stop, self.last = name, client, [], False, 0.0

    def run(self):
        while not self.stop:
            try:
                if isinstance(self.client, WS):
                    m = self.client.recv_json(timeout=1)
                else:
                    ev = self.client.next_event(timeout=1)
                    if ev is None:
                        return
                    m = ev["data"]
            except (socket.timeout, TimeoutError):
                continue
            except Exception:  # closed
                return
            self.msgs.append(m)
            self.last = time.monotonic()

    def kinds(self):
        k = set()
        for m in list(self.msgs):
            k.add((m["topic"], m["type"], m.get("reason")))
        return k


def stored(db, txids, back):
    """Every one of txids stored with rolled_back = back."""
    ids = ",".join(f"'{t}'" for t in txids)
    return len(sql_rows(db, f"SELECT txid FROM arch_transactions WHERE rolled_back = {int(back)} "
                            f"AND txid IN ({ids})")) == len(txids)


def fork(node, db, cols, proc):
    """A fork (simnode_fork) replacing a block the run committed (ws.fork_committed); waited
    for until the run stored the new branch's first block and both subscribers got its
    reorg."""
    f = ws.fork_committed(node, lambda: arch.checkpoint(db)[0])
    ws.wait_for(f"the fork at {f['fork_point']}: the run's tables on the new branch",
                lambda: sql_rows(db, "SELECT hash FROM arch_blocks WHERE height = ?",
                                 (f["fork_point"] + 1,)) == [{"hash": f["hashes"][0]}], proc)
    ws.wait_for("the fork's reorg pushed to both subscribers",
                lambda: all(("reorgs", "reorg", None) in c.kinds() for c in cols), proc)
    print(f"fork: blocks above {f['fork_point']} replaced (depth {f['depth']})", flush=True)


def replica(msgs):
    """Blocks {height: hash} and transactions {txid: (height, rolled_back)} from messages."""
    blocks, txs = {}, {}
    for m in msgs:
        t, ty = m["topic"], m["type"]
        if t == "blocks" and ty == "apply":
            blocks[m["block_number"]] = m["block_hash"]
        elif t == "blocks" and ty == "revert":
            if blocks.get(m["block_number"]) == m["block_hash"]:
                del blocks[m["block_number"]]
        elif t == "transactions" and m.get("reason") == "rollback":
            if m["txid"] in txs:
                txs[m["txid"]] = (txs[m["txid"]][0], True)
        elif t == "transactions" and m.get("reason") == "reapply":
            if m["txid"] in txs:
                txs[m["txid"]] = (txs[m["txid"]][0], False)
        elif t == "transactions" and ty == "apply":
            d = m["data"]
            txs[d["txid"]] = (d["block_height"], d["rolled_back"])
        elif t == "transactions" and ty == "revert":  # the block left the chain
            for k in [k for k, v in txs.items() if v[0] == m["block_number"]]:
                del txs[k]
    return blocks, txs


def pages(api, path, limit=7):
    """Every row of a list endpoint, following next_cursor (each page at most limit rows)."""
    rows, cursor = [], None
    sep = "&" if "?" in path else "?"
    while True:
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        st, _, body = api.get(url)
        if st != 200:
            fail(f"GET {url}: {st} {body}")
        rows += body["data"]
        if body["count"] != len(body["data"]) or len(body["data"]) > limit:
            fail(f"GET {url}: count {body['count']} for {len(body['data'])} rows")
        cursor = body["next_cursor"]
        if not cursor:
            return rows


def sql_rows(db, sql, args=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def node_vs_rest(node, url, api, db, episode, r):
    """After the rollback r (simnode_rollback's answer) is stored: REST's transactions and
    stable blocks are the node's (the node makes no episode the test does not ask for)."""
    txs = pages(api, "/api/arch/transactions?order=asc", 500)
    # the blocks the node still has (one of the last few may be on a branch it just left)
    heights = sorted({t["block_height"] for t in txs})
    canon = dict(zip(heights, arch.call(url, [("get_block_hash", [h]) for h in heights])))
    txs = [t for t in txs if canon[t["block_height"]] == t["block_hash"]]
    view = []
    for i in range(0, len(txs), 200):
        view += arch.call(url, [("get_processed_transaction", [t["txid"]]) for t in txs[i:i + 200]])
    cp = arch.checkpoint(db)[0]
    blocks = [b for b in pages(api, "/api/arch/blocks?order=asc", 500) if b["height"] <= cp - 4]
    hashes = arch.call(url, [("get_block_hash", [b["height"]]) for b in blocks])
    nblocks = arch.call(url, [("get_block", [h]) for h in hashes])
    if node.stats()["episodes"] != episode:
        fail("the node made an episode the test did not ask for")
    wrong = [(t["txid"], t["rolled_back"]) for t, v in zip(txs, view)
             if t["rolled_back"] != (v["rollback_status"]["type"] == "rolledback")]
    if wrong:
        fail(f"{len(wrong)} of {len(txs)} REST transactions' rolled_back differ from the node: "
             f"{wrong[:3]}")
    by_block = {}
    for t in txs:
        by_block.setdefault(t["block_height"], []).append(t["txid"])
    for b, h, nb in zip(blocks, hashes, nblocks):
        listed = archcheck.block_txids(nb)
        if (b["hash"], b["previous_hash"], b["transaction_count"]) != \
                (h, archcheck.key_hex(nb["previous_block_hash"], "previous_block_hash"),
                 len(listed)) or by_block.get(b["height"], []) != listed:
            fail(f"REST block {b} differs from the node's {h} {nb}")
    back = sum(t["rolled_back"] for t in txs)
    print(f"REST vs node: {len(txs)} transactions ({back} rolled back) and {len(blocks)} blocks "
          f"as the node has them", flush=True)
    if back != len(r["txids"]):
        fail(f"{back} transactions rolled back, the node's last rollback {len(r['txids'])}")


def replicas_vs_rest(api, cols):
    """None when what each subscriber built from its messages is what REST answers for the
    heights it saw; else what differs."""
    rest_blocks = {b["height"]: b["hash"] for b in pages(api, "/api/arch/blocks?order=asc", 500)}
    rest_txs = {t["txid"]: (t["block_height"], t["rolled_back"])
                for t in pages(api, "/api/arch/transactions?order=asc", 500)}
    for c in cols:
        blocks, txs = replica(c.msgs)
        lo = min(blocks)
        want_b = {h: v for h, v in rest_blocks.items() if h >= lo}
        want_t = {k: v for k, v in rest_txs.items() if v[0] >= lo}
        if blocks != want_b:
            diff = sorted(set(blocks.items()) ^ set(want_b.items()))[:4]
            return f"{c.name}: its blocks from {lo} differ from /api/arch/blocks: {diff}"
        if txs != want_t:
            diff = sorted(set(txs.items()) ^ set(want_t.items()))[:4]
            return f"{c.name}: its transactions differ from /api/arch/transactions: {diff}"
    return None


def rest_vs_sql(api, db):
    key = "block_height, tx_index, account"
    got = pages(api, "/api/arch/account_updates?order=asc")
    want = sql_rows(db, f"SELECT * FROM arch_account_updates ORDER BY {key}")
    if got != want:
        fail(f"/api/arch/account_updates: {len(got)} rows, SQLite {len(want)}: "
             f"{[r for r in got if r not in want][:2]}")
    down = pages(api, "/api/arch/account_updates")
    if down != want[::-1]:
        fail("/api/arch/account_updates (newest first) is not the reverse order")
    acct = want[len(want) // 2]["account"]
    got = pages(api, f"/api/arch/account_updates?account=0x{acct.upper()}&order=asc")
    if got != [r for r in want if r["account"] == acct] or not got:
        fail(f"/api/arch/account_updates?account={acct}: {got[:2]}")
    tx = want[len(want) // 2]["txid"]
    got = pages(api, f"/api/arch/account_updates?transaction={tx}&order=asc")
    if got != [r for r in want if r["txid"] == tx]:
        fail(f"/api/arch/account_updates?transaction={tx}: {got}")
    st, _, one = api.get(f"/api/arch/transactions/{tx}")
    accts = [r["account"] for r in want if r["txid"] == tx]
    row = sql_rows(db, "SELECT * FROM arch_transactions WHERE txid = ?", (tx,))[0]
    if st != 200 or one["data"].pop("account_updates") != accts or \
            {k: v for k, v in one["data"].items() if k not in ("program_ids", "bitcoin_txids",
                                                                "rolled_back")} != \
            {k: v for k, v in row.items() if k not in ("program_ids", "bitcoin_txids",
                                                       "rolled_back")}:
        fail(f"/api/arch/transactions/{tx}: {st} {one} vs {row} {accts}")
    events = sql_rows(db, "SELECT chain, key, topic, block_height, received_at FROM arch_events "
                          "ORDER BY received_at, key")
    for order, want_e in (("asc", events), ("desc", events[::-1])):
        got = [{k: r[k] for k in ("chain", "key", "topic", "block_height", "received_at")}
               for r in pages(api, f"/api/arch/events?order={order}", 25)]
        if got != want_e:
            fail(f"/api/arch/events?order={order}: {len(got)} rows, SQLite {len(want_e)}")
    rb = pages(api, "/api/arch/events?topic=rolledback_transactions&order=asc")
    if [r["key"] for r in rb] != [e["key"] for e in events
                                  if e["topic"] == "rolledback_transactions"] or not rb:
        fail("/api/arch/events?topic=rolledback_transactions differs from SQLite")
    back = pages(api, "/api/arch/transactions?rolled_back=true", 50)
    if sorted(t["txid"] for t in back) != sorted(
            r["txid"] for r in sql_rows(db, "SELECT txid FROM arch_transactions "
                                            "WHERE rolled_back = 1")):
        fail("/api/arch/transactions?rolled_back=true differs from SQLite")
    b = sql_rows(db, "SELECT * FROM arch_blocks ORDER BY height DESC LIMIT 1")[0]
    for ident in (str(b["height"]), b["hash"], "0x" + b["hash"], "latest"):
        st, _, one = api.get(f"/api/arch/blocks/{ident}")
        if st != 200 or one["data"] != b:
            fail(f"/api/arch/blocks/{ident}: {st} {one} (SQLite {b})")
    for path, want_st in (("/api/arch/blocks/999999999", 404), ("/api/arch/blocks/12x", 400),
                          ("/api/arch/transactions/" + "ab" * 32, 404),
                          ("/api/arch/transactions/0x12", 400),
                          ("/api/arch/transactions?cursor=5", 400),
                          ("/api/arch/account_updates?cursor=5:1", 400),
                          ("/api/arch/events?cursor=x:y", 400),
                          ("/api/arch/events?topic=nope", 400),
                          ("/api/arch/blocks?address=1", 400)):
        st, _, body = api.get(path)
        if st != want_st:
            fail(f"GET {path}: {st} (want {want_st}) {body}")
    print(f"REST vs SQLite: {len(want)} account updates (and by account / transaction), "
          f"{len(events)} events both ways ({len(rb)} rollbacks), {len(back)} rolled back, "
          f"one block by height / hash / latest, errors 400 / 404", flush=True)


def follow(bp, node, tmp):
    url = node.urls[0]
    db = os.path.join(tmp, "api.db")
    logpath = os.path.join(tmp, "api.log")
    log = open(logpath, "w")
    proc = subprocess.Popen([bp, "run", "--chain-type", "arch", "--rpc", url, "--ws",
                             "ws://" + url.split("://", 1)[1], "--output", f"sqlite:{db}",
                             "--start-block", "0", "--api", API_ANY,
                             "--poll-interval", "0.2", "--ws-reconnect-interval", "0.2",
                             "--log-level", "info"], stdout=log, stderr=subprocess.STDOUT)
    stopped = False
    try:
        port = api_port(logpath, HANG, proc)
        wait_http(port, HANG, proc)
        api = Api(port)
        cols = [Collector("websocket", WS(port, "/api/ws?topics=blocks,transactions,reorgs")),
                Collector("sse", SSE(port, "/api/events?topics=blocks,transactions,reorgs"))]
        for c in cols:
            c.start()
        ws.wait_subscribed(logpath, proc, "api run")
        arch.wait_caught_up(url, db, proc, "api run")
        fork(node, db, cols, proc)
        # a rollback of a committed block, its re-apply, a rollback again: each stored
        r = ws.episode_pair(node, arch.checkpoint(db)[0], lambda txids, back: stored(
            db, txids, back), proc, "api run")
        episode = node.stats()["episodes"]
        want = {("reorgs", "reorg", None), ("blocks", "revert", None),
                ("transactions", "revert", "rollback"), ("transactions", "apply", "reapply"),
                ("blocks", "apply", None), ("transactions", "apply", None)}
        ws.wait_for("both subscribers' push messages (blocks, transactions, a fork, rollbacks, "
                    "re-applies)", lambda: not any(want - c.kinds() for c in cols), proc)
        print("both subscribers got block and transaction applies, a fork (reorg, revert) and "
              "rollback / re-apply messages", flush=True)
        node_vs_rest(node, url, api, db, episode, r)
        os.kill(node.proc.pid, signal.SIGSTOP)
        stopped = True
        # the node stands still: once the run committed what it fetched, what both
        # subscribers built must become what REST answers (their last messages may still be
        # on their way); compared again until it is, the checkpoint the same across a compare
        last = [None]

        def same():
            cp = arch.checkpoint(db)
            last[0] = replicas_vs_rest(api, cols)
            return last[0] is None and arch.checkpoint(db) == cp
        try:
            ws.wait_for("the subscribers' replicas as REST answers", same, proc)
        except AssertionError as e:
            fail(f"{e}: {last[0]}")
        for c in cols:
            print(f"{c.name}: {len(c.msgs)} messages make blocks and transactions as REST "
                  "answers them", flush=True)
        rest_vs_sql(api, db)
        os.kill(node.proc.pid, signal.SIGCONT)
        stopped = False
        for c in cols:
            c.stop = True
        ws.stop(proc, "api run")
    finally:
        if stopped:
            os.kill(node.proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def chains_config(bp, node, tmp):
    cfg = os.path.join(tmp, "chains.yaml")
    with open(cfg, "w") as f:
        f.write(f"output: sqlite:{os.path.join(tmp, 'chains.db')}\napi: {API_ANY}\n"
                f"chains:\n  - name: archnet\n    chain_type: arch\n    rpc: {node.urls[0]}\n"
                f"    start_block: 0\n")
    logpath = os.path.join(tmp, "chains.log")
    with open(logpath, "w") as log:
        proc = subprocess.Popen([bp, "run", "--config", cfg], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        port = api_port(logpath, HANG, proc)
        wait_http(port, HANG, proc)
        deadline = time.monotonic() + HANG
        while True:
            st, _, body = Api(port).get("/api/arch/blocks?chain=archnet&limit=3")
            if st == 200 and body["count"] == 3 and all(b["chain"] == "archnet"
                                                        for b in body["data"]):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                fail(f"chains: config with api: {st} {body}")
            time.sleep(0.2)
        ws.stop(proc, "chains config")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("a chains: config with an Arch chain and api: serves /api/arch/blocks?chain=archnet",
          flush=True)


def main():
    print(__doc__.strip(), flush=True)
    bp = os.environ.get("BLOCKPIPE")
    if not bp:
        fail("BLOCKPIPE is not set")
    node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.3", "--start-head", "20",
                        "--txs-per-block", "1-6", "--seed", "11"])
    try:
        with tempfile.TemporaryDirectory(prefix="bp-arch-api-") as tmp:
            follow(bp, node, tmp)
            chains_config(bp, node, tmp)
    finally:
        node.kill()
    print("OK")


if __name__ == "__main__":
    main()
