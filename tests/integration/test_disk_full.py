"""Outputs on a full disk (issue "Bad conditions": stop with the SQL error and the block number).

Needs root: each phase mounts a small tmpfs (unmounted in `finally`).
  postgres  the cluster lives on the normal disk (so its WAL never fills up, which would make
            the server PANIC); a TABLESPACE on a small tmpfs is the database's
            default_tablespace, so blockpipe's tables and indexes fill it and the server answers
            "could not extend file ...: No space left on device" (SQLSTATE 53100). blockpipe
            backfill from simnode must exit 1 in bounded time with the server's message and
            "block N"; afterwards the checkpoint row = max(blocks.number), blocks 0..checkpoint
            each present exactly once, no transaction or log above the checkpoint.
  sqlite    --output sqlite:<tmpfs>/bp.db on a small tmpfs: exit 1 with SQLite's "database or
            disk is full" and "block N"; the database (copied to normal disk with its WAL)
            passes PRAGMA integrity_check, checkpoint = max(number), no gap, nothing above it.
  sqlite-commit  the same with batches of 5 blocks on a 10 MiB tmpfs: a batch mostly stays in
            SQLite's page cache until COMMIT, so the disk fills up there or, where the cache
            spills first (its small size at the head, the derived tables' statements), in a
            statement of the batch; either error names the block too.
"""

import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin  # noqa: E402

BLOCKS = 4000          # simnode chain length; far more than either tmpfs can hold
TXS = 100              # transactions per block
RUN_TIMEOUT = 120      # a guard against a hang (not a duration asserted): blockpipe stops on a full disk


def mount_tmpfs(path, size_mb):
    if os.geteuid() != 0:
        raise Fail("this test needs root: it mounts small tmpfs file systems to fill up "
                   f"(running as uid {os.geteuid()})")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs",
                        path], capture_output=True, text=True)
    if p.returncode != 0:
        raise Fail(f"this test needs root and mount(2): `mount -t tmpfs` on {path} failed "
                   f"({p.returncode}): {p.stderr.strip()}")


