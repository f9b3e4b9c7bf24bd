"""A SQLite output that cannot be opened says why, naming the path.

SQLite itself says only "unable to open database file". blockpipe creates the database file
but not its directory, so a path in a missing directory (a typo, a volume not mounted) is the
common case; before, the error was
  output 'sqlite:/x/nodir/bp.db': /x/nodir/bp.db: cannot open: unable to open database file
- `backfill --output sqlite:DIR/nodir/bp.db` (simnode): exit 1, the error names the missing
  directory, and nothing is created;
- `migrate sqlite:FILE/bp.db` where FILE is a file: the error says it is not a directory;
- an openable path still works (the same migrate into DIR/bp.db: exit 0).
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pgcheck import Fail, blockpipe_bin, run, script_body  # noqa: E402
from simnode import Simnode  # noqa: E402


def main():
    print(__doc__.strip(), flush=True)
    bp = blockpipe_bin()
    with script_body("OK: a SQLite path that cannot be opened is explained") as keep:
        with tempfile.TemporaryDirectory(prefix="bp-sqlite-open-") as tmp:
            node = keep(Simnode(bp, ["--block-time", "0", "--length", "10",
                                     "--txs-per-block", "1"]))
            missing = os.path.join(tmp, "nodir")
            rc, text = run([bp, "backfill", "--rpc", node.urls[0], "--from", "0", "--to", "3",
                            "--output", f"sqlite:{missing}/bp.db"], timeout=120)
            want = f"the directory '{missing}' does not exist"
            if rc != 1 or want not in text:
                raise Fail(f"backfill into a missing directory: exit {rc}, expected 1 and "
                           f"{want!r}:\n{text[-2000:]}")
            if os.path.exists(missing):
                raise Fail(f"{missing} was created")
            print(f"check: backfill: exit 1, {want!r}", flush=True)

            afile = os.path.join(tmp, "afile")
            open(afile, "w").close()
            rc, text = run([bp, "migrate", f"sqlite:{afile}/bp.db"], timeout=60)
            want = f"'{afile}' is not a directory"
            if rc == 0 or want not in text:
                raise Fail(f"migrate under a file: exit {rc}, expected {want!r}:\n{text[-2000:]}")
            print(f"check: migrate: exit {rc}, {want!r}", flush=True)

            rc, text = run([bp, "migrate", f"sqlite:{tmp}/bp.db"], timeout=60)
            if rc != 0:
                raise Fail(f"migrate into {tmp}/bp.db: exit {rc}:\n{text[-2000:]}")
            print("check: an openable path: migrate exit 0", flush=True)


if __name__ == "__main__":
    main()
