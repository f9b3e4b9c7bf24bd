"""anvil.py - start an anvil dev node for tests and `make run`, and drive a deterministic
transaction workload against it. Python 3.11 standard library only.

    from anvil import Anvil, Workload
    with Anvil(["--chain-id", "31337"]) as node:      # or node = Anvil(...); node.stop()
        wl = Workload(node, seed=1)
        wl.setup()                  # deploys the logger contract (see LOGGER_RUNTIME)
        wl.mine_batch(8)            # 8 random txs mined together in one block
        print(node.rpc("eth_blockNumber"))

The anvil binary comes from $BP_ANVIL, else the project-local copy that
scripts/install-deps.sh puts in .local/. anvil listens on 127.0.0.1 with port 0 (the
kernel picks a free port; anvil prints it), runs in its own temp dir, and is stopped by PID
in stop(), at exit (atexit) and on SIGTERM; on Linux it also gets SIGKILL if this process
dies first (PR_SET_PDEATHSIG), so a killed test leaves no node behind.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_ANVIL = os.path.join(ROOT, ".local", "node_modules", "@foundry-rs",
                           "anvil-linux-amd64", "bin", "anvil")


def anvil_path() -> str:
    """$BP_ANVIL if set, else the project-local install; fails clearly when missing."""
    path = os.environ.get("BP_ANVIL") or LOCAL_ANVIL
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"anvil not found at {path} (run: bash scripts/install-deps.sh)")
    return path


def q(x: int) -> str:
    """int -> JSON-RPC hex quantity."""
    return hex(int(x))


def unq(x) -> int | None:
    """JSON-RPC hex quantity -> int (None stays None)."""
    return None if x is None else int(x, 16)


class RPCError(Exception):
    def __init__(self, method, error):
        super().__init__(f"{method}: JSON-RPC error {error}")
        self.method = method
        self.error = error


def rpc_call(url: str, method: str, params=None, timeout: float = 30.0):
    """One JSON-RPC call over HTTP; returns result or raises RPCError / OSError."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": [] if params is None else params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer = json.loads(resp.read())
    if answer.get("error") is not None:
        raise RPCError(method, answer["error"])
    return answer.get("result")


# --- process bookkeeping: every node we start is stopped at exit and on SIGTERM ---------

_LIVE: list["Anvil"] = []
_SIGNALS_HOOKED = False


def _stop_all():
    for node in list(_LIVE):
        node.stop()


def _on_sigterm(signum, _frame):
    _stop_all()
    # SystemExit runs the caller's finally blocks and atexit handlers.
    raise SystemExit(128 + signum)


def _hook_signals():
    global _SIGNALS_HOOKED
    if _SIGNALS_HOOKED:
        return
    _SIGNALS_HOOKED = True
    atexit.register(_stop_all)
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: atexit still covers normal exits
        pass


