"""A --state-dir that cannot hold the state file is refused at start, before any work.

The state file records the blocks a run could not fetch, for `retry-failed`. It was written
only when the run ended: a --state-dir whose parent is missing (packaging/blockpipe.yaml's
/var/lib/blockpipe/state outside systemd) let a backfill do all its work, then said
"--state-dir ...: No such file or directory" and exited 0, the record it was for lost.
- backfill with --state-dir MISSING/state (simnode): a non-zero exit at start naming the
  directory and its missing parent; no block written to the output;
- --state-dir naming a file: refused the same way ("not a directory");
- --state-dir DIR/state whose parent exists: created, the run writes its state file there.
"""

import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, run, script_body  # noqa: E402
from simnode import Simnode  # noqa: E402


def blocks(db):
    if not os.path.exists(db):
        return 0
    with sqlite3.connect(db) as c:
        try:
            return c.execute("select count(*) from blocks").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    with script_body("OK: --state-dir is checked at start") as keep:
        with tempfile.TemporaryDirectory(prefix="bp-statedir-") as tmp:
            node = keep(Simnode(bp, ["--block-time", "0", "--length", "20",
                                     "--txs-per-block", "1"]))

            def backfill(db, state_dir):
                return run([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "9",
                            "--output", f"sqlite:{db}", "--state-dir", state_dir], timeout=120)

            db = os.path.join(tmp, "a.db")
            missing = os.path.join(tmp, "missing", "state")
            rc, text = backfill(db, missing)
            if rc == 0 or f"--state-dir {missing}: cannot create it: its parent directory " \
                          "does not exist" not in text or blocks(db):
                raise Fail(f"--state-dir {missing}: exit {rc}, {blocks(db)} blocks written; "
                           f"expected a refusal at start:\n{text[-2000:]}")
            print(f"check: missing parent: exit {rc} at start, no block written", flush=True)

            afile = os.path.join(tmp, "afile")
            open(afile, "w").close()
            db = os.path.join(tmp, "b.db")
            rc, text = backfill(db, afile)
            if rc == 0 or f"--state-dir {afile}: not a directory" not in text or blocks(db):
                raise Fail(f"--state-dir naming a file: exit {rc}:\n{text[-2000:]}")
            print(f"check: a file: exit {rc} at start, no block written", flush=True)

            db, state = os.path.join(tmp, "c.db"), os.path.join(tmp, "state")
            rc, text = backfill(db, state)
            if rc != 0 or blocks(db) != 10 or not os.path.isfile(os.path.join(state,
                                                                              "1337.json")):
                raise Fail(f"--state-dir {state}: exit {rc}, {blocks(db)} blocks, files "
                           f"{os.listdir(state) if os.path.isdir(state) else None}:\n"
                           f"{text[-2000:]}")
            print("check: a new directory under an existing one: made, the state file in it",
                  flush=True)


if __name__ == "__main__":
    main()
