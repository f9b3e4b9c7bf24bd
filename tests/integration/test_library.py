"""libblockpipe: examples/print_blocks (linked with libblockpipe.so) follows an anvil chain
through reorgs, then is built again out of tree against an installed copy of the library.

1. print_blocks RPC confirmations=0 start_block=0 follows an anvil chain the test mines
   (random txs with logs, automine off). After catching up, anvil_reorg of depth 3 (new
   txs in the new blocks) and a same-height reorg of depth 1 are made, with blocks mined
   after each. Its stdout is replayed: every "applied N HASH txs=T logs=L" must extend the
   replayed tip by one (N == tip + 1) and be the node's block N of the chain as it was then
   (hash, tx count, log count, all read from the node); every "reverted N HASH" must be the
   replayed tip; at the end the replayed chain must be the node's canonical chain 0..head,
   and each reorg must have reverted exactly the replaced blocks, highest first. SIGINT
   must end it with status 0 (the library's stop; the signal handler is the example's).
   Then the resume callback: resume=N:HASH of a canonical block must print exactly N+1..head;
   of a block the reorg replaced (with the two below it), "reverted N HASH" first, then
   exactly N..head; of that block alone, exit 1 naming the reorg, nothing printed.
2. Two chains in one pipe: print_blocks config=FILE with a chains: list of two anvil nodes
   (chain ids 31337 and 31338, names "one" and "two"), a shared SQLite output and state_dir.
   Both are mined, one is reorganised (depth 2): each chain's lines (named by the callbacks'
   chain argument) must replay exactly that node's chain, the reorg's reverts only on its
   chain; SIGINT ends it with a stats line per chain; the SQLite output holds each chain's
   blocks, and state_dir one state file per chain saved by the library. Then chain=two with
   from/to runs that chain alone, and a chain name not in the list is refused at open.
   Resume per chain: resume=one@N:HASH (a canonical block) and resume=two@N:HASH,... (the
   lowest block two's reorg replaced, with the two below) in one pipe: chain one prints
   exactly N+1..head, chain two "reverted N HASH" first then N..head; the nameless
   resume=N:HASH with two chains, and resume=three@... (no such chain), fail.
3. `cmake --install BUILD --prefix TMP`, then `cc examples/print_blocks.c $(pkg-config
   --cflags --libs blockpipe)` with PKG_CONFIG_PATH=TMP/lib/pkgconfig: the installed
   headers and blockpipe.pc suffice; a second build links libblockpipe.a with the .pc's
   private requirements. Each binary backfills 0..head (from=0 to=HEAD) and must print
   exactly the node's chain. The shared library exports bp_ symbols only and has
   a soname. A small program whose callback returns 7 at block 3 must see blocks 0..3 and
   bp_pipe_wait's BP_ESTOPPED naming the callback.
"""

import os
import random
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload, wait_until  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "1313"))
APPLIED = re.compile(r"^applied (\S+) (\d+) (0x[0-9a-f]{64}) txs=(\d+) logs=(\d+)$")
REVERTED = re.compile(r"^reverted (\S+) (\d+) (0x[0-9a-f]{64})$")


def fail(msg):
    raise AssertionError(msg)


class Reader:
    """Collects a process's stdout lines on a thread."""

    def __init__(self, proc):
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._run, args=(proc.stdout,), daemon=True)
        self.t.start()

    def _run(self, f):
        for line in f:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self):
        with self.lock:
            return list(self.lines)


def node_block(node, n):
    b = node.block(n, False)
    logs = sum(len(r["logs"]) for r in node.receipts(n)) if b["transactions"] else 0
    return {"hash": b["hash"], "txs": len(b["transactions"]), "logs": logs}


def node_chain(node):
    return [node_block(node, n) for n in range(node.block_number() + 1)]


