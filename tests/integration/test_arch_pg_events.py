"""Arch WebSocket events with awkward values into PostgreSQL and SQLite: arch_events rows go by
binary COPY (src/sink/pg_arch.c events_run), never as SQL text.

`blockpipe simnode --chain-type arch --dkg-status S` sends every 16th block's dkg event with a
status S of quotes, backslashes (a `\\x`, an `E'...'` and a `$$` spelling among them), control
characters, non-ASCII text and 60 000 more characters. One `blockpipe run --chain-type arch
--ws` writes into a PostgreSQL schema and an SQLite file at once, from the node's head, while
the test makes a rollback and then a re-apply episode on demand (simnode's control methods, no
timer). Once the run has stored the re-apply event and its checkpoint has passed two dkg
blocks it is stopped (SIGINT, exit 0). Then:
- PostgreSQL's arch_events has one dkg row (the dkg events' data are equal: one key), whose
  data is {"status": S} exactly (jsonb, read back as text and parsed);
- both outputs hold the same arch_events rows: key, topic, block_height, data (parsed) and
  received_at (the same double) of every row;
- the rolled-back transactions are not rolled back any more in either output (the re-apply's
  UPDATEs ran after the rollback's) and both hold rollback and re-apply events.
Stdlib only; needs BLOCKPIPE and a PostgreSQL server (tests/tools/pg.py).
"""

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import archcheck  # noqa: E402
from pg import Postgres  # noqa: E402
from simnode import Simnode  # noqa: E402

HANG = 120  # guards against a hang only
SCHEMA = "archev"
DKG_EVERY = 16  # sim/arch.h BP_SIM_ARCH_DKG_EVERY
AWKWARD = ("it's \"quoted\" ''twice''; back\\slash \\\\ \\x00 \\u0041 E'\\n' $$dollar$$ $q$ "
           "tab\tnewline\ncr\r bell\x07 é ✓ 𝄞 ;DROP TABLE arch_events;-- " + "0123456789" * 6000)


def fail(msg):
    raise AssertionError(msg)


def wait(cond, proc, what):
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            fail(f"blockpipe exited {proc.returncode} while waiting for {what}")
        time.sleep(0.05)
    fail(f"no {what} within {HANG} s")


def pg_checkpoint(pg):
    try:
        rows = pg.sql(f"SELECT number FROM {SCHEMA}.checkpoints WHERE chain = 'arch'")
    except RuntimeError:
        return -1  # the schema is not there yet
    return int(rows[0][0]) if rows else -1


def pg_count(pg, topic):
    try:
        return int(pg.sql(f"SELECT count(*) FROM {SCHEMA}.arch_events WHERE topic = '{topic}'")
                   [0][0])
    except RuntimeError:
        return 0


def pg_events(pg):
    # psql's text output cannot hold a tab or newline of the data unescaped: hex of the text
    rows = pg.sql(f"SELECT key, topic, coalesce(block_height::text, 'NULL'), "
                  f"encode(convert_to(data::text, 'UTF8'), 'hex'), "
                  f"float8send(received_at)::text FROM {SCHEMA}.arch_events "
                  "WHERE chain = 'arch' ORDER BY key")
    out = {}
    for key, topic, height, data, received in rows:
        out[key] = (topic, None if height == "NULL" else int(height),
                    json.loads(bytes.fromhex(data).decode()), received)
    return out


def sqlite_events(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT key, topic, block_height, data, received_at FROM arch_events "
                       "WHERE chain = 'arch' ORDER BY key").fetchall()
    con.close()
    return {key: (topic, height, json.loads(data),
                  "\\x" + struct.pack(">d", received).hex())
            for key, topic, height, data, received in rows}