def umount(path):
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def start_simnode(bp):
    p = subprocess.Popen([bp, "simnode", "--listen", "127.0.0.1:0", "--block-time", "0",
                          "--length", str(BLOCKS), "--txs-per-block", str(TXS)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        raise Fail(f"simnode did not start: {line!r}")
    return p, line[len("listening on "):]


def run_bp(cmd, label):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(
            errors="replace")
        raise Fail(f"{label}: blockpipe still running after {RUN_TIMEOUT}s on a full disk "
                   f"(want exit 1): {' '.join(cmd)}\n{out[-3000:]}")
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def error_line(out, needles):
    lines = [x for x in out.splitlines() if any(n in x for n in needles)]
    return lines[-1] if lines else ""


def failed_block(line):
    # "block N: ..." or, for a statement of the whole batch, "blocks N..M: ..." (a group rolled
    # back by the full disk is written again from its checkpoint: the first COPY fails)
    m = re.search(r"\bblocks? (\d+)", line)
    return int(m.group(1)) if m else None


def check_rows(label, cp, numbers, tx_max, log_max, failed=None, batch=20):
    """cp: checkpoint number (None if no row); numbers: sorted block numbers stored; failed:
    the block the error names, in the batch right after the checkpoint."""
    # behind the head up to 8 batches share a transaction (a group, docs/ARCHITECTURE.md
    # "Groups"): the failed block is in the group after the checkpoint
    group = 8 * batch
    if failed is not None and not ((cp if cp is not None else -1) < failed
                                   <= (cp if cp is not None else -1) + group):
        raise Fail(f"{label}: the error names block {failed}, not one of the group after "
                   f"checkpoint {cp}")
    if cp is None:
        if numbers or tx_max is not None or log_max is not None:
            raise Fail(f"{label}: no checkpoint but {len(numbers)} blocks, tx max {tx_max}, "
                       f"log max {log_max}")
        return
    if numbers != list(range(cp + 1)):
        dup = len(numbers) - len(set(numbers))
        raise Fail(f"{label}: checkpoint {cp} but blocks {numbers[:3]}..{numbers[-3:]} "
                   f"({len(numbers)} rows, {dup} duplicates); want 0..{cp} exactly once")
    for what, top in (("transaction", tx_max), ("log", log_max)):
        if top is not None and top > cp:
            raise Fail(f"{label}: a {what} of block {top} is stored above checkpoint {cp}")


def postgres_phase(bp, url_node, tmp):
    small = os.path.join(tmp, "pgspace")
    os.mkdir(small)
    pg = Postgres()
    mounted = False
    try:
        mount_tmpfs(small, 48)  # room for a group of batches (up to 8) behind the head
        mounted = True
        pw = pwd.getpwnam("postgres") if pg.uid is not None else None
        space = os.path.join(small, "ts")
        os.mkdir(space, 0o700)
        if pw:
            os.chown(space, pw.pw_uid, pw.pw_gid)
        pg.sql(f"CREATE TABLESPACE small LOCATION '{space}'", db="postgres")
        pg.sql("ALTER DATABASE bp SET default_tablespace = small", db="postgres")
        pg.sql("ALTER DATABASE bp SET temp_tablespaces = small", db="postgres")
        cmd = [bp, "backfill", "--rpc", url_node, "--from", "0", "--to", str(BLOCKS - 1),
               "--output", pg.url(), "--wait-for-db", "2", "--batch-size", "20",
               "--workers", "4"]
        rc, out, dt = run_bp(cmd, "postgres")
        line = error_line(out, ["No space left on device", "could not extend"])
        print(f"[postgres] exit {rc} after {dt:.1f}s")
        if rc != 1 or not line or failed_block(line) is None:
            raise Fail(f"postgres: `{' '.join(cmd)}`\n  expected: exit 1 with the server's "
                       f"'could not extend file ... No space left on device' and 'block N'\n"
                       f"  got: exit {rc}\n{out[-3000:]}\n--- server log ---\n{pg.log_tail()}")
        print(f"  {line.strip()[:400]}")
        tbls = pg.sql("SELECT c.relname FROM pg_class c JOIN pg_tablespace t ON "
                      "t.oid = c.reltablespace WHERE t.spcname = 'small' AND c.relname = 'blocks'")
        if not tbls:
            raise Fail("postgres: the blocks table is not in the tmpfs tablespace")
        cps = pg.sql("SELECT number FROM checkpoints")
        if len(cps) > 1:
            raise Fail(f"postgres: {len(cps)} checkpoint rows: {cps}")
        cp = int(cps[0][0]) if cps else None
        numbers = [int(r[0]) for r in pg.sql("SELECT number FROM blocks ORDER BY number")]
        tx_max = pg.sql("SELECT max(block_number) FROM transactions")[0][0]
        log_max = pg.sql("SELECT max(block_number) FROM logs")[0][0]
        check_rows("postgres", cp, numbers, int(tx_max) if tx_max else None,
                   int(log_max) if log_max else None, failed_block(line))
        if cp is None or cp < 20:
            raise Fail(f"postgres: checkpoint {cp}: the disk filled up before a batch was "
                       f"stored; the test proves little (make the tmpfs bigger)")
        if cp >= BLOCKS - 1:
            raise Fail("postgres: the whole chain fit on the tmpfs; make it smaller")
        print(f"[postgres] OK: checkpoint {cp} = max(number), blocks 0..{cp} once each, "
              f"nothing above")
    finally:
        pg.stop()
        if mounted:
            umount(small)


def sqlite_phase(bp, url_node, tmp, label="sqlite", size_mb=16, batch=20, at_commit=False):
    """at_commit: batches small enough to stay in SQLite's page cache until COMMIT, so the
    disk fills up there (the WAL grows at COMMIT) or where the cache spills in a statement of
    the batch; the error must name the block either way (and says where it struck)."""
    small = os.path.join(tmp, label)
    os.mkdir(small)
    mount_tmpfs(small, size_mb)
    try:
        db = os.path.join(small, "bp.db")
        cmd = [bp, "backfill", "--rpc", url_node, "--from", "0", "--to", str(BLOCKS - 1),
               "--output", f"sqlite:{db}", "--batch-size", str(batch), "--workers", "4"]
        rc, out, dt = run_bp(cmd, label)
        line = error_line(out, ["database or disk is full", "No space left on device"])
        print(f"[{label}] exit {rc} after {dt:.1f}s")
        if rc != 1 or not line or failed_block(line) is None:
            raise Fail(f"{label}: `{' '.join(cmd)}`\n  expected: exit 1 with 'database or disk is "
                       f"full' and 'block N'\n  got: exit {rc}\n{out[-3000:]}")
        if at_commit:
            print(f"  (struck {'at COMMIT' if 'COMMIT' in line else 'in a statement of the batch'})")
        print(f"  {line.strip()[:400]}")
        failed = failed_block(line)
        copy = os.path.join(tmp, label + "-copy")
        os.mkdir(copy)
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                shutil.copy(db + suffix, os.path.join(copy, "bp.db" + suffix))
    finally:
        umount(small)
    con = sqlite3.connect(os.path.join(copy, "bp.db"))
    try:
        ic = con.execute("PRAGMA integrity_check").fetchall()
        if ic != [("ok",)]:
            raise Fail(f"{label}: integrity_check {ic[:10]}")
        cps = con.execute("SELECT number FROM checkpoints").fetchall()
        if len(cps) > 1:
            raise Fail(f"{label}: {len(cps)} checkpoint rows: {cps}")
        cp = cps[0][0] if cps else None
        numbers = [n for (n,) in con.execute("SELECT number FROM blocks ORDER BY number")]
        tx_max = con.execute("SELECT max(block_number) FROM transactions").fetchone()[0]
        log_max = con.execute("SELECT max(block_number) FROM logs").fetchone()[0]
    finally:
        con.close()
    check_rows(label, cp, numbers, tx_max, log_max, failed, batch)
    if cp is None or cp < batch:
        raise Fail(f"{label}: checkpoint {cp}: the disk filled up before a batch was stored")
    if cp >= BLOCKS - 1:
        raise Fail(f"{label}: the whole chain fit on the tmpfs; make it smaller")
    print(f"[{label}] OK: integrity_check ok, checkpoint {cp} = max(number), blocks 0..{cp} "
          f"once each, nothing above")


def main():
    print(__doc__.strip())
    bp = blockpipe_bin()
    if os.geteuid() != 0:
        raise Fail("this test needs root: it mounts small tmpfs file systems to fill up "
                   f"(running as uid {os.geteuid()})")
    node, url = start_simnode(bp)
    tmp = tempfile.mkdtemp(prefix="bp-disk-full-")
    os.chmod(tmp, 0o755)  # the postgres user reaches the tablespace through it
    try:
        postgres_phase(bp, url, tmp)
        sqlite_phase(bp, url, tmp)
        sqlite_phase(bp, url, tmp, "sqlite-commit", 10, 5, at_commit=True)
        print("OK")
    finally:
        node.terminate()
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (Fail, subprocess.TimeoutExpired, RuntimeError) as e:
        sys.exit(f"FAIL: {e}")