class Replay:
    """The chain as print_blocks's lines build it, checked line by line."""

    def __init__(self):
        self.chain = []  # [(hash, txs, logs)] indexed by number
        self.reverts = []  # (number, hash) in the order seen
        self.done = 0  # lines consumed

    def feed(self, lines, known):
        """known: every block the node had (hash -> (number, txs, logs)) when seen."""
        for line in lines[self.done:]:
            self.done += 1
            m = APPLIED.match(line)
            if m:
                n, h, txs, logs = int(m[2]), m[3], int(m[4]), int(m[5])
                if n != len(self.chain):
                    fail(f"line {self.done} '{line}': the replayed tip is "
                         f"{len(self.chain) - 1}, want block {len(self.chain)} next")
                if h not in known or known[h] != (n, txs, logs):
                    fail(f"line {self.done} '{line}': not a block the node had "
                         f"(node: {known.get(h)})")
                self.chain.append((h, txs, logs))
                continue
            m = REVERTED.match(line)
            if m:
                n, h = int(m[2]), m[3]
                if n != len(self.chain) - 1 or self.chain[-1][0] != h:
                    fail(f"line {self.done} '{line}': not the replayed tip "
                         f"({len(self.chain) - 1} {self.chain[-1][0] if self.chain else None})")
                self.chain.pop()
                self.reverts.append((n, h))
                continue
            fail(f"line {self.done}: unexpected output '{line}'")

    def tip(self):
        return (len(self.chain) - 1, self.chain[-1][0]) if self.chain else None

    def check_is(self, chain, label):
        want = [(b["hash"], b["txs"], b["logs"]) for b in chain]
        if self.chain != want:
            for n, (a, b) in enumerate(zip(self.chain, want)):
                if a != b:
                    fail(f"{label}: block {n} replayed {a}, node has {b}")
            fail(f"{label}: replayed {len(self.chain)} blocks, node has {len(want)}")


def remember(node, known, chain=None):
    for n, b in enumerate(chain or node_chain(node)):
        known[b["hash"]] = (n, b["txs"], b["logs"])