def _pdeathsig():
    """In the child: get SIGKILL when the parent dies (Linux), so no orphan node survives."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except Exception:
        pass


class Node:
    """A JSON-RPC node at `url` (anvil started elsewhere, e.g. by scripts/run.sh)."""

    def __init__(self, url: str):
        self.url = url

    def rpc(self, method: str, params=None, timeout: float = 30.0):
        return rpc_call(self.url, method, params, timeout)

    # small helpers
    def block_number(self) -> int:
        return unq(self.rpc("eth_blockNumber"))

    def block(self, n, full: bool = True):
        tag = n if isinstance(n, str) else q(n)
        return self.rpc("eth_getBlockByNumber", [tag, full])

    def receipts(self, n):
        tag = n if isinstance(n, str) else q(n)
        return self.rpc("eth_getBlockReceipts", [tag])

    def mine(self, count: int = 1):
        """Mines `count` blocks (evm_mine once, anvil_mine for many)."""
        if count == 1:
            self.rpc("evm_mine")
        elif count > 1:
            self.rpc("anvil_mine", [q(count)])

    def set_automine(self, on: bool):
        """Mine each tx at once (on) or only on mine() (off)."""
        self.rpc("evm_setAutomine", [on])

    def pending_count(self) -> int:
        """Transactions sent and not mined yet."""
        st = self.rpc("txpool_status")
        return unq(st["pending"]) + unq(st["queued"])


class ProcessNode(Node):
    """A node process this test started: listens on 127.0.0.1, runs in its own temp dir,
    stopped by PID in stop(), at exit and on SIGTERM (and SIGKILLed with us on Linux).
    Subclasses give the command line and the log line that names the port."""

    NAME = "node"
    READY = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")

    def _spawn(self, args, start_timeout: float, env=None, port: int | None = None):
        _hook_signals()
        self.tmpdir = tempfile.mkdtemp(prefix=f"bp-{self.NAME}-")
        self.log_path = os.path.join(self.tmpdir, f"{self.NAME}.log")
        self.proc = None
        self.url = None
        self.port = port
        self._log = None
        self.prepare(self.tmpdir)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=self.tmpdir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=_pdeathsig)
        _LIVE.append(self)
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def prepare(self, tmpdir: str):
        """Files the node needs in its directory before it starts (none by default)."""

    def _wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited with {self.proc.returncode} at start:\n"
                                   + self.log_tail())
            with open(self.log_path, "rb") as f:
                m = self.READY.search(f.read())
            if m and self.url is None:
                self.port = int(m.group(1)) if m.groups() else self.port
                self.url = f"http://127.0.0.1:{self.port}"
            if self.url:
                try:
                    rpc_call(self.url, "eth_chainId", timeout=2)
                    return
                except (OSError, RPCError):
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.NAME} did not answer within {timeout:.0f}s:\n"
                           + self.log_tail())

    @property
    def ws_url(self) -> str:
        """The node's WebSocket (the same port as HTTP for anvil, ganache and hardhat)."""
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0):
        """Stops the node by PID (SIGTERM, then SIGKILL) and removes its temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
        if self in _LIVE:
            _LIVE.remove(self)
        if self._log and not self._log.closed:
            self._log.close()
        if self.tmpdir and os.path.isdir(self.tmpdir):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Anvil(ProcessNode):
    """A running anvil node. options: extra anvil flags, e.g. ["--block-time", "1"]."""

    NAME = "anvil"

    def __init__(self, options=(), start_timeout: float = 30.0):
        self.binary = anvil_path()
        options = [str(o) for o in options]
        if "--order" not in options:
            # anvil's default "--order fees" drops a sender's pending tx when a later nonce of
            # the same sender pays a higher fee (seen with 1.7.1: a batch of 12 txs over 10
            # senders lost most of them, the rest piled up as "queued"). FIFO keeps them all.
            options += ["--order", "fifo"]
        args = [self.binary, "--host", "127.0.0.1", "--port", "0"] + options
        self._spawn(args, start_timeout)


# --- the logger contract, assembled by hand ------------------------------------------
#
# Runtime behaviour, for calldata C (size S, first byte b = C[0], 0 when S == 0):
#   b == 0xff  -> REVERT(0, 0)                      (tx mined with status 0, no logs)
#   otherwise  -> n = b % 5; emit LOGn with data = C (all of it, copied to memory 0)
#                 and topic i = CALLDATALOAD(1 + 32*i), i.e. the 32-byte words that follow
#                 the first byte (zero-padded past the end of C), then STOP.
# So a plain value transfer to the contract (S == 0) emits one LOG0 with data "0x".
#
# The assembler below only resolves jump labels; every opcode is written by hand.
# Stack order for LOGn: offset (top), size, topic0, ..., topic(n-1): so the topics are
# pushed last-first, then size (CALLDATASIZE), then offset (0).

_OP = {"STOP": 0x00, "EQ": 0x14, "ISZERO": 0x15, "SHR": 0x1C, "MOD": 0x06,
       "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CALLDATACOPY": 0x37, "CODECOPY": 0x39,
       "JUMP": 0x56, "JUMPI": 0x57, "JUMPDEST": 0x5B, "DUP1": 0x80, "SWAP1": 0x90,
       "LOG0": 0xA0, "LOG1": 0xA1, "LOG2": 0xA2, "LOG3": 0xA3, "LOG4": 0xA4,
       "RETURN": 0xF3, "REVERT": 0xFD}


def _assemble(prog) -> bytes:
    """prog: list of opcode names, ("PUSH1", int), (":label",) marks, ("@label",) pushes a
    label's offset as PUSH1. Two passes: label offsets first, then bytes."""
    labels, pc = {}, 0
    for item in prog:
        if isinstance(item, tuple) and item[0].startswith(":"):
            labels[item[0][1:]] = pc
        elif isinstance(item, tuple):
            pc += 2
        else:
            pc += 1
    out = bytearray()
    for item in prog:
        if isinstance(item, tuple) and item[0].startswith(":"):
            continue
        if isinstance(item, tuple) and item[0] == "PUSH1":
            out += bytes([0x60, item[1]])
        elif isinstance(item, tuple) and item[0].startswith("@"):
            out += bytes([0x60, labels[item[0][1:]]])
        else:
            out.append(_OP[item])
    assert len(out) < 256
    return bytes(out)


