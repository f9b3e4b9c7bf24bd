#!/usr/bin/env python3
"""simnode_bench.py - how fast `blockpipe simnode` serves 200-tx blocks with their receipts.

    python3 bench/simnode_bench.py [--build build] [--blocks 3000] [--threads 1,2,4]
                                   [--txs 200] [--backfill]

Starts `BUILD/blockpipe simnode --block-time 0` and runs `BUILD/bench_curl_loop` (batches of
[eth_getBlockByNumber(n, true), eth_getBlockReceipts(n)], bytes discarded) at each thread
count. Prints blocks/s, MB/s and the server's own CPU time per block (from /proc), which is
what a backfill on a machine with spare cores would see of the server. With --backfill it
also runs `blockpipe backfill` into SQLite from simnode, to show who is the bottleneck.
Use a release build: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DBP_SANITIZE=OFF.
"""
import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def curl_loop(build, url, first, last, threads, pid):
    c0 = cpu_seconds(pid)
    out = subprocess.run([os.path.join(build, "bench_curl_loop"), url, str(first), str(last),
                          str(threads)], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - c0
    kv = dict(p.split("=") for p in out.split())
    blocks, secs, nbytes = int(kv["blocks"]), float(kv["seconds"]), int(kv["bytes"])
    print(f"threads={threads:<3} blocks/s={blocks / secs:8.0f}  MB/s={nbytes / secs / 1e6:7.0f}  "
          f"KB/block={nbytes / blocks / 1e3:5.0f}  server CPU ms/block={cpu * 1e3 / blocks:.3f}")


def backfill(build, url, blocks):
    tmp = tempfile.mkdtemp(prefix="bp_simbench.")
    try:
        t = time.monotonic()
        subprocess.run([os.path.join(build, "blockpipe"), "backfill", "--rpc", url, "--from", "1",
                        "--to", str(blocks), "--output", f"sqlite:{tmp}/x.db", "--log-level",
                        "warn"], check=True)
        secs = time.monotonic() - t
        print(f"backfill into SQLite: {blocks / secs:.0f} blocks/s ({blocks} blocks, {secs:.1f} s)")
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--blocks", type=int, default=3000)
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--txs", type=int, default=200)
    ap.add_argument("--backfill", action="store_true")
    a = ap.parse_args()
    node = subprocess.Popen([os.path.join(a.build, "blockpipe"), "simnode", "--listen",
                             "127.0.0.1:0", "--block-time", "0", "--length",
                             str(a.blocks * 4 + 1), "--txs-per-block", str(a.txs)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = node.stdout.readline().split()[-1]
        print(f"simnode {url}: {a.txs} txs per block, nproc={os.cpu_count()}")
        first = 1
        for t in (int(x) for x in a.threads.split(",")):
            curl_loop(a.build, url, first, first + a.blocks - 1, t, node.pid)
            first += a.blocks
        if a.backfill:
            backfill(a.build, url, min(a.blocks, 2000))
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=20)


if __name__ == "__main__":
    main()
