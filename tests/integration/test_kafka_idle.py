"""The Kafka output commits the transaction it holds open when no batch follows (the writer's
idle commit, BP_OPEN_BATCHES_MS).

Behind the head the Kafka output keeps one transaction open across the batches marked
bp_batch.more and commits the group at the first batch without it, at 8 batches, 2 MiB, or
when no batch came for 500 ms. `blockpipe run --batch-size 1` follows simnode's long chain
(every batch full and behind the head: each marked more); simnode is then paused (SIGSTOP),
so no next batch comes. While it stays paused the output's checkpoint record in Kafka (the
last record of a committed transaction: the mock cluster writes no transaction markers, see
tests/tools/kafka.py) must reach the block the pipeline last wrote (/api/sync-status's
output checkpoint, which counts what the output holds open too), hash included. Twice: a
stall may land where a group ended anyway (its 8th batch); with the idle commit disabled
both stalls do so about once in 64 runs. Then simnode goes on (SIGCONT), the checkpoint
moves past the stall, and SIGTERM exits 0.
"""

import json
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from apiclient import Api, wait_http  # noqa: E402
from kafka import KafkaMock, checkpoint_of  # noqa: E402
from pgcheck import Fail, RunProc, blockpipe_bin, wait_for  # noqa: E402
from server import free_port  # noqa: E402
from simnode import Simnode  # noqa: E402

CHAIN = "1337"
HANG = 60


def written(api):
    """(number, hash) of the Kafka output's checkpoint as the pipeline reports it."""
    outs = api.ok("/api/sync-status")["outputs"]
    if not outs or outs[0]["checkpoint"] is None:
        return None
    return outs[0]["checkpoint"], outs[0]["checkpoint_hash"]


def settled(api, run):
    """The pipeline's checkpoint once it stopped moving (the blocks fetched before the pause
    are written within milliseconds of it)."""
    last = [None]

    def same():
        run.alive()
        now = written(api)
        same = now is not None and now == last[0]
        last[0] = now
        return same
    wait_for(same, HANG, "the pipeline's checkpoint to stop moving", 1.0)
    return last[0]


def stall(api, k, node, run, label):
    before = written(api)
    wait_for(lambda: run.alive() and (written(api) or (-1,))[0] >= (before or (-1,))[0] + 40,
             HANG, f"{label}: 40 blocks written")
    node.proc.send_signal(signal.SIGSTOP)
    want = settled(api, run)
    try:
        wait_for(lambda: run.alive() and checkpoint_of(k, CHAIN) == want, HANG,
                 f"{label}: the Kafka checkpoint record of block {want[0]}", 0.3)
    except Fail as e:
        raise Fail(f"{e} (the last written, the node paused); it is {checkpoint_of(k, CHAIN)}")
    if written(api) != want:
        raise Fail(f"{label}: the pipeline wrote {written(api)} after {want} while paused")
    print(f"  {label}: node paused at block {want[0]}; the open group committed up to it")
    node.proc.send_signal(signal.SIGCONT)
    return want[0]


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    node = Simnode(bp, ["--length", "1000000", "--block-time", "0", "--txs-per-block", "2"])
    with KafkaMock() as k, tempfile.TemporaryDirectory(prefix="bp-kafka-idle-") as tmp:
        port = free_port()
        run = RunProc(bp, tmp, "run", [
            "--rpc", node.urls[0], "--output", k.url("entities=blocks"), "--start-block", "0",
            "--batch-size", "1", "--api", f"127.0.0.1:{port}", "--stats-interval", "60"])
        try:
            wait_http(port, HANG, run.p)
            api = Api(port)
            first = stall(api, k, node, run, "stall 1")
            second = stall(api, k, node, run, "stall 2")
            wait_for(lambda: run.alive() and (checkpoint_of(k, CHAIN) or (0,))[0] > second,
                     HANG, "the checkpoint past the second stall")
            run.stop()
        finally:
            node.proc.send_signal(signal.SIGCONT)
            run.kill()
            node.kill()
    print(f"OK: the open Kafka transaction committed at blocks {first} and {second}, the "
          "node paused")


if __name__ == "__main__":
    try:
        main()
    except (Fail, AssertionError, TimeoutError, RuntimeError, json.JSONDecodeError) as e:
        sys.exit(f"FAIL: {e}")
