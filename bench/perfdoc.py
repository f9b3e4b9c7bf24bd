"""perfdoc.py - what the benchmarks share: docs/PERFORMANCE.md is written by several of them,
each replacing only its own section between <!-- NAME:begin --> and <!-- NAME:end -->; every
section is stamped with the date and commit of its run; a benchmark that fails writes that it
did not run (and why) instead of leaving the previous figures looking current; and a child
process is timed with its own peak RSS (wait4 on its PID, not this driver's).

As a program, it guards a benchmark that may die before it can write its section itself
(bench/run.sh runs every benchmark so):

    python3 bench/perfdoc.py guard --out docs/PERFORMANCE.md --name pg -- python3 bench/...

BENCH_QUICK=1 in the environment: the benchmarks run at small sizes (a check that each one
runs end to end, not figures to compare) and say so in their stamp.
"""
import argparse
import collections
import datetime
import os
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEADER = """# Performance

Written by `make bench` (bench/run.sh): each benchmark replaces its own section, stamped with
the date and commit of its run. Absolute numbers on these shared machines are noisy: read the
ratios. Notes written by hand inside a section, between `<!-- NAME:notes:begin -->` and
`<!-- NAME:notes:end -->`, are kept after the new figures.
"""

TITLES = {
    "anvil": "Backfill from anvil (source-bound)",
    "pg": "PostgreSQL output (write-bound)",
    "clickhouse": "ClickHouse output (write-bound)",
    "realtime": "Real-time head-to-commit latency (loopback)",
    "fetchpath": "Fetch path: block + receipts over HTTP keep-alive vs the WebSocket",
    "ingest": "Ingestion (simnode, 200-tx blocks with receipts)",
    "streams": "Stream outputs: Redis and Kafka (mock cluster)",
    "api": "API: REST under wrk, push to 1,000 WebSocket clients",
    "metrics": "Derived analytics tables: cost of writing them",
    "metrics-sets": "Address sets of a 1,000 tx/s chain: memory and rows per distinct sender",
    "metrics-day": "Address sets through a whole day of a 1,000 tx/s chain (measured)",
    "verify": "verify vs backfill of the same range (simnode)",
    "chains": "Many chains in one process (simnode, SQLite)",
    "l2decode": "Decoding OP-stack and Arbitrum blocks vs Ethereum blocks of the same size",
    "memory": "Memory per chain: at the head and in a full-speed backfill",
    "arch": "Arch Network (simnode --chain-type arch): blocks/s vs the raw transport",
    "archws": "Arch WebSocket events through blockpipe vs the raw transport (simnode)",
}


def quick():
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def kept_notes(section, name):
    """The hand-written notes of a section: the text between <!-- NAME:notes:begin --> and
    <!-- NAME:notes:end --> (markers included), which a new run keeps at the end of the
    section instead of dropping them; "" when there are none. Each note names the commit and
    date it measured, so a kept note never passes for this run's figures."""
    nb, ne = f"<!-- {name}:notes:begin -->", f"<!-- {name}:notes:end -->"
    if section is None or nb not in section or ne not in section:
        return ""
    return section[section.index(nb):section.index(ne) + len(ne)]


def write_section(path, name, text, legacy_heading=None):
    """Replaces section NAME of path with text (appends it when absent), keeping its
    hand-written notes (kept_notes). legacy_heading: a '## ' heading of an older, unmarked
    version of the section, replaced up to the next one."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = open(path).read() if os.path.exists(path) else HEADER
    notes = kept_notes(read_section(path, name), name)
    if notes and notes not in text:
        text = f"{text.strip()}\n\n{notes}"
    block = f"{begin}\n{text.strip()}\n{end}"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    elif legacy_heading and legacy_heading in old:
        head, tail = old[:old.index(legacy_heading)], old[old.index(legacy_heading):]
        nxt = tail.find("\n## ", 1)
        new = head.rstrip() + "\n\n" + block + "\n" + (tail[nxt:] if nxt >= 0 else "")
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def read_section(path, name):
    """The current text of section NAME, or None."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = open(path).read() if os.path.exists(path) else ""
    if begin not in old or end not in old:
        return None
    return old[old.index(begin):old.index(end)]


