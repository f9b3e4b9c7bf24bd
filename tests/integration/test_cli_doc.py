#!/usr/bin/env python3
"""docs/CLI.md's option tables are the program's: they equal `blockpipe --help-markdown`, which
is made from the same tables as --help (the core options and every output's own options)."""
import os
import subprocess
import sys

src = os.environ["BP_SOURCE_DIR"]
r = subprocess.run([sys.executable, os.path.join(src, "scripts", "gen-cli-doc.py"),
                    os.environ["BLOCKPIPE"], "--check"], capture_output=True, text=True)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
sys.exit(r.returncode)
