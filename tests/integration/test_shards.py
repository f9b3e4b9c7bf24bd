"""Six chains shared by two blockpipe processes in one PostgreSQL, a writer killed and its chains
taken over (issue 13 part 6; docs/ARCHITECTURE.md "Chains over several hosts").

Six simnode chains (a block every 0.2 s, seeds of their own) are listed in one config file
(`chains:` c0..c5, one PostgreSQL output). Process A runs `--shard 1/2` (c0, c2, c4), process B
`--shard 2/2` (c1, c3, c5); each chain's writer holds its PostgreSQL advisory lock.
- A third process started on c0 with `--lock-wait 0` must refuse: exit 1, with an error naming
  the chain and the holder (A's application_name carries A's host and pid).
- A fourth started on c0 with the default (wait forever) must say it waits, naming the holder,
  and write nothing; when A is killed with SIGKILL it must take c0 over from its checkpoint.
- B is then stopped and restarted with the whole list: it must take every chain (A's c2 and
  c4, left where A died, included) and follow them to the nodes' heads.
In the end, for every chain: the stored blocks are exactly 0..checkpoint, each with the node's
hash and parent, its transactions the node's (none twice, none missing), and the checkpoint
is the node's block.
SQLite (one host): the lock is a byte lock on the file; a second process with --lock-wait 0
refuses naming the first's pid, a third with --lock-wait 60 (and --api, --alert
waiting_for_lock with a webhook receiver of this test's) waits, its /api/sync-status saying
mode waiting-for-lock naming the holder, /ready 503, /metrics blockpipe_waiting_for_lock 1
(passing promtool check metrics) and the alert firing for the chain; it takes the chain over
when the first is killed (then its mode is no longer waiting-for-lock, the gauge 0 and the
alert resolved).
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, hx, tail, wait_for  # noqa: E402
from pgcheck import RunProc  # noqa: E402
from apiclient import API_ANY, api_port  # noqa: E402
from simnode import Simnode  # noqa: E402
from webhook import WebhookReceiver  # noqa: E402

CHAINS = [f"c{i}" for i in range(6)]


def checkpoints(pg):
    try:
        rows = pg.sql("SELECT chain, number FROM checkpoints WHERE output = 'postgres'")
    except RuntimeError:
        return {}
    return {c: int(n) for c, n in rows}


def api_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except OSError:
        return 0, {}  # not listening yet


def metrics(port, tmp):
    """/metrics as text, checked by promtool; blockpipe_waiting_for_lock's value (None: absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    path = os.path.join(tmp, "metrics.txt")
    with open(path, "w") as f:
        f.write(text)
    promtool = shutil.which("promtool")
    if not promtool:
        raise Fail("promtool not found (Debian package prometheus)")
    p = subprocess.run([promtool, "check", "metrics"], stdin=open(path), capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise Fail(f"promtool check metrics: {p.stdout}{p.stderr}")
    m = re.search(r'^blockpipe_waiting_for_lock\{chain="s"\} (\S+)$', text, re.M)
    return m and m.group(1)



def lock_alerts(hook):
    return [(c["state"], c["chain"]) for c in hook.calls if c["rule"] == "waiting_for_lock"]


def head(node):
    return int(node.rpc_batch([("eth_blockNumber", [])])[0], 16)



def Proc(bp, tmp, name, args):  # noqa: N802 - stands for the class it makes
    """A blockpipe run process (pgcheck.RunProc) given 60 s to stop on SIGTERM."""
    return RunProc(bp, tmp, name, args, stop_timeout=60)


def check_chain(pg, node, chain, cp):
    """The chain's blocks are 0..cp, each the node's, its transactions the node's; checkpoint cp."""
    blocks = pg.sql(f"SELECT number, {hx('hash')}, {hx('parent_hash')} FROM blocks"
                    f" WHERE chain = '{chain}' ORDER BY number")
    numbers = [int(r[0]) for r in blocks]
    if numbers != list(range(cp + 1)):
        raise Fail(f"{chain}: blocks {numbers[:3]}..{numbers[-3:]} ({len(numbers)} rows), "
                   f"want 0..{cp}")
    want = node.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(cp + 1)])
    for (n, h, ph), b in zip(blocks, want):
        if (h, ph) != (b["hash"], b["parentHash"]):
            raise Fail(f"{chain}: block {n} is {h} (parent {ph}), the node's {b['hash']} "
                       f"(parent {b['parentHash']})")
    txs = pg.sql(f"SELECT block_number, {hx('hash')} FROM transactions WHERE chain = '{chain}'"
                 " ORDER BY block_number, transaction_index")
    got = [(int(n), h) for n, h in txs]
    node_txs = [(int(b["number"], 16), t.lower()) for b in want for t in b["transactions"]]
    if got != node_txs:
        raise Fail(f"{chain}: {len(got)} transactions stored ({len(set(got))} distinct), the "
                   f"node has {len(node_txs)} up to block {cp}")
    cph = pg.sql(f"SELECT {hx('hash')} FROM checkpoints WHERE chain = '{chain}'"
                  " AND output = 'postgres'")[0][0]
    if cph != want[cp]["hash"]:
        raise Fail(f"{chain}: checkpoint {cp} {cph}, the node's {want[cp]['hash']}")
    return len(got)


