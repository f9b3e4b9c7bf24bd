"""A WebSocket endpoint that misbehaves: blockpipe says why, stays on HTTP polling and loses
nothing.

One anvil (mining only when told: a block every ~200 ms, every other one with 1-3 txs) is
the --rpc of three `blockpipe run` processes at once, each with --ws pointing at
tests/tools/ws_bad_server.py in one mode:
    garbage    answers eth_subscribe with text that is not JSON -> "not a JSON object"
    oversized  answers eth_subscribe, then sends a 2 MiB frame  -> "larger than"
    silent     never answers eth_subscribe                       -> "no answer" (after the
               client's 10 s subscribe timeout)
with --ws-reconnect-interval 0.5 --poll-interval 0.2. For each: the error appears in the
`stats realtime` line's last_error and in a websocket warning on stderr; the realtime line
says mode=polling; no head ever comes from the socket; and once mining stops the outputs
hold every block 0..head exactly once, equal to the node (SQLite, and the JSON-lines stream
replayed event by event). Each exits 0 on SIGINT.
"""

import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from anvil import Anvil, Workload  # noqa: E402
from rtcheck import Blockpipe, CheckFailed, Miner, Server, check_outputs, fail  # noqa: E402

SEED = int(os.environ.get("BP_SEED", "99"))
MODES = {"garbage": "not a JSON object", "oversized": "larger than", "silent": "no answer"}
HANG = 120  # seconds: only a guard against a hang (silent: the client waits 10 s itself)


def main():
    print(__doc__.strip(), flush=True)
    t0 = time.monotonic()
    node = Anvil()
    servers, bps, miner = {}, {}, None
    tmp = tempfile.TemporaryDirectory(prefix="bp-rtbad-")
    try:
        wl = Workload(node, seed=SEED)
        wl.setup()
        for mode in MODES:
            servers[mode] = Server("ws_bad_server.py", [mode])
        miner = Miner(node, 0.2, wl)
        miner.start()
        for mode, srv in servers.items():
            bps[mode] = Blockpipe(tmp.name, [
                "--rpc", node.url, "--ws", f"ws://127.0.0.1:{srv.port}", "--start-block", "0",
                "--poll-interval", "0.2", "--ws-reconnect-interval", "0.5",
                "--stats-interval", "0.5"], name=mode)

        for mode, text in MODES.items():
            bp = bps[mode]
            rt = bp.wait_realtime(lambda r, t=text: t in str(r.get("last_error", "")),
                                  HANG, f"last_error mentioning {text!r} ({mode})")
            print(f"check: {mode}: realtime last_error={rt['last_error']!r}", flush=True)
            if mode == "garbage" and "this is not JSON" not in rt["last_error"]:
                fail(f"garbage: last_error should quote the bad message: {rt}")
            m = bp.wait_log(r"(warn|error) +websocket ws://127\.0\.0\.1:\d+: [^\n]*"
                            + re.escape(text) + r"[^\n]*", HANG,
                            f"a websocket warning on stderr mentioning {text!r} ({mode})")
            print(f"check: {mode}: stderr says: {m.group(0)}", flush=True)

        time.sleep(1.0)
        miner.stop()
        print(f"mined {miner.mined} blocks while following", flush=True)
        for mode, bp in bps.items():
            head = bp.wait_caught_up(node, HANG, f"{mode}: catch-up")
            rt = bp.wait_realtime(lambda r: r.get("mode") == "polling", HANG, "mode=polling")
            bp.stop()
            rt = bp.last_realtime()
            print(f"{mode}: last realtime line: {rt}", flush=True)
            if rt.get("mode") != "polling":
                fail(f"{mode}: the last realtime line says mode={rt.get('mode')}, want "
                     f"polling: {rt}")
            if rt.get("heads", 0) != 0:
                fail(f"{mode}: a socket that never sent a head: want heads=0: {rt}")
            if rt.get("count", 0) < 1:
                fail(f"{mode}: the polled heads' head-to-commit latency was not recorded: {rt}")
            # oversized subscribes for an instant before each 2 MiB frame: a switch to the
            # socket may be seen then, and must be undone at once (mode=polling above)
            if mode != "oversized" and rt.get("switches", 0) != 0:
                fail(f"{mode}: switches={rt.get('switches')} to a socket that never "
                     f"subscribed: {rt}")
            if mode != "oversized" and "head source is the websocket" in bp.log():
                fail(f"{mode}: blockpipe switched to a socket that never subscribed:\n"
                     + bp.tail())
            print(f"check: {mode}: mode=polling heads=0 reconnects={rt.get('reconnects'):.0f} "
                  f"switches={rt.get('switches'):.0f}", flush=True)
            check_outputs(node, bp, head, f"{mode}: polling fallback")
    except CheckFailed as e:
        sys.exit(f"FAIL: {e}")
    finally:
        if miner is not None and miner.is_alive():
            miner.halt.set()
            miner.join(10)
        for bp in bps.values():
            bp.kill()
        for srv in servers.values():
            srv.stop()
        node.stop()
        tmp.cleanup()
    print(f"OK: garbage / oversized / silent WebSocket: clear error, polling, every block "
          f"exactly once ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