def _log_branch(n):
    # topics pushed last-first: topic(n-1) ... topic0, each CALLDATALOAD(1 + 32*i)
    code = [(":log%d" % n,), "JUMPDEST"]
    for i in reversed(range(n)):
        code += [("PUSH1", 1 + 32 * i), "CALLDATALOAD"]
    code += ["CALLDATASIZE", ("PUSH1", 0), "LOG%d" % n, "STOP"]
    return code


LOGGER_RUNTIME = _assemble(
    ["CALLDATASIZE", ("PUSH1", 0), ("PUSH1", 0), "CALLDATACOPY",  # mem[0:S] = C
     ("PUSH1", 0), "CALLDATALOAD", ("PUSH1", 0xF8), "SHR",          # [b]
     "DUP1", ("PUSH1", 0xFF), "EQ", ("@revert",), "JUMPI",          # b == 0xff -> revert
     ("PUSH1", 5), "SWAP1", "MOD",                                  # [n = b % 5]
     "DUP1", "ISZERO", ("@log0",), "JUMPI",
     "DUP1", ("PUSH1", 1), "EQ", ("@log1",), "JUMPI",
     "DUP1", ("PUSH1", 2), "EQ", ("@log2",), "JUMPI",
     "DUP1", ("PUSH1", 3), "EQ", ("@log3",), "JUMPI",
     ("@log4",), "JUMP"]
    + _log_branch(0) + _log_branch(1) + _log_branch(2) + _log_branch(3) + _log_branch(4)
    + [(":revert",), "JUMPDEST", ("PUSH1", 0), ("PUSH1", 0), "REVERT"])

# Init code: emit one LOG0 with empty data during construction (a creation tx with a log
# whose address is the new contract), then copy the runtime, which follows this 16-byte
# header in the creation code, to memory 0 and RETURN it:
#   60 00 60 00 a0          LOG0(offset 0, size 0)
#   60 LL 80                PUSH1 len(runtime); DUP1        stack [len, len]
#   60 10 60 00 39          CODECOPY(dest 0, src 16, len)   stack [len]
#   60 00 f3                RETURN(0, len)
LOGGER_INIT = bytes([0x60, 0x00, 0x60, 0x00, 0xA0,
                     0x60, len(LOGGER_RUNTIME), 0x80,
                     0x60, 0x10, 0x60, 0x00, 0x39,
                     0x60, 0x00, 0xF3])
assert len(LOGGER_INIT) == 0x10
LOGGER_CREATION = LOGGER_INIT + LOGGER_RUNTIME


def log_calldata(rng: random.Random, n_topics: int, extra: int | None = None) -> str:
    """Calldata for the logger: selector byte (n_topics + 5k, never 0xff), 4 random topic
    words, then `extra` random bytes of data."""
    sel = n_topics + 5 * rng.randrange(0, 50)   # 0..249, n = sel % 5 == n_topics
    words = bytes(rng.getrandbits(8) for _ in range(32 * n_topics))
    tail = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80) if extra is None else extra))
    return "0x" + bytes([sel]).hex() + words.hex() + tail.hex()


def revert_calldata(rng: random.Random) -> str:
    return "0xff" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40))).hex()