def commit():
    """HEAD's short hash, "+ uncommitted changes" when the tracked sources differ from it
    (docs/PERFORMANCE.md itself, which the run rewrites, does not count)."""
    def git(*args):
        p = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    head = git("rev-parse", "--short=12", "HEAD")
    if head is None:
        return "unknown commit (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                ":!docs/PERFORMANCE.md")
    return f"commit `{head}`" + (" + uncommitted changes" if dirty else "")


def run_info():
    """When and from what: "2025-01-02 03:04 UTC, commit `abc`"."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{when}, {commit()}" + (", BENCH_QUICK=1" if quick() else "")


def stamp():
    text = f"_Run {run_info()}._"
    if quick():
        text += (" _BENCH_QUICK=1: small sizes, a check that the benchmark runs end to end;"
                 " not figures to compare._")
    return text


def publish(path, name, body):
    """Writes section NAME: its title, the stamp of this run, then body."""
    write_section(path, name, f"## {TITLES[name]}\n\n{stamp()}\n\n{body.strip()}\n")


def not_run(path, name, reason, output_tail=""):
    """Section NAME says that it did not run, why and when; the previous figures go."""
    text = (f"## {TITLES[name]}\n\n**Did not run** ({run_info()}): {reason.strip()}\n\n"
            "No figures: the previous run's were removed so that none look current (git "
            "history has them).\n")
    if output_tail.strip():
        text += f"\nLast lines of its output:\n\n```\n{output_tail.rstrip()}\n```\n"
    write_section(path, name, text)


def guarded(path, name, main):
    """Runs main(); when it fails (exception, sys.exit with a message, Ctrl-C) section NAME
    says it did not run and why, then the failure goes on."""
    try:
        main()
    except SystemExit as e:
        if e.code not in (None, 0):
            not_run(path, name, str(e.code).splitlines()[0] if isinstance(e.code, str)
                    else f"exit status {e.code}", str(e.code) if isinstance(e.code, str) else "")
        raise
    except KeyboardInterrupt:
        not_run(path, name, "interrupted (Ctrl-C)")
        raise
    except Exception as e:  # noqa: BLE001 - any failure is reported, then re-raised
        not_run(path, name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                traceback.format_exc()[-3000:])
        raise


class Result(collections.namedtuple("Result", "seconds rss_mib out rc")):
    """One child process: wall seconds, its own peak RSS in MiB, stdout+stderr, exit code."""


def wait_rss(proc, timeout=None):
    """Waits for a subprocess.Popen to end (up to timeout seconds: then None); returns its
    peak RSS in MiB from wait4 on its PID and sets proc.returncode."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss / 1024.0
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def timed(cmd, check=True, env=None):
    """Runs cmd to its end; its peak RSS comes from wait4 on its own PID (ru_maxrss of that
    process, not of this driver or its other children). check: exit with its output when it
    fails."""
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        rss = wait_rss(p)
        dt = time.monotonic() - t0
        out.seek(0)
        text = out.read()
    if check and p.returncode != 0:
        sys.exit(f"failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{text[-3000:]}")
    return Result(dt, rss, text, p.returncode)


def guard_main(argv):
    """perfdoc.py guard --out FILE --name NAME -- CMD...: runs CMD (its output passes
    through); when it fails and section NAME was not rewritten meanwhile (it died before it
    could say so itself), writes that it did not run. Exits with CMD's status."""
    ap = argparse.ArgumentParser(prog="perfdoc.py guard")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True, choices=sorted(TITLES))
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    before = read_section(a.out, a.name)
    tail = collections.deque(maxlen=30)
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except OSError as e:
        not_run(a.out, a.name, f"cannot start {cmd[0]}: {e}")
        return 127
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line)
    rc = p.wait()
    if rc != 0 and read_section(a.out, a.name) == before:
        why = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        not_run(a.out, a.name, f"`{' '.join(os.path.basename(c) for c in cmd[:2])}` {why} "
                "before it wrote its section", "".join(tail))
    return 0 if rc == 0 else (128 - rc if rc < 0 else rc)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "guard":
        sys.exit(guard_main(sys.argv[2:]))
    sys.exit("usage: perfdoc.py guard --out FILE --name NAME -- CMD...")
