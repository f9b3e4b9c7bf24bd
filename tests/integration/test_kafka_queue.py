"""The Kafka output's librdkafka queue against the memory budget (librdkafka's mock cluster).

librdkafka holds every message produced until the broker acknowledges it: a whole batch's at
least (the checkpoint record follows their delivery), 1 GiB by default
(queue.buffering.max.kbytes), none of it counted in --max-memory before.
`blockpipe backfill` of simnode blocks of 60 transactions, 100 blocks a batch, with
linger.ms=300 so that a batch's messages wait in the queue together:
 1. default: the output says at start how much the queue may hold (64 MiB, its cap unless the
    user sets one) and from what it is charged to the budget (1 MiB, within the output's fixed
    part); at the end its charge beyond the fixed part is reported (the batches' messages
    passed 1 MiB); every block is in the blocks topic once, committed.
 2. --kafka-set queue.buffering.max.kbytes=1024: the user's cap is kept (and said); a batch
    larger than it waits for deliveries and still gets through whole.
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from kafka import KafkaMock, committed  # noqa: E402
from pgcheck import Fail, blockpipe_bin, script_main, tail  # noqa: E402
from simnode import Simnode  # noqa: E402

LAST = 199
PEAK = re.compile(r"output 'kafka://[^']*': its buffers held up to ([0-9.]+) MiB beyond its "
                  r"fixed part")


def backfill(bp, node, k, prefix, log_path, extra):
    cmd = [bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", str(LAST),
           "--batch-size", "100", "--output",
           k.url(f"entities=blocks,transactions,logs&prefix={prefix}"),
           "--kafka-timeout", "20", "--log-level", "debug"] + extra
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=300).returncode
    text = open(log_path).read()
    if rc != 0:
        raise Fail(f"{prefix}: backfill exit {rc}:\n{tail(log_path)}")
    return text


def blocks_once(k, prefix, label):
    recs = committed(k, k.consume(prefix + "blocks"), prefix)
    nums = sorted(r["value"]["number"] for r in recs if r["value"]["type"] == "apply")
    if nums != list(range(LAST + 1)):
        raise Fail(f"{label}: committed blocks {nums[:5]}..{nums[-5:]} ({len(nums)}), "
                   f"want 0..{LAST} once each")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    tmp = tempfile.TemporaryDirectory(prefix="bp-kafka-queue-")
    node = Simnode(bp, ["--length", str(LAST + 2), "--block-time", "0", "--txs-per-block", "60"])
    try:
        with KafkaMock() as k:
            log1 = os.path.join(tmp.name, "1.log")
            text = backfill(bp, node, k, "q1_", log1, ["--kafka-set", "linger.ms=300"])
            want = ("messages waiting for delivery up to 64.0 MiB (queue.buffering.max.kbytes), "
                    "beyond 1.0 MiB charged to the memory budget")
            if want not in text:
                raise Fail(f"1: no '{want}' at start:\n{tail(log1)}")
            m = PEAK.search(text)
            if not m or float(m.group(1)) <= 0:
                raise Fail(f"1: the queue's charge to the memory budget is not reported:\n"
                           f"{tail(log1)}")
            blocks_once(k, "q1_", "1")
            print(f"1 ok: the queue charged up to {m.group(1)} MiB beyond the fixed part; "
                  f"blocks 0..{LAST} once each")

            log2 = os.path.join(tmp.name, "2.log")
            text = backfill(bp, node, k, "q2_", log2,
                            ["--kafka-set", "queue.buffering.max.kbytes=1024;linger.ms=300"])
            if "messages waiting for delivery up to 1.0 MiB" not in text:
                raise Fail(f"2: the user's queue.buffering.max.kbytes=1024 not kept:\n"
                           f"{tail(log2)}")
            blocks_once(k, "q2_", "2")
            print(f"2 ok: the user's cap of 1 MiB kept; blocks 0..{LAST} once each")
        print("OK: librdkafka's queue is capped and charged to the memory budget")
    finally:
        node.kill()
        tmp.cleanup()


if __name__ == "__main__":
    script_main(main)
