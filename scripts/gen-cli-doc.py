#!/usr/bin/env python3
"""Rewrites the option tables of docs/CLI.md from `blockpipe --help-markdown`, or with --check
says whether they differ (exit 1). Usage: gen-cli-doc.py BLOCKPIPE [--check]"""
import pathlib
import subprocess
import sys

BEGIN, END = "<!-- options:begin -->\n", "<!-- options:end -->\n"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    doc = pathlib.Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
    text = doc.read_text()
    made = subprocess.run([sys.argv[1], "--help-markdown"], check=True, capture_output=True,
                          text=True).stdout
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    if "--check" in sys.argv[2:]:
        if text[a:b] != made:
            sys.exit(f"{doc}: the option tables differ from `blockpipe --help-markdown`; "
                     "run `make docs`")
        print("docs/CLI.md option tables match the program")
        return
    doc.write_text(text[:a] + made + text[b:])


if __name__ == "__main__":
    main()
