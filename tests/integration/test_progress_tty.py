"""On a terminal a backfill shows a progress line (bar, share, blocks, rate, ETA) under its logs.

The stats log lines say how far a backfill is every --stats-interval; a user at a terminal
(the one ethereum-etl's and cryo's bars taught) expects a line that moves. blockpipe's stderr
is made a pseudo-terminal here (simnode's answers slowed to 150 ms, one worker, so 120 blocks take a few
seconds):
- the progress line is drawn ("\\r\\x1b[K[###...]  NN.N%  A/120 blocks  R blocks/s  eta T"),
  its share rises, and it reaches 120/120 or is taken away at the end;
- every log line is whole: printed after the progress line is cleared, never mixed with it;
- the run ends with the line cleared (the summary stays on the screen, no bar left behind);
- with stderr a pipe, with --log-format json, and with TERM=dumb: no escape sequence at all;
- a program embedding libblockpipe (examples/print_blocks, the same backfill) draws no
  progress line on its terminal by default (the line used to be drawn by the shared pipeline
  code for it too), and does with the library's key progress=true.
"""

import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, script_body  # noqa: E402
from simnode import Simnode  # noqa: E402

CLEAR = "\r\x1b[K"
BAR = re.compile(r"\[[#.]{20}\] +(\d+\.\d)%  ([\d,]+)/([\d,]+) blocks  [\d.]+ blocks/s  eta \S+")
LOG = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info |warn |error|debug) ")


def on_pty(cmd, env, timeout=180):
    """cmd with stderr on a pseudo-terminal: (exit code, what it wrote there)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise Fail(f"{' '.join(cmd)} did not end in {timeout} s")
        return proc.wait(30), out.decode(errors="replace")
    finally:
        os.close(master)


def check_tty(text):
    # A pty turns "\n" into "\r\n"; take that back so only blockpipe's own "\r" remain.
    text = text.replace("\r\n", "\n")
    bars = BAR.findall(text)
    if not bars:
        raise Fail(f"no progress line on the terminal:\n{text[-3000:]!r}")
    shares = [float(b[0]) for b in bars]
    if shares != sorted(shares) or shares[-1] <= shares[0]:
        raise Fail(f"the progress share did not rise: {shares}")
    if any(b[2] != "120" for b in bars):
        raise Fail(f"the progress line's total is not 120 blocks: {bars}")
    # Each '\n'-ended piece is "[CLEAR][bar CLEAR]... log line": the bar drawn since the last
    # line is cleared before the next one.
    for piece in text.split("\n")[:-1]:
        line = piece.split(CLEAR)[-1]
        if not LOG.match(line):
            raise Fail(f"a log line mixed with the progress line: {piece!r}")
    if not text.endswith("\n") and not text.endswith(CLEAR):
        raise Fail(f"the run ended with the progress line left on the screen: {text[-300:]!r}")
    return shares


def embedding(node, env):
    """print_blocks (libblockpipe) on a terminal: no progress line unless it asks."""
    example = os.path.join(os.environ.get("BP_BUILD_DIR", ""), "print_blocks")
    if not os.access(example, os.X_OK):
        raise Fail(f"no print_blocks in $BP_BUILD_DIR ({example!r})")
    cmd = [example, node.urls[0], "from=0", "to=119", "workers=1", "batch_size=4"]
    rc, text = on_pty(cmd, env)
    if rc != 0 or "\x1b[" in text or BAR.search(text):
        raise Fail(f"an embedding program on a terminal: exit {rc}, escape sequences or a "
                   f"progress line drawn on its terminal:\n{text[-2000:]!r}")
    print("check: an embedding program (print_blocks) on a terminal: no progress line",
          flush=True)
    rc, text = on_pty(cmd + ["progress=true"], env)
    bars = BAR.findall(text)
    if rc != 0 or not bars or any(b[2] != "120" for b in bars):
        raise Fail(f"print_blocks progress=true on a terminal: exit {rc}, progress lines "
                   f"{bars[-3:]}:\n{text[-2000:]!r}")
    print(f"check: with progress=true it draws one ({len(bars)} progress lines)", flush=True)


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    with script_body("OK: a terminal gets a progress line; logs stay whole; pipes and JSON get "
                     "none") as keep:
        with tempfile.TemporaryDirectory(prefix="bp-progress-") as tmp:
            node = keep(Simnode(bp, ["--block-time", "0", "--length", "130",
                                     "--txs-per-block", "2", "--faults", "ep1:latency=150ms"]))

            def cmd(db, *extra):
                return [bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "119",
                        "--workers", "1", "--batch-size", "4", "--output", f"sqlite:{db}",
                        *extra]

            env = dict(os.environ, TERM="xterm")
            rc, text = on_pty(cmd(os.path.join(tmp, "a.db")), env)
            if rc != 0:
                raise Fail(f"backfill on a terminal exited {rc}:\n{text[-3000:]}")
            shares = check_tty(text)
            print(f"check: terminal: {len(shares)} progress lines, {shares[0]}% .. "
                  f"{shares[-1]}%, every log line whole, the line cleared at the end",
                  flush=True)

            p = subprocess.run(cmd(os.path.join(tmp, "b.db")), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               timeout=180)
            err = p.stderr.decode(errors="replace")
            esc = "\x1b[" in err or "\r" in err
            if p.returncode != 0 or esc:
                raise Fail(f"stderr a pipe: exit {p.returncode}, escape sequences: {esc}:\n"
                           f"{err[-2000:]}")
            print("check: a pipe: plain lines only", flush=True)

            for label, extra, e in (("--log-format json", ["--log-format", "json"], env),
                                    ("TERM=dumb", [], dict(os.environ, TERM="dumb"))):
                rc, text = on_pty(cmd(os.path.join(tmp, f"{label[2:6]}.db"), *extra), e)
                esc = "\x1b[" in text
                if rc != 0 or esc:
                    raise Fail(f"{label} on a terminal: exit {rc}, escape sequences: {esc}:\n"
                               f"{text[-2000:]}")
                print(f"check: {label} on a terminal: no progress line", flush=True)

            embedding(node, env)


if __name__ == "__main__":
    main()
