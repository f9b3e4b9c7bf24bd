"""`blockpipe serve` beside a writer, and the API's edges a reviewer found (servefix).

A `blockpipe run --api` follows anvil into a SQLite file; a `blockpipe serve` serves that file
while run writes it. Checked:
- serve of a mistyped path exits non-zero naming the path and creates no file (it serves an
  existing database, read-only);
- serve's /api/sync-status has the chain and the output's checkpoint as the database holds it;
- an SSE client of serve (?topics=all) gets status messages and each new block as run commits
  it, in order, the blocks' hashes the node's, and after anvil_reorg (depth 2) the reverts of
  the blocks replaced and the new branch's blocks;
- a POST without a body nor Content-Length is answered at once (405, 404, 400), not after the
  request timeout;
- ?chain= naming another chain is a 404 on /api/sync-status, /metrics and /ready, both for run
  (one chain) and serve, and the chain's own name a 200;
- /api/blocks?from=10&to=5 is a 400 naming from and to; / lists every endpoint.
"""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, wait_until  # noqa: E402
from apiclient import API_ANY, SSE, Api, api_port, start_blockpipe as start, wait_http  # noqa: E402

HANG = 120  # seconds: only a guard against a hang
# serve's request timeout: a POST left waiting for a body it never gets would wait this long,
# longer than the socket's own guard below
REQUEST_TIMEOUT = "300"


