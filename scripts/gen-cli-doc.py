#!/usr/bin/env python3
"""Rewrites the generated parts of the docs from the program: the option tables of docs/CLI.md
(`blockpipe --help-markdown`), the simnode usage (`blockpipe simnode --help`) and the column tables of docs/SCHEMA.md (`blockpipe
--help-columns`, `--help-derived`, `--help-arch-columns`); with --check says whether they differ (exit 1).
Usage: gen-cli-doc.py BLOCKPIPE [--check]"""
import pathlib
import subprocess
import sys

PARTS = [("CLI.md", "options", "--help-markdown"), ("CLI.md", "presets", "--help-presets"),
         ("CLI.md", "simnode", "simnode --help"),
         ("SCHEMA.md", "columns", "--help-columns"),
         ("SCHEMA.md", "derived", "--help-derived"),
         ("SCHEMA.md", "arch", "--help-arch-columns")]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    docs = pathlib.Path(__file__).resolve().parent.parent / "docs"
    bad = []
    for name, marker, flag in PARTS:
        doc = docs / name
        begin, end = f"<!-- {marker}:begin -->\n", f"<!-- {marker}:end -->\n"
        text = doc.read_text()
        made = subprocess.run([sys.argv[1]] + flag.split(), check=True, capture_output=True,
                              text=True).stdout
        a, b = text.index(begin) + len(begin), text.index(end)
        if "--check" not in sys.argv[2:]:
            doc.write_text(text[:a] + made + text[b:])
        elif text[a:b] != made:
            bad.append(f"docs/{name}: its {marker} differ from `blockpipe {flag}`")
        else:
            print(f"docs/{name}: {marker} match the program")
    if bad:
        sys.exit("\n".join(bad) + "\nrun `make docs`")


if __name__ == "__main__":
    main()
