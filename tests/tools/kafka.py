"""kafka.py - librdkafka's mock Kafka cluster for tests, and a read-committed consumer.
Python 3.11 stdlib only; the C helpers tests/tools/kafka_mock.c and kafka_consume.c do the
Kafka part ($BP_KAFKA_MOCK and $BP_KAFKA_CONSUME, set by ctest).

    from kafka import KafkaMock, committed
    with KafkaMock() as k:                  # a mock cluster in a child process
        url = k.url("entities=blocks,transactions")   # kafka://127.0.0.1:PORT?create_topics=off&...
        k.down(1); k.up(1)                  # broker 1 down (connections dropped, refused), up
        k.fail(26, 90)                      # the next EndTxn answered PRODUCER_FENCED
        recs = k.consume("blocks", "transactions")     # every record, read_committed
        recs = committed(k, recs)           # only those of committed transactions (below)

The mock cluster (librdkafka 2.0.2) accepts the transactional producer's requests but writes
no transaction markers: an aborted transaction's records are served as if committed. The
Kafka output names each record's transaction in a bp-txn header and writes a checkpoint
record of the transaction last; committed() keeps the records whose transaction has a
checkpoint record - what a read_committed consumer of a real broker gets. The mock has no
CreateTopics either: URLs here say create_topics=off (topics are auto-created).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess


def tool(name: str) -> str:
    env = {"mock": "BP_KAFKA_MOCK", "consume": "BP_KAFKA_CONSUME"}[name]
    path = os.environ.get(env) or os.path.join(os.environ.get("BP_BUILD_DIR", "build"), "tests",
                                               f"kafka_{name}")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not built (librdkafka-dev missing? run "
                           "bash scripts/install-deps.sh and rebuild with -DBP_TESTS=ON)")
    return path


def _pdeathsig():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class KafkaMock:
    def __init__(self, brokers: int = 1):
        self.proc = subprocess.Popen([tool("mock"), str(brokers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, preexec_fn=_pdeathsig)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("bootstrap="):
            self.stop()
            raise RuntimeError(f"kafka_mock printed {line!r}, expected bootstrap=...")
        self.bootstrap = line.split("=", 1)[1]

    def _say(self, cmd: str):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError(f"kafka_mock did not do {cmd!r}")

    def down(self, broker: int = 1):
        self._say(f"down {broker}")

    def up(self, broker: int = 1):
        self._say(f"up {broker}")

    def fail(self, api_key: int, code: int, count: int = 1):
        """The next `count` requests of api_key (any client) answered with error `code`."""
        self._say(f"fail {api_key} {code} {count}")

    def url(self, query: str = "") -> str:
        q = "create_topics=off" + ("&" + query if query else "")
        return f"kafka://{self.bootstrap}?{q}"

    def consume(self, *topics, timeout: float = 90.0) -> list[dict]:
        p = subprocess.run([tool("consume"), self.bootstrap, *topics], capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"kafka_consume {' '.join(topics)}: exit {p.returncode}: "
                               f"{p.stderr.strip()}")
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def checkpoints(k: KafkaMock, prefix: str = "", topic: str = "blockpipe_checkpoints") -> list:
    """The checkpoint records in order (their values, with "txn")."""
    return [r["value"] for r in k.consume(prefix + topic)]


def committed(k: KafkaMock, records: list, prefix: str = "",
              topic: str = "blockpipe_checkpoints") -> list:
    """The records whose transaction wrote a checkpoint record (what read_committed gives)."""
    txns = {c["txn"] for c in checkpoints(k, prefix, topic)}
    return [r for r in records if r["txn"] in txns]


def checkpoint_of(k: KafkaMock, chain: str, name: str = "kafka", prefix: str = ""):
    """(number, hash) of the output's last checkpoint record, None when none."""
    last = None
    for r in k.consume(prefix + "blockpipe_checkpoints"):
        if r["key"] == f"{name}:{chain}":
            last = r["value"]
    if not last or last["number"] is None:
        return None
    return last["number"], last["hash"]
