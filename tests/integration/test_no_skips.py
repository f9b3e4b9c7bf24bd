"""No test can pass by skipping: every test in tests/ either runs or fails.

A test whose server or tool is missing must fail naming it (tests/tools/pg.py, clickhouse.py,
redis.py, kafka.py, anvil.py, evmnodes.py, chdb_http.py and browser.py raise; scripts/
install-deps.sh --test installs them all), never print a note and exit 0: `make test` and CI
run everything, and a skip that passes hides what was not checked. This reads every test
source (integration and conformance scripts, their helpers in tests/tools, the unit tests,
the output contract, tests/CMakeLists.txt) for the ways a test says "passed" without checking:
Python's sys.exit(0) / exit(0) / os._exit(0) / SystemExit(0) / unittest or pytest skips, a
shell `exit 0`, cmocka's skip(), ctest's SKIP_RETURN_CODE / SKIP_REGULAR_EXPRESSION /
DISABLED. A test that may be skipped on purpose is named in OPTIONAL below, with why (there is
none today).
"""

import os
import re
import sys

SRC = os.environ.get("BP_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
TESTS = os.path.join(SRC, "tests")

# path below tests/ -> why it may skip (documented here and in the test itself)
OPTIONAL = {}

PATTERNS = {
    ".py": re.compile(r"\bsys\.exit\(\s*(0|None)?\s*\)|(?<![.\w])exit\(\s*0\s*\)|"
                      r"\bos\._exit\(\s*0\s*\)|\bSystemExit\(\s*0?\s*\)|"
                      r"\bunittest\.skip|\bpytest\.skip|\bSkipTest\b"),
    ".sh": re.compile(r"(^|[;&|{]|\bthen|\belse|\bdo)\s*exit\s+0\b"),
    ".c": re.compile(r"\bskip\s*\(\s*\)|\bcmocka_skip\b"),
    ".txt": re.compile(r"\bSKIP_RETURN_CODE\b|\bSKIP_REGULAR_EXPRESSION\b|\bDISABLED\b"),
}


def sources():
    for sub in ("integration", "conformance", "tools", "unit", "contract", "support"):
        d = os.path.join(TESTS, sub)
        for name in sorted(os.listdir(d)):
            if os.path.splitext(name)[1] in (".py", ".sh", ".c"):
                yield os.path.join(sub, name)
    yield "CMakeLists.txt"


def main():
    print(__doc__.strip(), flush=True)
    found, read = [], 0
    this = os.path.join("integration", os.path.basename(__file__))
    for rel in sources():
        if rel == this:
            continue  # its own patterns
        read += 1
        pat = PATTERNS[os.path.splitext(rel)[1]]
        with open(os.path.join(TESTS, rel), errors="replace") as f:
            for n, line in enumerate(f, 1):
                code = line.split("#", 1)[0] if not rel.endswith(".c") else line
                if pat.search(code) and rel not in OPTIONAL:
                    found.append(f"tests/{rel}:{n}: {line.strip()}")
    if read < 200:
        sys.exit(f"FAIL: only {read} test sources read under {TESTS}: the wrong tree?")
    if found:
        sys.exit("FAIL: a test that passes without checking (fail naming the missing tool "
                 "instead, or name the test in OPTIONAL with why):\n" + "\n".join(found))
    print(f"OK: none of {read} test sources skips or exits 0 early")


if __name__ == "__main__":
    main()
