#!/usr/bin/env python3
"""The generated parts of the docs are the program's: docs/CLI.md's option tables equal
`blockpipe --help-markdown` (made from the same tables as --help: the core options and every
output's own options) and docs/SCHEMA.md's column table equals `blockpipe --help-columns`."""
import os
import subprocess
import sys

src = os.environ["BP_SOURCE_DIR"]
r = subprocess.run([sys.executable, os.path.join(src, "scripts", "gen-cli-doc.py"),
                    os.environ["BLOCKPIPE"], "--check"], capture_output=True, text=True)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
sys.exit(r.returncode)
