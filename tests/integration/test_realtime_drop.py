"""The WebSocket drops mid-run while blocks keep coming: polling takes over, then the socket
again, and nothing is lost or written twice.

anvil mines only when told (a block every ~150 ms, every other one with 1-3 txs, from a
thread). blockpipe's --ws goes through tests/tools/tcpproxy.py (HTTP goes to anvil
directly): `run --ws ws://PROXY --poll-interval 0.2 --ws-reconnect-interval 0.5`. Once it is
subscribed and blocks flow, the proxy cuts every connection and refuses new ones (SIGUSR1)
until a block mined after the cut has been committed (polling works while the socket is
down), then lets them through (SIGUSR2). blockpipe must log the switch to HTTP polling after
the cut and the switch back to the websocket after the reopen, and take heads from the socket
again; the last `stats realtime` line must say mode=websocket with reconnects >= 1; and the
outputs must hold every block 0..head exactly once, equal to the node (SQLite, and the
JSON-lines stream replayed event by event). Ends with SIGINT and exit 0. Every wait is for
the event itself, with a deadline that only guards against a hang.
"""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from rtcheck import Blockpipe, CheckFailed, Miner, Server, check_outputs, fail  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "11"))
HANG = 120  # seconds: only a guard against a hang, never a measure


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    node = Anvil()
    proxy = bp = miner = None
    tmp = tempfile.TemporaryDirectory(prefix="bp-rtdrop-")
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        proxy = Server("tcpproxy.py", ["127.0.0.1", node.port])
        ws = f"ws://127.0.0.1:{proxy.port}"
        print(f"proxy {ws} -> anvil {node.url}", flush=True)
        bp = Blockpipe(tmp.name, ["--rpc", node.url, "--ws", ws, "--start-block", "0",
                                  "--poll-interval", "0.2", "--ws-reconnect-interval", "0.5",
                                  "--stats-interval", "1"])
        bp.wait_realtime(lambda r: r.get("mode") == "websocket", HANG, "mode=websocket")
        print("check: subscribed through the proxy (mode=websocket)", flush=True)

        miner = Miner(node, 0.15, wl)
        miner.start()
        # blocks flowing over the socket before the cut
        first = node.block_number()
        bp.wait_checkpoint_at_least(first + 3, HANG, "blocks committed before the cut")
        cut_at = len(bp.log().encode())
        proxy.signal(signal.SIGUSR1)
        print(f"cut: {proxy.expect('CUT', HANG)} (mined so far: {miner.mined})", flush=True)
        m = bp.wait_log(r"realtime: head source is HTTP polling \(websocket [^)]*\)", HANG,
                        "the switch to HTTP polling after the cut", cut_at)
        print(f"check: switched to polling: {m.group(0)}", flush=True)
        # polling must keep committing while the socket is down: the cut lasts until it has
        head_at_cut = node.block_number()
        cp = bp.wait_checkpoint_at_least(head_at_cut + 1, HANG,
                                         f"a block above {head_at_cut} committed during the cut")
        rt = bp.wait_realtime(lambda r: r.get("mode") == "polling", HANG,
                              "mode=polling during the cut")
        print(f"check: during the cut mode=polling and the checkpoint moved on to {cp[0]} "
              f"(head was {head_at_cut} when polling took over)", flush=True)
        open_at = len(bp.log().encode())
        proxy.signal(signal.SIGUSR2)
        print(f"reopen: {proxy.expect('OPEN', HANG)}", flush=True)
        m = bp.wait_log(r"realtime: head source is the websocket", HANG,
                        "the switch back to the websocket after the reopen", open_at)
        print(f"check: back on the socket: {m.group(0)}", flush=True)
        # a few more blocks over the socket
        heads = bp.wait_realtime(lambda r: r.get("mode") == "websocket", HANG,
                                 "mode=websocket after the reopen")["heads"]
        bp.wait_realtime(lambda r: r.get("heads", 0) >= heads + 3, HANG,
                         f"3 more heads over the socket after {heads:.0f}")
        miner.stop()
        print(f"mined {miner.mined} blocks while following", flush=True)
        head = bp.wait_caught_up(node, HANG, "after the drop")
        rt = bp.wait_realtime(lambda r: r.get("last_head", -1) >= head[0], HANG,
                              f"last_head >= {head[0]}")
        bp.stop()
        rt = bp.last_realtime()
        print(f"last realtime line: {rt}", flush=True)
        if rt.get("mode") != "websocket" or rt.get("ws") != "subscribed":
            fail(f"last realtime line: want mode=websocket ws=subscribed: {rt}")
        if rt.get("reconnects", 0) < 1:
            fail(f"last realtime line: reconnects={rt.get('reconnects')}, want >= 1: {rt}")
        if rt.get("switches", 0) < 3:
            fail(f"last realtime line: switches={rt.get('switches')}, want >= 3 "
                 f"(to the socket, to polling, back): {rt}")
        print(f"check: mode=websocket reconnects={rt['reconnects']:.0f} "
              f"switches={rt['switches']:.0f} count={rt['count']:.0f} p99={rt['p99']}",
              flush=True)
        check_outputs(node, bp, head, "socket dropped and back")
    except CheckFailed as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if miner is not None and miner.is_alive():
            miner.halt.set()
            miner.join(10)
        if bp:
            bp.kill()
        if proxy:
            proxy.stop()
        node.stop()
        tmp.cleanup()
    print(f"OK: socket cut: polling took over and committed, the socket came back, "
          f"no gap and no duplicate ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