def rolled_back(pg, db, txids):
    hexes = ",".join(f"'\\x{t}'" for t in txids)
    p = pg.sql(f"SELECT count(*) FROM {SCHEMA}.arch_transactions "
               f"WHERE rolled_back AND txid IN ({hexes})")
    con = sqlite3.connect(db)
    s = con.execute("SELECT count(*) FROM arch_transactions WHERE rolled_back AND txid IN (%s)"
                    % ",".join("?" * len(txids)), txids).fetchone()
    con.close()
    return int(p[0][0]), s[0]


def main():
    print(__doc__)
    bp = os.environ["BLOCKPIPE"]
    with tempfile.TemporaryDirectory(prefix="bp-arch-pg-events-") as tmp, Postgres() as pg:
        node = Simnode(bp, ["--chain-type", "arch", "--block-time", "0.2", "--start-head", "40",
                            "--txs-per-block", "2-6", "--seed", "77", "--dkg-status", AWKWARD])
        proc = None
        logpath = os.path.join(tmp, "run.log")
        try:
            url = node.urls[0]
            head = archcheck.call(url, [("get_block_count", [])])[0] - 1
            db = os.path.join(tmp, "ev.db")
            with open(logpath, "w") as log:
                proc = subprocess.Popen(
                    [bp, "run", "--chain-type", "arch", "--rpc", url,
                     "--ws", "ws://" + url.split("://", 1)[1], "--start-block", str(head),
                     "--output", pg.url(query=f"schema={SCHEMA}"), "--output", f"sqlite:{db}",
                     "--poll-interval", "0.1", "--log-level", "info"],
                    stdout=log, stderr=subprocess.STDOUT)
            wait(lambda: pg_checkpoint(pg) > head + 2, proc, "progress")
            r = node.control("simnode_rollback")
            wait(lambda: pg_count(pg, "rolledback_transactions") > 0, proc, "the rollback event")
            wait(lambda: rolled_back(pg, db, r["txids"]) == (len(r["txids"]),) * 2, proc,
                 "the rolled-back transactions stored as such in both outputs")
            node.control("simnode_reapply")
            wait(lambda: pg_count(pg, "reapplied_transactions") > 0, proc, "the re-apply event")
            # two dkg blocks stored: the second dkg event's row is the first's (one key)
            second = (head // DKG_EVERY + 2) * DKG_EVERY
            wait(lambda: pg_checkpoint(pg) > second + 2 and pg_count(pg, "dkg") > 0, proc,
                 f"the checkpoint past block {second} and a dkg row")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=HANG)
            if rc != 0:
                fail(f"blockpipe exited {rc} on SIGINT")

            got = pg_events(pg)
            dkg = [v for v in got.values() if v[0] == "dkg"]
            if len(dkg) != 1:
                fail(f"{len(dkg)} dkg rows in PostgreSQL, want 1 (equal data, one key)")
            if dkg[0][2] != {"status": AWKWARD}:
                fail(f"the dkg row's data differs from what the node sent: "
                     f"{json.dumps(dkg[0][2])[:300]}")
            print(f"PostgreSQL: the dkg row's status is the node's ({len(AWKWARD)} characters)")
            lite = sqlite_events(db)
            if got != lite:
                diff = sorted(k for k in set(got) | set(lite) if got.get(k) != lite.get(k))
                fail(f"{len(diff)} arch_events rows differ between PostgreSQL and SQLite, e.g. "
                     f"{diff[0]}: {str(got.get(diff[0]))[:300]} / {str(lite.get(diff[0]))[:300]}")
            if rolled_back(pg, db, r["txids"]) != (0, 0):
                fail("the re-applied transactions are still rolled back: "
                     f"{rolled_back(pg, db, r['txids'])}")
            topics = sorted({v[0] for v in got.values()})
            print(f"{len(got)} arch_events rows equal in both outputs (topics {topics}); the "
                  f"{len(r['txids'])} transactions rolled back and re-applied in both")
        except BaseException:
            if os.path.exists(logpath):
                print("--- run.log (tail) ---\n" + open(logpath).read()[-6000:])
            raise
        finally:
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
            node.kill()
    print("PASS")


if __name__ == "__main__":
    main()
