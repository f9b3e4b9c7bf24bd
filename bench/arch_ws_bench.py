#!/usr/bin/env python3
"""arch_ws_bench.py - Arch WebSocket events/s from `blockpipe simnode --chain-type arch` through
`blockpipe run --ws` into SQLite, vs the raw WebSocket transport (a plain client reading the
same six topics from the same node), with blockpipe's peak RSS.

    python3 bench/arch_ws_bench.py --blockpipe build/blockpipe --out docs/PERFORMANCE.md

The node makes a block of TXS transactions every BT seconds: per block TXS transaction events,
2 x TXS account_update events and one block event (and a dkg event every 16th block), so it
sends (3 TXS + 1) / BT events/s. At each block time (shortest last) the raw client and then
blockpipe read the node for SECONDS each: the raw rate is what a bare socket reader sees (the
node's pace when the client keeps up), blockpipe's is the arch_events rows it committed whose
receive time falls in its window, per second, once it has committed every block of the
window (an event is committed with its block's batch; the time that took after the window's
end is reported: it grows with the window when blockpipe falls behind).
The same method as the EVM simnode figure (bench/ingest_bench.py): the same node, blockpipe
vs the transport alone, the ratio read; peak RSS from wait4 on blockpipe's PID.
"""
import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perfdoc  # noqa: E402
from wsclient import WSClient  # noqa: E402

TOPICS = ["block", "transaction", "account_update", "rolledback_transactions",
          "reapplied_transactions", "dkg"]


def start_node(blockpipe, bt, txs):
    p = subprocess.Popen([blockpipe, "simnode", "--listen", "127.0.0.1:0", "--chain-type",
                          "arch", "--block-time", str(bt), "--start-head", "10",
                          "--txs-per-block", f"{txs}-{txs}", "--seed", "7"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on http://"):
        p.kill()
        sys.exit(f"simnode did not start: {line!r}")
    return p, line.split()[-1]


def raw_rate(url, seconds):
    """Events/s a bare client reads (subscribe answers not counted)."""
    ws = WSClient(int(url.rsplit(":", 1)[1]))
    for i, t in enumerate(TOPICS):
        ws.send(json.dumps({"method": "subscribe", "params": {"topic": t, "filter": {},
                                                              "request_id": str(i)}}))
    n, t0 = 0, None
    while True:
        msg = ws.recv()
        if b'"topic"' in msg[:12]:
            t0 = t0 or time.monotonic()
            n += 1
            if time.monotonic() - t0 >= seconds:
                break
    dt = time.monotonic() - t0
    ws.close()
    return n / dt


def node_head(url):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_block_count", "params": []})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["result"] - 1


def checkpoint(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = con.execute("SELECT number FROM checkpoints").fetchone()
        con.close()
        return row[0] if row else -1
    except sqlite3.Error:
        return -1


def blockpipe_rate(blockpipe, url, seconds, tmp):
    db = os.path.join(tmp, "ws.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    log = open(os.path.join(tmp, "run.log"), "w")
    proc = subprocess.Popen([blockpipe, "run", "--chain-type", "arch", "--rpc", url,
                             "--ws", "ws://" + url.split("://", 1)[1], "--output",
                             f"sqlite:{db}", "--start-block", "latest", "--log-level", "info"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)  # subscribed, caught up with the start
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        head = node_head(url)
        while checkpoint(db) < head and time.time() - t1 < 60:
            time.sleep(0.02)
        behind = time.time() - t1  # until every block of the window is committed
        proc.send_signal(signal.SIGINT)
        rss = perfdoc.wait_rss(proc, 30)
        if rss is None or proc.returncode != 0:
            sys.exit(f"blockpipe did not exit 0 on SIGINT ({proc.returncode}):\n"
                     + open(os.path.join(tmp, "run.log")).read()[-2000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM arch_events WHERE received_at BETWEEN ? AND ?",
                    (t0, t1)).fetchone()[0]
    con.close()
    return n / (t1 - t0), rss, behind


def run(a):
    rows = []
    with tempfile.TemporaryDirectory(prefix="bp-arch-ws-bench-") as tmp:
        for bt in a.block_times:
            node, url = start_node(a.blockpipe, bt, a.txs)
            try:
                time.sleep(0.5)
                raw = raw_rate(url, a.seconds)
                bp, rss, behind = blockpipe_rate(a.blockpipe, url, a.seconds, tmp)
            finally:
                node.kill()
                node.wait()
            made = (3 * a.txs + 1) / bt
            print(f"block time {bt}s: node {made:.0f} events/s, raw client {raw:.0f}, "
                  f"blockpipe {bp:.0f} (peak RSS {rss:.0f} MiB, caught up {behind:.2f} s after)",
                  flush=True)
            rows.append((bt, made, raw, bp, rss, behind))
    table = ["| block time | node sends (events/s) | raw client | blockpipe → SQLite | "
             "blockpipe / raw | caught up after the window | blockpipe peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for bt, made, raw, bp, rss, behind in rows:
        table.append(f"| {bt} s | {made:.0f} | {raw:.0f} | {bp:.0f} | {bp / raw:.2f} | "
                     f"{behind:.2f} s | {rss:.0f} MiB |")
    cpu = os.cpu_count()
    perfdoc.publish(a.out, "archws", f"""Measured by bench/arch_ws_bench.py on {cpu} cores
(shared with other work: read the ratio): `blockpipe simnode --chain-type arch` making a block
of {a.txs} transactions every block time (per block {a.txs} `transaction`, {2 * a.txs}
`account_update` and one `block` event), read for {a.seconds} s by a bare WebSocket client
(bench/wsclient.py, the six topics) and then by `blockpipe run --chain-type arch --ws` into
SQLite (the events' `arch_events` rows with receive times in its window, per second, counted once
every block of the window was committed: how long after the window that took is shown; its
blocks come over HTTP meanwhile, `get_processed_transaction` per transaction). The node paces
both: a ratio near 1 means blockpipe stored what the socket brought, a catch-up time near 0
that it kept up at that rate.

{chr(10).join(table)}
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blockpipe", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--txs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3 if perfdoc.quick() else 10)
    ap.add_argument("--block-times", type=float, nargs="+", default=[0.2, 0.05, 0.02, 0.01])
    a = ap.parse_args()
    perfdoc.guarded(a.out, "archws", lambda: run(a))


if __name__ == "__main__":
    main()
