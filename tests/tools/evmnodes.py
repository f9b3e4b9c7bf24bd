"""evmnodes.py - node implementations other than anvil, started for tests the way anvil is
(tests/tools/anvil.py: 127.0.0.1, a free port, a temp dir, stopped by PID), driven by the
same Workload. Python 3 standard library only.

    from evmnodes import NODES
    with NODES["ganache"](chain_id=31337) as node:
        wl = Workload(node, seed=1); wl.setup(); wl.mine_batch(8)

ganache 7 (npm `ganache`) and Hardhat Network 2 (npm `hardhat`, `hardhat node`) come from the
project-local .local/ that scripts/install-deps.sh fills; a missing one is an error.
"""

from __future__ import annotations

import os
import re
import socket

from anvil import ROOT, ProcessNode, unq

NODE_MODULES = os.path.join(ROOT, ".local", "node_modules")


def _installed(*parts) -> str:
    path = os.path.join(NODE_MODULES, *parts)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not found (run: bash scripts/install-deps.sh --test)")
    return path


def free_port() -> int:
    """A port the kernel says is free now (ganache and hardhat cannot be given port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ganache(ProcessNode):
    """ganache 7. Its quirks (what blockpipe must cope with): eth_getBlockReceipts is answered
    with code -32700 "The method ... does not exist/is not available"; the receipts' logIndex
    restarts at 0 in every transaction (eth_getLogs numbers them across the block)."""

    NAME = "ganache"
    READY = re.compile(rb"RPC Listening on 127\.0\.0\.1:(\d+)")

    def __init__(self, chain_id: int = 31337, options=(), start_timeout: float = 60.0):
        cli = _installed("ganache", "dist", "node", "cli.js")
        port = free_port()
        args = ["node", cli, "--server.host", "127.0.0.1", "--server.port", str(port),
                "--chain.chainId", str(chain_id), "--wallet.deterministic", "true",
                "--logging.quiet", "false"] + [str(o) for o in options]
        self._spawn(args, start_timeout, port=port)

    def set_automine(self, on: bool):
        # ganache has no evm_setAutomine: a stopped miner mines only on evm_mine
        self.rpc("miner_start" if on else "miner_stop")

    def pending_count(self) -> int:
        content = self.rpc("txpool_content")
        return sum(len(txs) for part in ("pending", "queued")
                   for txs in (content.get(part) or {}).values())


class Hardhat(ProcessNode):
    """Hardhat Network 2 (`hardhat node`, HTTP and WebSocket on one port). It lacks
    eth_getBlockReceipts (code -32004 "Method ... is not supported") and txpool_*."""

    NAME = "hardhat"
    READY = re.compile(rb"JSON-RPC server at http://127\.0\.0\.1:(\d+)")

    def __init__(self, chain_id: int = 31337, options=(), start_timeout: float = 90.0):
        self.chain_id = chain_id
        cli = _installed("hardhat", "internal", "cli", "cli.js")
        port = free_port()
        env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", CI="true",
                   NO_COLOR="1")
        args = ["node", cli, "node", "--hostname", "127.0.0.1", "--port", str(port)]
        self._spawn(args + [str(o) for o in options], start_timeout, env=env, port=port)

    def prepare(self, tmpdir: str):
        # hardhat runs only from a project that has it installed: a config of our own and
        # the project-local node_modules beside it
        with open(os.path.join(tmpdir, "hardhat.config.js"), "w") as f:
            f.write("module.exports = { networks: { hardhat: { chainId: %d } } };\n"
                    % self.chain_id)
        os.symlink(NODE_MODULES, os.path.join(tmpdir, "node_modules"))

    def pending_count(self) -> int:
        pending = self.rpc("eth_getBlockByNumber", ["pending", False])
        return len(pending["transactions"]) if pending else 0


NODES = {"ganache": Ganache, "hardhat": Hardhat}


def block_and_receipts(node, n: int):
    """(block with full txs, receipts) from eth_getTransactionReceipt (neither node has
    eth_getBlockReceipts), each receipt's logs replaced by the block's eth_getLogs entries
    of that transaction: the node's own block-wide numbering, the reference for log_index.
    Also returns whether the receipts' logIndex restarted in a transaction."""
    block = node.block(n, True)
    receipts = [node.rpc("eth_getTransactionReceipt", [t["hash"]]) for t in block["transactions"]]
    logs = node.rpc("eth_getLogs", [{"blockHash": block["hash"]}])
    restarted = False
    for r in receipts:
        mine = [lg for lg in logs if lg["transactionHash"].lower() == r["transactionHash"].lower()]
        if len(mine) != len(r["logs"]):
            raise AssertionError(f"{node.NAME}: block {n} tx {r['transactionHash']}: receipt has "
                                 f"{len(r['logs'])} logs, eth_getLogs {len(mine)}")
        for a, b in zip(r["logs"], mine):
            if a["data"] != b["data"] or a["topics"] != b["topics"]:
                raise AssertionError(f"{node.NAME}: block {n}: receipt log {a} != eth_getLogs {b}")
            restarted |= unq(a["logIndex"]) != unq(b["logIndex"])
        r["logs"] = mine
    return block, receipts, restarted
