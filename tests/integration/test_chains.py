"""Many chains in one process (issue 13 part 1): a config file's `chains:` list.

Three anvil chains (chain ids 1001, 1002, 1003) and a simnode chain (777) are followed by one
`blockpipe run --config FILE` into one SQLite file and one PostgreSQL database (a private
server, tests/tools/pg.py). Every chain's checkpoint must reach its node's head in both
outputs, and every row of every table of every chain must equal its node, field by field
(tests/tools/rowcheck.py), under its own chain name; each output holds one checkpoint per chain.
The derived tables (on by default) of every chain equal their recomputation from its node
(tests/tools/metricscheck.py), after the events below.

Then, while it runs: anvil a3 is killed by PID (every endpoint of that chain down), anvil a1
is reorganised (anvil_reorg depth 3, +2 blocks) and a2 is reorganised deeper than its
reorg_window (3): a1 must follow its reorg and simnode's chain and a1 keep going (a1 gets
more blocks after the others failed), a2 must stop alone with an error line naming it (its
rows stay exactly what it held, the old branch, consistent), a3 is reported by name (its
log lines, and /metrics?chain=a3 shows its endpoint down) while its rows stay
what it had. A fifth chain, `wrongid`, says chain_id 9 for a1's node: it stops at its start,
named, with both ids, while the others start. /ready lists every chain (503 while one is
stopped), ?chain= picks one (status, /api/blocks/latest and /api/analytics over the shared
outputs). On SIGINT the process exits 1 naming both failed chains.

Config errors name the chain and the key: a bad value inside chains[1], a shared key put
in a chain, a chain without endpoints, `--chain` naming no chain of the list.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import rowcheck  # noqa: E402
from anvil import Anvil, Workload  # noqa: E402
from metricscheck import Expected, compare, read_pg, read_sqlite  # noqa: E402
from outcheck import reorg_txs  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from apiclient import API_ANY, api_port  # noqa: E402
from simnode import Simnode  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1313"))
SIM_LAST = 149
DEADLINE = 180  # a hang guard only (ASan, a loaded machine)


def sqlite_cps(db):
    try:
        rows = rowcheck.sqlite_rows(db)["checkpoints"] if os.path.exists(db) else []
    except sqlite3.OperationalError:
        rows = []  # the file is made, its tables not yet
    return {r["chain"]: (r["number"], r["hash"]) for r in rows}


def pg_cps(pg):
    try:
        rows = pg.sql("SELECT chain, number, '0x' || encode(hash, 'hex') FROM checkpoints")
    except RuntimeError:
        return {}  # the tables are not made yet
    return {c: (int(n), h) for c, n, h in rows}


def head_of(url):
    b = rowcheck.rpc_batch(url, [("eth_getBlockByNumber", ["latest", False])])[0]
    return int(b["number"], 16), b["hash"]


def derived_exact(db, pg, name, data, label):
    """Both outputs' derived tables of chain `name` equal their recomputation from its node
    (tests/tools/metricscheck.py): each chain's rollups and sets are its own."""
    exp = Expected([b for b, _ in data], [r for _, r in data], origin=name)
    for out, got in (("sqlite", read_sqlite(db, name)), ("postgres", read_pg(pg, name))):
        counts = compare(exp, got, label=f"{label}: {out} chain {name}: ")
        print(f"{label}: {out} chain {name}: derived {counts}")


def exact(db, pg, name, data, label):
    """Both outputs hold exactly the rows of `data` for chain `name`."""
    for out, rows, to_value in (("sqlite", rowcheck.sqlite_rows(db), rowcheck.sqlite_value),
                                ("postgres", rowcheck.pg_rows(pg, "public"), rowcheck.pg_value)):
        mine = {t: [r for r in rows[t] if r["chain"] == name]
                for t in ("blocks", "transactions", "logs")}
        counts = rowcheck._compare_all(f"{label}: {out} chain {name}", mine, data, to_value, name)
        print(f"{label}: {out} chain {name}: {counts}")


def wait_heads(db, pg, want, proc, err_path, label):
    """Every chain of want {name: (number, hash)} has that checkpoint in both outputs."""
    def ok():
        if proc.poll() is not None:
            raise Fail(f"{label}: blockpipe exited {proc.returncode}:\n{tail(err_path)}")
        s, p = sqlite_cps(db), pg_cps(pg)
        return all(s.get(n) == h and p.get(n) == h for n, h in want.items())
    try:
        wait_for(ok, DEADLINE, f"{label}: checkpoints {want}", 0.3)
    except Fail as e:
        raise Fail(f"{e}\nsqlite {sqlite_cps(db)}\npostgres {pg_cps(pg)}\n{tail(err_path)}") \
            from None