def fail(msg):
    raise AssertionError(msg)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(2)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def checkpoint(db):
    """The database's (chain, number, hash), None when none."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT chain, number, hash FROM checkpoints").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None


def raw_post(port, path):
    """POST path with no body and no Content-Length: (status, the answer's text)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=HANG / 4)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                fail(f"POST {path} without a body: no answer within {HANG / 4} s")
            if not chunk:
                fail(f"POST {path} without a body: closed without an answer ({data!r})")
            data += chunk
        return int(data.split()[1]), data.decode("latin-1")
    finally:
        s.close()


def check_missing_path(tmp):
    typo = os.path.join(tmp, "typo.db")
    log = os.path.join(tmp, "serve-typo.log")
    p = start(["serve", "--output", f"sqlite:{typo}", "--api", API_ANY], log)
    try:
        rc = p.wait(HANG)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("serve of a missing file did not exit (it served an empty database)")
    text = open(log).read()
    if rc == 0 or "typo.db" not in text:
        fail(f"serve of a missing file: exit {rc}, log:\n{text}")
    made = [f for f in os.listdir(tmp) if f.startswith("typo.db")]
    if made:
        fail(f"serve of a missing file created {made}")
    print(f"check: serve of a missing file exits {rc} naming it, creates nothing", flush=True)


def check_chain_param(api, chain, label):
    for path in ("/api/sync-status", "/metrics", "/ready"):
        status, _, body = api.get(f"{path}?chain=nope")
        if status != 404 or "nope" not in str(body):
            fail(f"{label}: {path}?chain=nope answered {status} {str(body)[:200]}")
        status, _, body = api.get(f"{path}?chain={chain}")
        if status != 200:
            fail(f"{label}: {path}?chain={chain} answered {status} {str(body)[:200]}")
    print(f"check: {label}: ?chain=nope is a 404, ?chain={chain} a 200", flush=True)


def check_edges(api, label):
    for path, want in (("/api/blocks", 405), ("/nope", 404), ("/api/predictions", 400)):
        status, text = raw_post(api.port, path)
        if status != want:
            fail(f"{label}: POST {path} without a body answered {status}, not {want}: {text}")
    status, _, body = api.get("/api/blocks?from=10&to=5")
    if status != 400 or "from" not in body.get("error", "") or "to" not in body["error"]:
        fail(f"{label}: /api/blocks?from=10&to=5 answered {status} {body}")
    index = api.ok("/")["endpoints"]
    for path in ("/api/analytics", "/api/predictions", "/api/v1/streaming/pairs", "/dashboard",
                 "/api/sync-status", "/metrics"):
        if path not in index:
            fail(f"{label}: / lists no {path}: {index}")
    print(f"check: {label}: POSTs without a body answered at once; an empty range is a 400; "
          "/ lists every endpoint",
          flush=True)


def main():
    print(__doc__.strip(), flush=True)
    tmp = tempfile.mkdtemp(prefix="bp-servelive-")
    node = Anvil()
    procs = []
    try:
        check_missing_path(tmp)
        node.mine(3)
        db = os.path.join(tmp, "run2.db")
        run_log = os.path.join(tmp, "run.log")
        run = start(["run", "--rpc", node.url, "--start-block", "0", "--output", f"sqlite:{db}",
                     "--poll-interval", "0.2", "--api", API_ANY, "--api-rate-limit", "0"],
                    run_log)
        procs.append(run)
        run_api = Api(api_port(run_log, HANG, run))
        head = node.block_number()
        wait_until(lambda: (checkpoint(db) or ("", -1))[1] >= head, HANG, "run at the head")
        chain = checkpoint(db)[0]
        wait_until(lambda: run_api.get("/ready")[0] == 200, HANG, "run's /ready")
        check_chain_param(run_api, chain, "run")

        serve_log = os.path.join(tmp, "serve.log")
        sp = start(["serve", "--output", f"sqlite:{db}", "--api", API_ANY, "--api-rate-limit", "0",
                    "--api-request-timeout", REQUEST_TIMEOUT], serve_log)
        procs.append(sp)
        api = Api(api_port(serve_log, HANG, sp))
        wait_http(api.port, HANG, sp)

        def synced():
            st = api.ok("/api/sync-status")
            cp = checkpoint(db)
            return (st["chains"] and st["outputs"] and cp and
                    st["chains"][0]["chain"] == cp[0] and
                    st["outputs"][0]["checkpoint"] == cp[1] and
                    st["outputs"][0]["checkpoint_hash"] == cp[2])
        wait_until(synced, HANG, "serve's /api/sync-status to show the database's checkpoint")
        print("check: serve's /api/sync-status has the chain and the database's checkpoint",
              flush=True)

        sse = SSE(api.port, "/api/events?topics=all")
        if sse.status != 200:
            fail(f"serve: /api/events: {sse.status_line} {sse.body()}")
        first = node.block_number() + 1
        node.mine(3)
        last = node.block_number()
        seen, statuses, reverts = {}, 0, 0

        def follow(done, what):
            """Applies serve's messages to seen (apply adds, revert drops) until done()."""
            nonlocal statuses, reverts
            deadline = time.monotonic() + HANG  # status messages keep coming: a guard of its own
            while not done():
                if time.monotonic() > deadline:
                    fail(f"serve: {what} not pushed within {HANG} s: {seen}")
                ev = sse.next_event(HANG)
                if ev is None:
                    fail("serve: the SSE stream ended")
                m = ev["data"]
                if m["topic"] == "status" and m["data"]["chains"]:
                    statuses += 1
                elif m["topic"] == "blocks" and m["type"] == "apply":
                    n = m["data"]["number"]
                    if n in seen or (seen and n != max(seen) + 1):
                        fail(f"serve: block {n} pushed out of order after {sorted(seen)}")
                    seen[n] = m["data"]["hash"]
                elif m["topic"] == "blocks" and m["type"] == "revert":
                    reverts += 1
                    if seen.get(m["block_number"]) != m["block_hash"] or \
                            m["block_number"] != max(seen):
                        fail(f"serve: revert of {m['block_number']} {m['block_hash']}, not the "
                             f"newest block pushed: {seen}")
                    del seen[m["block_number"]]

        def canonical(lo, hi):
            return all(seen.get(n) == node.block(n, False)["hash"] for n in range(lo, hi + 1))

        follow(lambda: len(seen) == last - first + 1 and statuses, f"blocks {first}..{last}")
        if not canonical(first, last):
            fail(f"serve: blocks {first}..{last} pushed as {seen}, not the node's")
        print(f"check: serve pushed blocks {first}..{last} as run committed them, and status "
              f"({statuses} message(s))", flush=True)
        node.rpc("anvil_reorg", [2, []])  # the last two blocks replaced
        node.mine(1)
        head = node.block_number()
        follow(lambda: reverts and max(seen) == head and canonical(first, head),
               f"the reorg's reverts and the new branch up to {head}")
        print(f"check: serve pushed a reorg ({reverts} revert(s)) and the new branch up to "
              f"{head}", flush=True)
        # more blocks than serve remembers (128), committed in batches: each poll brings many,
        # and every one must carry its own hash once the remembered window is full and moves
        node.mine(300)
        head = node.block_number()
        follow(lambda: max(seen) == head, f"blocks up to {head}")
        if not canonical(first, head):
            bad = [n for n in range(first, head + 1) if seen.get(n) != node.block(n, False)["hash"]]
            fail(f"serve: blocks {bad[:5]}... pushed with hashes not the node's")
        sse.close()
        print(f"check: serve pushed 300 more blocks, each with its own hash", flush=True)

        check_chain_param(api, chain, "serve")
        check_edges(api, "serve")
        check_edges(run_api, "run")
        for p in procs:
            stop(p)
            if p.returncode != 0:
                fail(f"a blockpipe exited with {p.returncode} after SIGINT")
    except (AssertionError, TimeoutError) as e:
        for name in ("run.log", "serve.log", "serve-typo.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                print(f"--- {name} (last 40 lines)")
                print("".join(open(path).readlines()[-40:]))
        print("FAIL:", e)
        sys.exit(1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        node.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print("OK: serve pushes and reports what the writer commits; the API's edges answer at once")


if __name__ == "__main__":
    main()