def sqlite_part(bp, node, tmp):
    """SQLite: the lock is a byte lock on the file (one host); the same refusal and takeover."""
    db = os.path.join(tmp, "one.db")
    run = ["--rpc", node.urls[0], "--output", f"sqlite:{db}", "--chain", "s",
           "--start-block", "0", "--poll-interval", "0.2"]
    s1 = Proc(bp, tmp, "S1", run)
    try:
        def written():
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    return c.execute("SELECT count(*) FROM checkpoints").fetchone()[0] > 0
            except sqlite3.Error:
                return False
        wait_for(lambda: s1.alive() and os.path.exists(db) and written(), 60,
                 "S1 writing the SQLite file")
        s2 = Proc(bp, tmp, "S2", run + ["--lock-wait", "0"])
        rc = s2.p.wait(timeout=60)
        out = s2.text()
        if rc != 1 or f"process {s1.pid} (blockpipe) on this host" not in out:
            raise Fail(f"S2 (--lock-wait 0, SQLite) exited {rc}, want 1 naming process "
                       f"{s1.pid}:\n{out[-3000:]}")
        print("SQLite: S2 refused:", [ln for ln in out.splitlines() if "already written" in ln][0])
        hook = WebhookReceiver()
        s3 = Proc(bp, tmp, "S3", run + ["--lock-wait", "60", "--api", API_ANY,
                                        "--alert", "waiting_for_lock", "--alert-webhook",
                                        hook.url])
        wait_for(lambda: s3.alive() and "waiting for it to let go" in s3.text(), 60,
                 "S3 waiting for the SQLite chain")
        port = api_port(s3.path, 60, s3.p)
        wait_for(lambda: api_get(port, "/api/sync-status")[0] == 200, 60, "S3's API")
        code, body = api_get(port, "/api/sync-status")
        st = (body.get("chains") or [{}])[0]
        if st.get("mode") != "waiting-for-lock" or str(s1.pid) not in st.get("lock_holder", ""):
            raise Fail(f"S3 waiting: /api/sync-status {code} {body}: want mode waiting-for-lock "
                       f"and lock_holder naming process {s1.pid}")
        ready = api_get(port, "/ready")[0]
        if ready != 503:
            raise Fail(f"S3 waiting for the lock: /ready answered {ready}, want 503")
        gauge = metrics(port, tmp)
        if gauge != "1":
            raise Fail(f"S3 waiting for the lock: /metrics blockpipe_waiting_for_lock "
                       f"{gauge}, want 1")
        wait_for(lambda: lock_alerts(hook) == [("firing", "s")], 60,
                 "the waiting_for_lock alert firing for chain s")
        print(f"SQLite: S3 waiting: mode {st['mode']}, lock_holder {st['lock_holder']!r}, "
              f"/ready {ready}, blockpipe_waiting_for_lock {gauge}, alert {lock_alerts(hook)}")
        s1.kill()
        wait_for(lambda: s3.alive() and "this process writes the chain now" in s3.text(), 60,
                 "S3 taking the SQLite chain over")
        wait_for(lambda: (api_get(port, "/api/sync-status")[1].get("chains") or [{}])[0]
                 .get("mode") not in (None, "waiting-for-lock"), 60,
                 "S3's mode after taking the chain over")
        gauge = metrics(port, tmp)
        if gauge != "0":
            raise Fail(f"S3 writing the chain: /metrics blockpipe_waiting_for_lock {gauge}, "
                       f"want 0")
        wait_for(lambda: lock_alerts(hook) == [("firing", "s"), ("resolved", "s")], 60,
                 "the waiting_for_lock alert resolved")
        text = s3.text()
        for needle in ("[blockpipe s] FIRING: waiting_for_lock",
                       "[blockpipe s] resolved: waiting_for_lock"):
            if needle not in text:
                raise Fail(f"S3's log does not say {needle!r}")
        print(f"SQLite: S3 took over: blockpipe_waiting_for_lock {gauge}, alert "
              f"{lock_alerts(hook)}")
        s3.stop()
        hook.close()
        print("SQLite: S3 waited and took the chain over when S1 was killed")
    finally:
        s1.kill()


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    nodes, procs = [], []
    tmp = tempfile.TemporaryDirectory(prefix="bp-shards-")
    with Postgres() as pg:
        try:
            for i in range(len(CHAINS)):
                nodes.append(Simnode(bp, ["--chain-id", str(3000 + i), "--seed", str(7 + i),
                                          "--block-time", "0.2", "--start-head", "20",
                                          "--txs-per-block", "1-4"]))
            cfg = {"output": pg.url(), "start_block": 0, "poll_interval": 0.2,
                   "stats_interval": 5, "workers_total": 12,
                   "chains": [{"name": c, "chain_id": 3000 + i, "rpc": nodes[i].urls[0]}
                              for i, c in enumerate(CHAINS)]}
            path = os.path.join(tmp.name, "chains.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            run = ["--config", path]
            for args, want in ((["--shard", "3/2"], "expected K/N"),
                               (["--shard", "7/7"], "no chain of config file"),
                               (["--chain", "c1,zz"], "--chain 'zz': no such chain")):
                p = subprocess.run([bp, "run", *run, *args], capture_output=True, text=True,
                                   timeout=60)
                if p.returncode != 2 or want not in p.stderr:
                    raise Fail(f"run {args}: exit {p.returncode}, want 2 and {want!r}:\n"
                               f"{p.stderr[-2000:]}")

            a = Proc(bp, tmp.name, "A", run + ["--shard", "1/2"])
            procs.append(a)
            b = Proc(bp, tmp.name, "B", run + ["--shard", "2/2"])
            procs.append(b)
            wait_for(lambda: a.alive() and b.alive() and len(checkpoints(pg)) == 6
                     and min(checkpoints(pg).values()) >= 20, 120,
                     "both processes writing their three chains")
            for p, mine in ((a, CHAINS[0::2]), (b, CHAINS[1::2])):
                taken = [c for c in CHAINS if f"chain '{c}': writer lock taken" in p.text()]
                if taken != mine:
                    raise Fail(f"{p.name} took the locks of {taken}, want {mine}:\n"
                               f"{tail(p.path)}")
            print("A writes c0 c2 c4, B c1 c3 c5:", checkpoints(pg))

            # A third process on a chain A holds, refusing to wait: exit 1 naming the holder.
            c = Proc(bp, tmp.name, "C", run + ["--chain", "c0", "--lock-wait", "0"])
            rc = c.p.wait(timeout=60)
            out = c.text()
            holder = f"pid {a.pid}"
            if rc != 1 or "chain 'c0' is already written to output" not in out \
                    or holder not in out or "--lock-wait 0" not in out:
                raise Fail(f"C (--lock-wait 0 on c0) exited {rc}, want 1 with a message naming "
                           f"c0 and its holder ({holder}):\n{out[-3000:]}")
            print("C refused:", [ln for ln in out.splitlines() if "already written" in ln][0])

            # A fourth waits for c0 (the default), then takes it over when A dies.
            d = Proc(bp, tmp.name, "D", run + ["--chain", "c0"])
            procs.append(d)
            wait_for(lambda: d.alive() and "waiting for it to let go" in d.text(), 60,
                     "D saying it waits for c0")
            line = [ln for ln in d.text().splitlines() if "waiting for it to let go" in ln][0]
            if holder not in line:
                raise Fail(f"D's waiting line does not name the holder ({holder}): {line}")
            print("D waits:", line)
            time.sleep(1)
            a.kill()
            at_kill = checkpoints(pg)
            print("A killed (SIGKILL) at", at_kill)
            wait_for(lambda: d.alive() and "this process writes the chain now" in d.text(), 60,
                     "D taking c0 over")
            wait_for(lambda: d.alive() and checkpoints(pg)["c0"] > at_kill["c0"] + 5, 60,
                     "D writing c0")
            d.stop()
            b.stop()
            stopped = checkpoints(pg)
            if stopped["c2"] != at_kill["c2"] or stopped["c4"] != at_kill["c4"]:
                raise Fail(f"c2/c4 moved while nobody held them: {at_kill} -> {stopped}")

            # B again, with the whole list: every chain, A's left-overs included.
            b2 = Proc(bp, tmp.name, "B2", run)
            procs.append(b2)
            targets = {ch: head(nodes[i]) for i, ch in enumerate(CHAINS)}
            wait_for(lambda: b2.alive() and all(checkpoints(pg).get(ch, -1) >= t
                                                for ch, t in targets.items()), 120,
                     f"B2 following every chain to {targets}")
            taken = [ch for ch in CHAINS if f"chain '{ch}': writer lock taken" in b2.text()]
            if taken != CHAINS:
                raise Fail(f"B2 took the locks of {taken}, want all six:\n{tail(b2.path)}")
            b2.stop()
            final = checkpoints(pg)
            total = sum(check_chain(pg, nodes[i], ch, final[ch]) for i, ch in enumerate(CHAINS))
            print(f"every chain exactly once: checkpoints {final}, {total} transactions")
            sqlite_part(bp, nodes[0], tmp.name)
        finally:
            for p in procs:
                p.kill()
            for n in nodes:
                n.kill()
            tmp.cleanup()
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"FAIL: {e}")
        sys.exit(1)
