"""traffic.py - keeps an anvil node busy for `make run`: every second a few random txs of
every workload kind (legacy / EIP-2930 / EIP-1559 transfers, values above 2^64 wei,
contract deployments, calls that emit LOG0..LOG4, calls that revert), sent with
eth_sendTransaction from anvil's unlocked dev accounts. Runs until SIGTERM or SIGINT.

    python3 tests/tools/traffic.py --rpc http://127.0.0.1:8545 [--seed 1] [--tps 3]
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anvil import Node, RPCError, Workload  # noqa: E402

_stop = False


def _on_signal(signum, _frame):
    global _stop
    _stop = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rpc", required=True, help="JSON-RPC URL of an anvil node")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tps", type=float, default=3.0, help="average txs per second")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop by itself after this long (0: run until signalled)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    node = Node(args.rpc)
    wl = Workload(node, seed=args.seed)
    t_end = time.monotonic() + args.max_seconds if args.max_seconds > 0 else None
    sent = errors = 0
    last_report = time.monotonic()
    while not _stop and (t_end is None or time.monotonic() < t_end):
        t0 = time.monotonic()
        k = max(1, round(wl.rng.uniform(0.3, 1.7) * args.tps))
        for _ in range(k):
            if _stop:
                break
            try:
                wl.random_tx()
                sent += 1
            except (RPCError, OSError) as e:
                # e.g. node restarted or a nonce went stale: start over from the node's view
                errors += 1
                wl.resync_nonces()
                print(f"traffic: {e}", file=sys.stderr)
                time.sleep(0.5)
        try:
            wl.collect_deploys()
        except (RPCError, OSError):
            pass
        if time.monotonic() - last_report >= 30:
            print(f"traffic: sent={sent} errors={errors} contracts={len(wl.contracts)} "
                  f"by kind={wl.sent}", file=sys.stderr)
            last_report = time.monotonic()
        # sleep ~1 s in small steps so a signal ends us promptly
        while not _stop and time.monotonic() - t0 < 1.0:
            time.sleep(0.05)
    print(f"traffic: stopped; sent={sent} errors={errors} by kind={wl.sent}", file=sys.stderr)


if __name__ == "__main__":
    main()