def follow(example, node, wl, rng, tmp):
    known = {}
    err_path = os.path.join(tmp, "follow.err")
    err = open(err_path, "w")
    cmd = [example, node.url, "confirmations=0", "start_block=0", "poll_interval=0.2",
           "log_level=warn"]
    print("running:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                            text=True)
    out = Reader(proc)
    rp = Replay()

    def caught_up(label):
        chain = node_chain(node)
        remember(node, known, chain)
        want = (len(chain) - 1, chain[-1]["hash"])

        def ok():
            if proc.poll() is not None:
                fail(f"{label}: print_blocks exited with {proc.returncode}:\n"
                     + open(err_path).read()[-3000:])
            rp.feed(out.snapshot(), known)
            return rp.tip() == want
        try:
            wait_until(ok, 60, f"{label}: the replayed tip is the node's head {want}", 0.1)
        except TimeoutError as e:
            fail(f"{e}; replayed tip {rp.tip()}; stderr:\n" + open(err_path).read()[-3000:])
        rp.check_is(chain, label)
        print(f"{label}: ok, {len(chain)} blocks, {sum(b['txs'] for b in chain)} txs, "
              f"{sum(b['logs'] for b in chain)} logs")
        return chain

    try:
        for _ in range(10):
            wl.mine_batch(rng.randrange(0, 6))
            time.sleep(0.03)
        caught_up("initial sync")
        for depth, extra in ((3, 2), (1, 0)):
            before = node_chain(node)
            remember(node, known, before)
            head = len(before) - 1
            a = wl.accounts
            pairs = [[{"from": rng.choice(a), "to": rng.choice(wl.contracts), "gas": hex(150000),
                       "data": "0x03" + "11" * 40}, rng.randrange(depth)],
                     [{"from": rng.choice(a), "to": rng.choice(a), "gas": hex(21000),
                       "value": hex(12345)}, rng.randrange(depth)]]
            node.rpc("anvil_reorg", [depth, pairs])
            wl.after_reorg()
            for _ in range(extra):
                wl.mine_batch(rng.randrange(1, 5))
            n_rev = len(rp.reverts)
            chain = caught_up(f"reorg depth {depth} (+{extra} blocks)")
            replaced = [(n, before[n]["hash"]) for n in range(head, head - depth, -1)
                        if chain[n]["hash"] != before[n]["hash"]]
            if len(replaced) != depth:
                fail(f"anvil_reorg({depth}) replaced {len(replaced)} blocks")
            if rp.reverts[n_rev:] != replaced:
                fail(f"reorg depth {depth}: reverted {rp.reverts[n_rev:]}, want {replaced} "
                     "(the replaced blocks, highest first)")
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(15)
        except subprocess.TimeoutExpired:
            fail("print_blocks did not stop within 15 s of SIGINT")
        out.t.join(5)
        rp.feed(out.snapshot(), known)
        log = open(err_path).read()
        if rc != 0 or "stopped" not in log:
            fail(f"print_blocks exited {rc} after SIGINT, want 0 and its 'stopped' line:\n{log}")
        rp.check_is(node_chain(node), "after SIGINT")
        print(f"SIGINT: exit 0; {len(rp.reverts)} reverted lines, all checked")
        return rp.reverts, known
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


def resumed(example, node, reverts, known):
    """The resume callback: after a canonical block the run goes on from the next one; after
    a block a reorg replaced (the node no longer has it), given with the two below it, it
    first reverts that block; given alone, the run stops with the reorg error."""
    chain = node_chain(node)
    head = len(chain) - 1
    n0, h0 = min(reverts)  # the lowest block the depth-3 reorg replaced
    below = ",".join(f"{n}:{chain[n]['hash']}" for n in (n0 - 1, n0 - 2))
    canon = head - 3
    for n, h, arg, want_reverts in ((canon, chain[canon]["hash"],
                                     f"{canon}:{chain[canon]['hash']}", []),
                                    (n0, h0, f"{n0}:{h0},{below}", [(n0, h0)])):
        r = subprocess.run([example, node.url, "from=0", f"to={head}", "log_level=warn",
                            f"resume={arg}"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"print_blocks resume={arg} exited {r.returncode}:\n{r.stderr[-3000:]}")
        rp = Replay()
        rp.chain = [(b["hash"], b["txs"], b["logs"]) for b in chain[:n]]
        rp.chain.append((h,) + known[h][1:])
        rp.feed(r.stdout.splitlines(), known)
        rp.check_is(chain, f"resume after block {n} {h[:10]}")
        if rp.reverts != want_reverts:
            fail(f"resume after block {n} {h[:10]}: reverted {rp.reverts}, want {want_reverts}")
        print(f"resume after block {n} ({'orphaned' if want_reverts else 'canonical'}): "
              f"{len(r.stdout.splitlines())} lines, exactly the node's chain from there")
    r = subprocess.run([example, node.url, "from=0", f"to={head}", "log_level=warn",
                        f"resume={n0}:{h0}"], capture_output=True, text=True, timeout=120)
    if r.returncode != 1 or "reorg" not in r.stderr or r.stdout:
        fail(f"resume={n0}:{h0} alone (orphaned, nothing below it): exit {r.returncode}, "
             f"stdout {r.stdout[:200]!r}, stderr {r.stderr[-500:]!r}; want exit 1 naming the "
             "reorg, nothing delivered")
    print("resume after an orphaned block alone: stops with the reorg error, nothing delivered")


def chain_lines(lines, name):
    return [ln for ln in lines if ln.split(" ", 2)[1:2] == [name]]


def two_chains(example, nodes, wls, rng, tmp):
    """One pipe, two chains: each chain's lines replay its own node's chain exactly."""
    names = ("one", "two")
    db, state = os.path.join(tmp, "chains.db"), os.path.join(tmp, "state")
    cfg = os.path.join(tmp, "chains.yaml")
    with open(cfg, "w") as f:
        f.write(f"output: sqlite:{db}\nstate_dir: {state}\nchains:\n")
        for name, node in zip(names, nodes):
            f.write(f"  - name: {name}\n    rpc: {node.url}\n    chain_id: "
                    f"{int(node.rpc('eth_chainId'), 16)}\n")
    err_path = os.path.join(tmp, "chains.err")
    err = open(err_path, "w")
    cmd = [example, f"config={cfg}", "confirmations=0", "start_block=0", "poll_interval=0.2",
           "log_level=warn"]
    print("running:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                            text=True)
    out = Reader(proc)
    rps = {name: Replay() for name in names}
    known = {name: {} for name in names}

    def caught_up(label):
        chains = {}
        for name, node in zip(names, nodes):
            chains[name] = node_chain(node)
            remember(node, known[name], chains[name])

        def ok():
            if proc.poll() is not None:
                fail(f"{label}: print_blocks exited with {proc.returncode}:\n"
                     + open(err_path).read()[-3000:])
            lines = out.snapshot()
            for name in names:
                rps[name].feed(chain_lines(lines, name), known[name])
            return all(rps[n].tip() == (len(chains[n]) - 1, chains[n][-1]["hash"])
                       for n in names)
        try:
            wait_until(ok, 60, f"{label}: both replayed tips are their nodes' heads", 0.1)
        except TimeoutError as e:
            fail(f"{e}; tips {[rps[n].tip() for n in names]}; stderr:\n"
                 + open(err_path).read()[-3000:])
        for name in names:
            rps[name].check_is(chains[name], f"{label}, chain {name}")
        print(f"{label}: ok, " + ", ".join(f"{n}: {len(chains[n])} blocks" for n in names))
        return chains

    try:
        for _ in range(6):
            for wl in wls:
                wl.mine_batch(rng.randrange(0, 5))
            time.sleep(0.03)
        before = caught_up("two chains, initial sync")["two"]
        head = len(before) - 1
        a = wls[1].accounts
        nodes[1].rpc("anvil_reorg", [2, [[{"from": rng.choice(a), "to": rng.choice(a),
                                             "gas": hex(21000), "value": hex(777)}, 0]]])
        wls[1].after_reorg()
        wls[0].mine_batch(2)
        wls[1].mine_batch(1)
        chains = caught_up("two chains, chain two reorganised (depth 2)")
        replaced = [(n, before[n]["hash"]) for n in (head, head - 1)
                    if chains["two"][n]["hash"] != before[n]["hash"]]
        if rps["two"].reverts != replaced or len(replaced) != 2 or rps["one"].reverts:
            fail(f"reverts: two {rps['two'].reverts}, one {rps['one'].reverts}; want two "
                 f"{replaced} (the replaced blocks, highest first), none on one")
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(15)
        except subprocess.TimeoutExpired:
            fail("print_blocks did not stop within 15 s of SIGINT")
        out.t.join(5)
        log = open(err_path).read()
        if rc != 0 or any(f"stopped; chain {n}:" not in log for n in names):
            fail(f"print_blocks exited {rc} after SIGINT, want 0 and a stats line per chain:\n"
                 f"{log}")
        print("SIGINT: exit 0, a stats line per chain")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT chain, count(*) FROM blocks GROUP BY chain").fetchall())
    hashes = {n: [h for (h,) in con.execute("SELECT hash FROM blocks WHERE chain = ? ORDER BY "
                                             "number", (n,))] for n in names}
    con.close()
    for name in names:
        want = [b["hash"] for b in node_chain(nodes[names.index(name)])]
        if hashes[name] != want:
            fail(f"the SQLite output's chain {name}: {len(hashes[name])} blocks, want the "
                 f"node's {len(want)} (rows per chain: {rows})")
    print(f"the shared SQLite output holds each chain's blocks: {rows}")
    for name in names:
        path = os.path.join(state, f"{name}.json")
        if not os.path.exists(path) or "libblockpipe" not in open(path).read():
            fail(f"state_dir: no state file {path} saved by the library "
                 f"(dir has {os.listdir(state) if os.path.isdir(state) else 'nothing'})")
    print("state_dir: a state file per chain, saved by libblockpipe")

    head_two = nodes[1].block_number()
    r = subprocess.run([example, f"config={cfg}", "chain=two", "from=0", f"to={head_two}",
                        "log_level=warn"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or chain_lines(r.stdout.splitlines(), "one") or \
            len(chain_lines(r.stdout.splitlines(), "two")) != head_two + 1:
        fail(f"chain=two from=0 to={head_two}: exit {r.returncode}, want blocks 0..{head_two} "
             f"of chain two alone; stdout {r.stdout[:300]!r}, stderr {r.stderr[-1000:]!r}")
    r = subprocess.run([example, f"config={cfg}", "chain=three", "log_level=warn"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 2 or "'three'" not in r.stderr or "one, two" not in r.stderr:
        fail(f"chain=three (not in the list): exit {r.returncode}, stderr {r.stderr[-500:]!r}; "
             "want exit 2 at open naming it and the list")
    print("chain=NAME runs that chain alone; a name not in the list is refused at open")
    return known, replaced


def two_chains_resumed(example, nodes, known, replaced, tmp):
    """resume=CHAIN@N:HASH,... per chain of a two-chain pipe (no output: the callbacks are
    all): chain one after a canonical block goes on from the next; chain two, given the
    lowest block its reorg replaced and the two below, first reverts it. The nameless form
    with two chains and a chain the pipe does not run are refused."""
    names = ("one", "two")
    cfg = os.path.join(tmp, "resume.yaml")
    with open(cfg, "w") as f:
        f.write("chains:\n" + "".join(
            f"  - name: {n}\n    rpc: {node.url}\n    chain_id: "
            f"{int(node.rpc('eth_chainId'), 16)}\n" for n, node in zip(names, nodes)))
    chains = {n: node_chain(node) for n, node in zip(names, nodes)}
    k1 = len(chains["one"]) - 3
    n0, h0 = min(replaced)
    starts = {"one": (k1, chains["one"][k1]["hash"]), "two": (n0, h0)}
    args = [f"resume=one@{k1}:{chains['one'][k1]['hash']}",
            f"resume=two@{n0}:{h0}," + ",".join(f"{n}:{chains['two'][n]['hash']}"
                                                 for n in (n0 - 1, n0 - 2))]
    base = [example, f"config={cfg}", "confirmations=0", "poll_interval=0.2", "log_level=warn"]
    for bad, want in (([f"resume={k1}:{chains['one'][k1]['hash']}"], "names no chain"),
                      (args + [f"resume=three@1:{h0}"], "resume=three@")):
        r = subprocess.run(base + bad, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode == 0 or want not in r.stderr:
            fail(f"{bad}: exit {r.returncode}, want a failure saying {want!r}: "
                 f"{r.stderr[-800:]!r}")
    print("resume=N:HASH without a chain in a two-chain pipe, and resume=three@ (no such "
          "chain): refused")
    proc = subprocess.Popen(base + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out = Reader(proc)
    rps = {}
    for name in names:
        n, h = starts[name]
        rps[name] = Replay()
        rps[name].chain = [(b["hash"], b["txs"], b["logs"]) for b in chains[name][:n]]
        rps[name].chain.append((h,) + known[name][h][1:])

    def ok():
        if proc.poll() is not None:
            fail(f"resumed pipe exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        lines = out.snapshot()
        for name in names:
            rps[name].feed(chain_lines(lines, name), known[name])
        return all(rps[n].tip() == (len(chains[n]) - 1, chains[n][-1]["hash"]) for n in names)
    try:
        wait_until(ok, 60, "both resumed chains at their nodes' heads", 0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for name in names:
        rps[name].check_is(chains[name], f"resumed chain {name}")
    if rps["one"].reverts or rps["two"].reverts != [(n0, h0)]:
        fail(f"resumed: reverts one {rps['one'].reverts}, two {rps['two'].reverts}; want none "
             f"on one, [{(n0, h0)}] on two")
    print(f"resume=one@{k1}:.. resume=two@{n0}:..(orphaned),..: chain one from {k1 + 1}, "
          f"chain two reverted {n0} and went on from it; each exactly its node's chain")


def sanitize_flags(build):
    try:
        cache = open(os.path.join(build, "CMakeCache.txt")).read()
    except OSError:
        return []
    return ["-fsanitize=address,undefined"] if re.search(r"^BP_SANITIZE:BOOL=ON$", cache,
                                                          re.M) else []


# A callback's non-zero return stops the pipeline: bp_pipe_wait says BP_ESTOPPED naming it.
STOPPER = r"""
#include <blockpipe/blockpipe.h>
#include <stdio.h>
static int applied(void *user, const char *chain, const bp_block *b)
{
    (void)user, (void)chain;
    printf("applied %llu\n", (unsigned long long)b->number);
    return b->number == 3 ? 7 : 0;
}
int main(int argc, char **argv)
{
    bp_option o[] = {{"rpc", argc > 1 ? argv[1] : ""}, {"from", "0"}, {"to", "8"},
                     {"batch_size", "1"}, {"log_level", "error"}};
    bp_callbacks cb = {.applied = applied};
    bp_pipe *p;
    bp_error err;
    if (bp_pipe_open(o, 5, &cb, &p, &err) != 0 || bp_pipe_start(p, &err) != 0)
        return printf("open: %s\n", err.msg), 2;
    int rc = bp_pipe_wait(p, &err);
    printf("rc=%d done=%d %s\n", rc, bp_pipe_done(p), rc ? err.msg : "");
    bp_pipe_close(p);
    return 0;
}
"""


KEYED_PROGRAM = r"""
#include <blockpipe/keyed.h>
#include <stdio.h>
static int done_calls;
static void done(void *ctx, int rc, bp_keyed_entry *e, const bp_error *err)
{
    (void)ctx; (void)err;
    if (rc == 0 && e)
        printf("async %s\n", e->value);
    done_calls++;
}
int main(int argc, char **argv)
{
    bp_keyed *k;
    bp_keyed_entry e;
    bp_error err = {0};
    bool found = false;
    if (argc < 2 || bp_keyed_open(argv[1], &k, &err) != 0)
        return 1;
    if (bp_keyed_publish(k, "price", "{\"usd\": 7}", &e, &err) != 0)
        return 2;
    bp_keyed_entry_release(&e);
    if (bp_keyed_latest(k, "price", &e, &found, &err) != 0 || !found)
        return 3;
    printf("latest %s\n", e.value);
    bp_keyed_entry_release(&e);
    if (bp_keyed_publish_async(k, "price", "{\"usd\": 8}", done, NULL, &err) != 0)
        return 4;
    while (bp_keyed_pending(k))
        bp_keyed_poll(k);
    bp_keyed_close(k);
    return done_calls == 1 ? 0 : 5;
}
"""


def keyed_out_of_tree(tmp, base, flags, env, libdir, build):
    """The keyed-stream functions (blockpipe/keyed.h) are installed and exported: a program
    of its own builds against the installed library and publishes and reads back."""
    src = os.path.join(tmp, "keyed_prog.c")
    with open(src, "w") as f:
        f.write(KEYED_PROGRAM)
    exe = os.path.join(tmp, "keyed_prog")
    cc = [base[0], "-std=c17", "-Wall", "-Wextra", "-Werror", src, "-o", exe] + flags + \
        sanitize_flags(build)
    r = subprocess.run(cc, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"a keyed-stream program does not build against the installed library:\n"
             f"{r.stderr[-3000:]}")
    r = subprocess.run([exe, "sqlite:" + os.path.join(tmp, "keyed.db")],
                       env=dict(os.environ, LD_LIBRARY_PATH=libdir), capture_output=True,
                       text=True, timeout=60)
    want = ['latest {"usd": 7}', 'async {"usd": 8}']
    if r.returncode != 0 or [ln.replace('{"usd":7}', '{"usd": 7}').replace(
            '{"usd":8}', '{"usd": 8}') for ln in r.stdout.splitlines()] != want:
        fail(f"keyed-stream program: exit {r.returncode}, {r.stdout!r} {r.stderr[-2000:]}")
    print("installed: blockpipe/keyed.h builds and runs against libblockpipe.so")


def out_of_tree(node, src, build, tmp):
    prefix = os.path.join(tmp, "prefix")
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                   stdout=subprocess.DEVNULL)
    pcdirs = [os.path.join(d, "pkgconfig") for d, _, files in os.walk(prefix)
              if "pkgconfig" in os.listdir(d)]
    if not pcdirs:
        fail(f"no pkgconfig directory installed under {prefix}")
    env = dict(os.environ, PKG_CONFIG_PATH=pcdirs[0])
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "blockpipe"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    if any(f.startswith("-I") and src in f for f in flags):
        fail(f"pkg-config points into the source tree: {flags}")
    exe = os.path.join(tmp, "print_blocks")
    base = [os.environ.get("CC", "cc"), "-std=c17", "-Wall", "-Wextra", "-Werror",
            os.path.join(src, "examples", "print_blocks.c"), "-o"]
    cc = base + [exe] + flags + sanitize_flags(build)
    print("building:", " ".join(shlex.quote(c) for c in cc))
    r = subprocess.run(cc, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"the out-of-tree build failed:\n{r.stderr}")
    libdir = os.path.dirname(pcdirs[0])
    so = os.path.join(libdir, "libblockpipe.so")
    dyn = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    names = [ln.split()[-1] for ln in dyn if ln.strip()]
    others = [n for n in names if not n.startswith("bp_") and not n.startswith("__odr_asan")]
    if others or "bp_pipe_open" not in names or "bp_pipe_chain_stats" not in names:
        fail(f"libblockpipe.so exports {others[:10]} (want bp_ symbols only, bp_pipe_open "
             "among them)")
    soname = subprocess.run(["objdump", "-p", so], capture_output=True, text=True).stdout
    if not re.search(r"SONAME\s+libblockpipe\.so\.\d+", soname):
        fail("libblockpipe.so has no versioned SONAME")
    print(f"installed: {len(names)} exported symbols, all bp_; soname ok")
    keyed_out_of_tree(tmp, base, flags, env, libdir, build)
    # libblockpipe.a: the .pc's Requires.private (their shared libraries: static builds of
    # libcurl's own dependencies are not installed here) and Libs.private
    mods = subprocess.run(["pkg-config", "--print-requires-private", "blockpipe"], env=env,
                          check=True, capture_output=True, text=True).stdout.split()
    deps = subprocess.run(["pkg-config", "--libs"] + mods, env=env, check=True,
                          capture_output=True, text=True).stdout.split()
    pc_text = open(os.path.join(pcdirs[0], "blockpipe.pc")).read()
    private = re.search(r"^Libs\.private:(.*)$", pc_text, re.M)[1].split()
    static_exe = exe + "-static"
    cc_static = base + [static_exe] + [f for f in flags if f.startswith("-I")]
    cc_static += [os.path.join(libdir, "libblockpipe.a")] + deps + private + sanitize_flags(build)
    r = subprocess.run(cc_static, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"linking with libblockpipe.a failed:\n{' '.join(cc_static)}\n{r.stderr[-3000:]}")
    head = node.block_number()
    chain = node_chain(node)
    known = {}
    remember(node, known, chain)
    for prog, env_run in ((exe, dict(os.environ, LD_LIBRARY_PATH=libdir)),
                          (static_exe, dict(os.environ))):
        r = subprocess.run([prog, node.url, "from=0", f"to={head}", "log_level=warn"],
                           env=env_run, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"the out-of-tree {prog} exited {r.returncode}:\n{r.stderr[-3000:]}")
        rp = Replay()
        rp.feed(r.stdout.splitlines(), known)
        rp.check_is(chain, f"out-of-tree {os.path.basename(prog)}: backfill 0..head")
    print(f"out-of-tree builds (shared and static): each backfilled {len(chain)} blocks exactly")

    stopper_c, stopper = os.path.join(tmp, "stopper.c"), os.path.join(tmp, "stopper")
    open(stopper_c, "w").write(STOPPER)
    cc = [base[0], "-std=c17", "-Wall", "-Wextra", "-Werror", stopper_c, "-o", stopper]
    r = subprocess.run(cc + flags + sanitize_flags(build), env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"building the stopper failed:\n{r.stderr}")
    r = subprocess.run([stopper, node.url], env=dict(os.environ, LD_LIBRARY_PATH=libdir),
                       capture_output=True, text=True, timeout=120)
    want = "applied 0\napplied 1\napplied 2\napplied 3\nrc=-13 done=1 "
    if r.returncode != 0 or not r.stdout.startswith(want) or \
            "the applied callback returned 7 at block 3" not in r.stdout:
        fail(f"a callback returning 7 at block 3: exit {r.returncode}, stdout {r.stdout!r}, want "
             f"blocks 0..3 then BP_ESTOPPED naming it; stderr {r.stderr[-1000:]!r}")
    print("a callback's non-zero return stops the pipeline: BP_ESTOPPED naming it")


def main():
    print(__doc__.strip())
    example = os.path.join(os.environ.get("BP_BUILD_DIR", ""), "print_blocks")
    src = os.environ.get("BP_SOURCE_DIR", "")
    if not os.access(example, os.X_OK):
        sys.exit(f"FAIL: {example} is not built (BP_TESTS=ON builds it)")
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="bp-library-")
    node = Anvil()
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        reverts, known = follow(example, node, wl, rng, tmp.name)
        resumed(example, node, reverts, known)
        second = Anvil(["--chain-id", "31338"])
        try:
            wl2 = Workload(second, seed=SEED + 1)
            wl2.setup()
            known2, replaced = two_chains(example, (node, second), (wl, wl2), rng, tmp.name)
            two_chains_resumed(example, (node, second), known2, replaced, tmp.name)
        finally:
            second.stop()
        out_of_tree(node, src, os.environ["BP_BUILD_DIR"], tmp.name)
        print("OK: the library delivered every applied and reverted block exactly, of one "
              "chain and of two in one pipe; the installed headers and blockpipe.pc build the "
              "example")
    except AssertionError as e:
        sys.exit(f"FAIL: {e}")
    finally:
        node.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