def api_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def api_text(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def config(path, db, pg, anvils, sim):
    chains = []
    for i, node in enumerate(anvils):
        chains.append({"name": f"a{i + 1}", "chain_id": 1001 + i, "rpcs": [{"url": node.url}],
                       "start_block": 0, "reorg_window": 3 if i == 1 else 32})
    # a chain whose endpoint serves another chain than it says: it stops at its start
    chains.append({"name": "wrongid", "chain_id": 9, "rpc": anvils[0].url})
    chains.append({"name": "sim", "chain_id": 777, "rpc": sim.urls[0], "start_block": 0,
                   "ws": sim.urls[0].replace("http://", "ws://"),
                   "fetch": ["blocks", "transactions", "receipts", "logs"]})
    cfg = {"outputs": [f"sqlite:{db}", pg.url()], "confirmations": 0, "poll_interval": 0.2,
           "stats_interval": 1, "max_memory": "256MiB", "workers": 2, "chains": chains}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML


def config_errors(bp, tmp, anvil_url):
    """A bad key is refused before anything starts, naming the chain and the key."""
    base = {"output": f"sqlite:{tmp}/never.db",
            "chains": [{"name": "one", "rpc": anvil_url}, {"name": "two", "rpc": anvil_url}]}
    cases = [
        ({"confirmations": "x"}, ["confirmations", "chains[1] 'two'", "'x' is not valid"]),
        ({"output": "sqlite:other.db"}, ["'output'", "chains[1] 'two'", "top level"]),
        ({"confirmatons": 3}, ["'confirmatons'", "chains[1] 'two'", "did you mean 'confirmations'"]),
        ({"rpc": None}, ["chains[1] 'two'", "missing rpc"]),
    ]
    for extra, words in cases:
        cfg = json.loads(json.dumps(base))
        cfg["chains"][1].update(extra)
        if extra.get("rpc", 1) is None:
            del cfg["chains"][1]["rpc"]
        path = os.path.join(tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([bp, "run", "--config", path], capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 2 or not all(w in p.stderr for w in words):
            raise Fail(f"config {extra}: exit {p.returncode}, want 2 and {words} in:\n{p.stderr}")
    path = os.path.join(tmp, "good.json")
    with open(path, "w") as f:
        json.dump(base, f)
    p = subprocess.run([bp, "run", "--config", path, "--chain", "three"], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 2 or "'three'" not in p.stderr or "one, two" not in p.stderr:
        raise Fail(f"--chain three: exit {p.returncode}:\n{p.stderr}")
    print("config errors name the chain and the key")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-chains-")
    db = os.path.join(tmp.name, "chains.db")
    cfg_path = os.path.join(tmp.name, "chains.json")
    err_path = os.path.join(tmp.name, "stderr.txt")
    sim = Simnode(bp, ["--chain-id", "777", "--block-time", "0", "--length", str(SIM_LAST + 1),
                       "--txs-per-block", "0-12", "--seed", "7"])
    anvils, proc = [], None
    try:
        with Postgres() as pg, open(err_path, "w") as err:
            anvils = [Anvil(["--chain-id", str(1001 + i)]) for i in range(3)]
            wls = [Workload(n, seed=SEED + i) for i, n in enumerate(anvils)]
            for wl in wls:
                wl.setup()
                for _ in range(8):
                    wl.mine_batch(rng.randrange(0, 6))
            config_errors(bp, tmp.name, anvils[0].url)
            config(cfg_path, db, pg, anvils, sim)
            cmd = [bp, "run", "--config", cfg_path, "--api", API_ANY]
            print("running:", " ".join(cmd))
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            port = api_port(err_path, 120, proc)
            names = ["a1", "a2", "a3"]
            want = {n: head_of(a.url) for n, a in zip(names, anvils)}
            want["sim"] = head_of(sim.urls[0])
            wait_heads(db, pg, want, proc, err_path, "initial sync")
            log = open(err_path, errors="replace").read()
            bad = [ln for ln in log.splitlines() if "chain 'wrongid' stopped" in ln]
            if not bad or "chain id 1001" not in bad[0] or "chain_id 9" not in bad[0]:
                raise Fail(f"no line saying chain 'wrongid' stopped for its chain id:\n{tail(err_path)}")
            data = {n: rowcheck.fetch(a.url, range(want[n][0] + 1)) for n, a in zip(names, anvils)}
            data["sim"] = rowcheck.fetch(sim.urls[0], range(SIM_LAST + 1))
            for name, d in data.items():
                exact(db, pg, name, d, "initial sync")
            st, body = api_get(port, "/ready")
            ready = {c["chain"]: c["ready"] for c in body.get("chains", [])}
            if st != 503 or ready.pop("wrongid", None) is not False or \
                    sorted(ready) != sorted(want) or not all(ready.values()):
                raise Fail(f"/ready with every chain at its head but wrongid: {st} {body}")
            for out, cps in (("sqlite", sqlite_cps(db)), ("postgres", pg_cps(pg))):
                if sorted(cps) != sorted(want):
                    raise Fail(f"{out}: checkpoints of {sorted(cps)}, want one per chain")

            # a3: every endpoint down; a2: a reorg deeper than its window; a1: a reorg
            anvils[2].stop()
            anvils[1].rpc("anvil_reorg", [5, reorg_txs(rng, wls[1], 5)])
            wls[1].after_reorg()
            anvils[0].rpc("anvil_reorg", [3, reorg_txs(rng, wls[0], 3)])
            wls[0].after_reorg()
            for _ in range(2):
                wls[0].mine_batch(rng.randrange(1, 5))

            def a2_stopped():
                if proc.poll() is not None:
                    raise Fail(f"blockpipe exited {proc.returncode}:\n{tail(err_path)}")
                return "chain 'a2' stopped" in open(err_path, errors="replace").read()
            wait_for(a2_stopped, DEADLINE, "an error line saying chain 'a2' stopped", 0.3)
            for _ in range(2):  # the others go on after a2 stopped
                wls[0].mine_batch(rng.randrange(1, 5))
            wait_heads(db, pg, {"a1": head_of(anvils[0].url), "sim": want["sim"]}, proc,
                       err_path, "after the reorg")
            exact(db, pg, "a1", rowcheck.fetch(anvils[0].url,
                                               range(anvils[0].block_number() + 1)), "a1 reorg")
            exact(db, pg, "sim", data["sim"], "sim")
            exact(db, pg, "a3", data["a3"], "a3 down")  # what it had, untouched
            a1_data = rowcheck.fetch(anvils[0].url, range(anvils[0].block_number() + 1))
            a2_old = data["a2"]  # stopped before the new branch: the old one, whole
            exact(db, pg, "a2", a2_old, "a2 stopped")
            for name, d in (("a1", a1_data), ("a2", a2_old), ("a3", data["a3"]),
                            ("sim", data["sim"])):
                derived_exact(db, pg, name, d, "derived tables")

            log = open(err_path, errors="replace").read()
            a2_line = [ln for ln in log.splitlines() if "chain 'a2' stopped" in ln]
            if not a2_line or "reorg" not in a2_line[0].lower():
                raise Fail(f"a2's stop line does not say why (a reorg):\n{a2_line}")
            if not any(ln for ln in log.splitlines()
                       if "[a3]" in ln and (" warn " in ln or " error " in ln)):
                raise Fail(f"no warning or error line of chain a3 after its node died:\n"
                           f"{tail(err_path)}")
            metrics = api_text(port, "/metrics?chain=a3")
            up = [ln for ln in metrics.splitlines() if ln.startswith("blockpipe_rpc_up{")]
            if not up or any('chain="a3"' not in ln or not ln.endswith(" 0") for ln in up):
                raise Fail(f"/metrics?chain=a3: want its endpoint down, got {up}")
            st, body = api_get(port, "/api/sync-status?chain=sim")
            sim_chain = (body.get("chains") or [{}])[0]
            if st != 200 or sim_chain.get("chain") != "sim" or sim_chain.get("indexed") != SIM_LAST:
                raise Fail(f"/api/sync-status?chain=sim: {st} {body}")
            st, body = api_get(port, "/api/sync-status?chain=a2")
            a2_chain = (body.get("chains") or [{}])[0]
            if a2_chain.get("mode") != "waiting" or "stopped" not in a2_chain.get("waiting_error", ""):
                raise Fail(f"/api/sync-status?chain=a2 after it stopped: {st} {body}")
            st, body = api_get(port, "/ready")
            ready = {c["chain"]: c["ready"] for c in body.get("chains", [])}
            if st != 503 or ready.get("a2") is not False or ready.get("sim") is not True:
                raise Fail(f"/ready with a2 stopped: {st} {body}")
            st, _ = api_get(port, "/api/sync-status?chain=nope")
            if st != 404:
                raise Fail(f"/api/sync-status?chain=nope answered {st}, want 404")
            # REST over the shared outputs: ?chain= picks the chain's rows
            for name, last in (("sim", SIM_LAST), ("a1", anvils[0].block_number())):
                st, body = api_get(port, f"/api/blocks/latest?chain={name}")
                if st != 200 or body["data"]["number"] != last:
                    raise Fail(f"/api/blocks/latest?chain={name}: {st} {body}, want block {last}")
                st, body = api_get(port, f"/api/analytics?grain=1m&chain={name}")
                rows = body.get("data", {}).get("chain_metrics") or []
                if st != 200 or not rows or any(r["origin_key"] != name for r in rows):
                    raise Fail(f"/api/analytics?grain=1m&chain={name}: {st} {body}")
            st, body = api_get(port, "/api/blocks?chain=nope")  # a filter matching no row
            if st != 200 or body.get("count") != 0:
                raise Fail(f"/api/blocks?chain=nope answered {st} {body}, want no block")
            print(f"a3 down: {up}; a2 stopped: {a2_line[0][:160]}")

            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=60)
            log = open(err_path, errors="replace").read()
            if rc != 1 or "2 of 5 chains failed: 'a2' (reorg" not in log or \
                    "; 'wrongid' (reading eth_chainId" not in log:
                raise Fail(f"exit {rc} after SIGINT, want 1 and the failed chain named:\n"
                           f"{tail(err_path)}")
            proc = None
            print("OK")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        for a in anvils:
            a.stop()
        sim.kill()


if __name__ == "__main__":
    main()