# --- workload -------------------------------------------------------------------------

ETH = 10 ** 18
KINDS = ("legacy", "eip2930", "eip1559", "big_transfer", "deploy", "log_call", "revert_call",
         "contract_transfer")
DEFAULT_WEIGHTS = {"legacy": 3, "eip2930": 2, "eip1559": 4, "big_transfer": 2, "deploy": 1,
                   "log_call": 5, "revert_call": 2, "contract_transfer": 1}


class Workload:
    """Deterministic (given seed and a fresh node) random transactions from anvil's unlocked
    dev accounts via eth_sendTransaction. Nonces are tracked here so that many txs can wait
    in the pool before one evm_mine; every tx carries an explicit gas limit so anvil never
    estimates (a call that reverts would be refused at estimation)."""

    def __init__(self, node: Node, seed: int = 1, weights=None):
        self.node = node
        self.rng = random.Random(seed)
        self.accounts = [a.lower() for a in node.rpc("eth_accounts")]
        if len(self.accounts) < 2:
            raise RuntimeError("anvil has fewer than 2 dev accounts")
        self.nonces = {}
        self.contracts: list[str] = []
        self.pending_deploys: list[str] = []  # tx hashes of creations not yet looked at
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.sent: dict[str, int] = {k: 0 for k in KINDS}
        self.hashes: list[str] = []

    # bookkeeping
    def _nonce(self, acct: str) -> int:
        if acct not in self.nonces:
            self.nonces[acct] = unq(self.node.rpc("eth_getTransactionCount", [acct, "pending"]))
        n = self.nonces[acct]
        self.nonces[acct] = n + 1
        return n

    def resync_nonces(self):
        """Forget local nonces (after a reorg or anything that dropped pool txs)."""
        self.nonces.clear()

    def after_reorg(self):
        """anvil_reorg drops the orphaned blocks' txs (they do not return to the pool):
        nonces roll back and contracts created there no longer exist."""
        self.resync_nonces()
        self.pending_deploys.clear()
        self.contracts = [c for c in self.contracts
                          if self.node.rpc("eth_getCode", [c, "latest"]) not in ("0x", None)]

    def _fees(self, tx: dict, typ: int):
        base = 10 ** 9  # anvil's base fee starts at 1 gwei and stays near it under light load
        if typ in (0, 1):
            tx["gasPrice"] = q(base * self.rng.randrange(3, 8))
        else:
            prio = self.rng.randrange(0, 3 * 10 ** 9)
            tx["maxPriorityFeePerGas"] = q(prio)
            tx["maxFeePerGas"] = q(base * self.rng.randrange(4, 10) + prio)

    def _access_list(self):
        out = []
        for _ in range(self.rng.randrange(0, 3)):
            addr = "0x" + bytes(self.rng.getrandbits(8) for _ in range(20)).hex()
            keys = ["0x" + bytes(self.rng.getrandbits(8) for _ in range(32)).hex()
                    for _ in range(self.rng.randrange(0, 3))]
            out.append({"address": addr, "storageKeys": keys})
        return out

    def _send(self, kind: str, tx: dict, typ: int | None = None) -> str:
        if typ is None:
            typ = self.rng.choice((0, 1, 2))
        tx["type"] = q(typ)
        self._fees(tx, typ)
        if typ == 1 and "accessList" not in tx:
            tx["accessList"] = self._access_list()
        # access-list entries cost 2400/address + 1900/key on top of the base cost
        al = tx.get("accessList") or []
        tx["gas"] = q(int(tx["gas"], 16) + sum(2400 + 1900 * len(e["storageKeys"]) for e in al))
        tx["nonce"] = q(self._nonce(tx["from"]))
        h = self.node.rpc("eth_sendTransaction", [tx])
        self.sent[kind] += 1
        self.hashes.append(h)
        return h

    def _acct(self):
        return self.rng.choice(self.accounts)

    def _other(self, a):
        return self.rng.choice([x for x in self.accounts if x != a])

    # one tx of each kind
    def legacy(self):
        a = self._acct()
        return self._send("legacy", {"from": a, "to": self._other(a), "gas": q(21000),
                                     "value": q(self.rng.randrange(0, 10 ** 15))}, typ=0)

    def eip2930(self):
        a = self._acct()
        tx = {"from": a, "to": self._other(a), "gas": q(21000),
              "value": q(self.rng.randrange(1, 10 ** 12)), "accessList": self._access_list()}
        return self._send("eip2930", tx, typ=1)

    def eip1559(self):
        a = self._acct()
        return self._send("eip1559", {"from": a, "to": self._other(a), "gas": q(21000),
                                      "value": q(self.rng.randrange(0, 10 ** 17))}, typ=2)

    def big_transfer(self):
        # 18.5..40 ETH: the value in wei is above 2^64 (~18.45 ETH)
        a = self._acct()
        v = self.rng.randrange(2 ** 64 + 1, 40 * ETH)
        return self._send("big_transfer", {"from": a, "to": self._other(a), "gas": q(21000),
                                           "value": q(v)})

    def deploy(self):
        h = self._send("deploy", {"from": self._acct(), "gas": q(200000),
                                  "data": "0x" + LOGGER_CREATION.hex()})
        self.pending_deploys.append(h)
        return h

    def log_call(self):
        if not self.contracts:
            return self.deploy()
        data = log_calldata(self.rng, self.rng.randrange(0, 5))
        return self._send("log_call", {"from": self._acct(), "to": self.rng.choice(self.contracts),
                                       "gas": q(150000), "data": data})

    def revert_call(self):
        if not self.contracts:
            return self.deploy()
        return self._send("revert_call", {"from": self._acct(),
                                          "to": self.rng.choice(self.contracts),
                                          "gas": q(100000), "data": revert_calldata(self.rng)})

    def contract_transfer(self):
        # value to the contract with empty calldata: LOG0 with data "0x"
        if not self.contracts:
            return self.deploy()
        return self._send("contract_transfer", {"from": self._acct(),
                                                "to": self.rng.choice(self.contracts),
                                                "gas": q(100000),
                                                "value": q(self.rng.randrange(1, 10 ** 9))})

    def random_tx(self):
        kinds = list(self.weights)
        kind = self.rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        return getattr(self, kind)()

    def collect_deploys(self):
        """Adds the addresses of mined creations to self.contracts."""
        still = []
        for h in self.pending_deploys:
            r = self.node.rpc("eth_getTransactionReceipt", [h])
            if r is None:
                still.append(h)
            elif r.get("contractAddress") and unq(r["status"]) == 1:
                self.contracts.append(r["contractAddress"].lower())
        self.pending_deploys = still

    def setup(self):
        """Automine off; deploy two logger contracts and mine them."""
        self.node.set_automine(False)
        self.deploy()
        self.deploy()
        self.node.mine()
        self.collect_deploys()
        if len(self.contracts) < 2:
            raise RuntimeError("logger contract deployment failed")

    def mine_batch(self, k: int) -> int:
        """Sends k random txs then mines one block with them (automine must be off).
        Returns the new block number."""
        for _ in range(k):
            self.random_tx()
        self.node.mine()
        self.collect_deploys()
        self.check_pool_empty()
        return self.node.block_number()

    def check_pool_empty(self):
        """Every tx sent so far must have been mined: a dropped tx would break the nonces."""
        left = self.node.pending_count()
        if left:
            raise RuntimeError(f"the node left {left} txs in its pool after evm_mine")


def wait_until(pred, timeout: float, what: str, interval: float = 0.1):
    """Polls pred() until it returns a truthy value (returned) or raises TimeoutError that
    says what was awaited. Exceptions from pred count as 'not yet' and are reported."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


if __name__ == "__main__":
    # Smoke test: python3 tests/tools/anvil.py
    with Anvil() as node:
        wl = Workload(node, seed=int(sys.argv[1]) if len(sys.argv) > 1 else 1)
        wl.setup()
        for _ in range(5):
            wl.mine_batch(6)
        head = node.block_number()
        txs = sum(len(node.block(n)["transactions"]) for n in range(head + 1))
        print(f"anvil {node.url}: head={head} txs={txs} sent={wl.sent}")

