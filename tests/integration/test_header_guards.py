#!/usr/bin/env python3
"""Every header under src/ and include/ is one include guard: its first directive is
`#ifndef G`, then `#define G`, and the `#endif` closing that `#ifndef` is its last directive
with nothing but comments after it, so that nothing is declared (or included) outside the
guard, as src/sink/sqlgen.h once declared half its functions after its `#endif`."""
import os
import pathlib
import re
import sys

src = pathlib.Path(os.environ.get("BP_SOURCE_DIR",
                                  pathlib.Path(__file__).resolve().parent.parent.parent))
DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(\S*)")


def code_lines(text):
    """The lines with their comments blanked (block comments may span lines)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return [re.sub(r"//.*", "", line) for line in text.split("\n")]


def check(path):
    lines = code_lines(path.read_text())
    directives = [(i, m.group(1), m.group(2)) for i, line in enumerate(lines)
                  if (m := DIRECTIVE.match(line))]
    if len(directives) < 3 or directives[0][1] != "ifndef" or directives[1][1] != "define" \
            or directives[1][2] != directives[0][2]:
        return "does not open with #ifndef G / #define G"
    first_code = next(i for i, line in enumerate(lines) if line.strip())
    if first_code != directives[0][0]:
        return f"line {first_code + 1}: code before the guard's #ifndef"
    depth = 0
    for i, name, _ in directives:
        depth += name in ("if", "ifdef", "ifndef")
        depth -= name == "endif"
        if depth == 0:
            rest = [j + 1 for j in range(i + 1, len(lines)) if lines[j].strip()]
            if rest:
                return f"line {rest[0]}: after the guard's #endif (line {i + 1})"
            return None
    return "the guard's #ifndef is never closed"


bad = []
headers = sorted(p for d in ("src", "include") for p in (src / d).rglob("*.h"))
for h in headers:
    why = check(h)
    if why:
        bad.append(f"{h.relative_to(src)}: {why}")
print(f"{len(headers)} headers checked")
if bad:
    sys.exit("\n".join(bad))
print("PASS")
