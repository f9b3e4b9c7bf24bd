"""perfdoc.py - docs/PERFORMANCE.md is written by several benchmarks; each replaces only its
own section, between <!-- NAME:begin --> and <!-- NAME:end -->."""
import os

HEADER = """# Performance

Every figure in a table comes from one run of `make bench` on one machine. Absolute numbers
on these shared machines are noisy: read the ratios.
"""


def write_section(path, name, text, legacy_heading=None):
    """Replaces section NAME of path with text (appends it when absent). legacy_heading: a
    '## ' heading of an older, unmarked version of the section, replaced up to the next one."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = open(path).read() if os.path.exists(path) else HEADER
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
