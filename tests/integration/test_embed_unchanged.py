"""cmake/embed.cmake writes the embedded dashboard's source only when its text changes.

`make build` (and so `make run`) configures every time; the dashboard's generated C source
(dashboard_html.c) was written again each time, so each `make run` compiled it again and
relinked libblockpipe, the binary and every benchmark (about 40 s on a loaded 2-core machine)
for nothing. bp_embed_file is run as CMakeLists.txt runs it, in `cmake -P`:
- the source holds the input's bytes and their count, NUL-terminated;
- run again on the same input, it is not written (its mtime, set into the past, stays);
- run on a changed input, it is written with the new bytes.
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OLD = 1_000_000_000  # an mtime in 2001


def embed(tmp, src, out):
    script = os.path.join(tmp, "embed.cmake")
    with open(script, "w") as f:
        f.write(f'include("{ROOT}/cmake/embed.cmake")\n'
                f'bp_embed_file("{src}" "{out}" bp_test_page bp_test_page_len)\n')
    p = subprocess.run(["cmake", "-P", script], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        sys.exit(f"FAIL: cmake -P exited {p.returncode}: {p.stderr}")


def decoded(out):
    with open(out) as f:
        text = f.read()
    m = re.search(r"const char bp_test_page\[\] = \{([^}]*)\};", text)
    if not m or "const size_t bp_test_page_len = sizeof(bp_test_page) - 1;" not in text:
        sys.exit(f"FAIL: not the expected source:\n{text[:500]}")
    return bytes(int(x, 16) for x in m.group(1).replace(",", " ").split())


def main():
    print(__doc__.strip(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bp-embed-") as tmp:
        src, out = os.path.join(tmp, "page.html"), os.path.join(tmp, "page_html.c")
        page = b"<!doctype html>\n<p>\"quotes\" \\ and @AT@ ${NOT_A_VAR} \xc3\xa9</p>\n"
        with open(src, "wb") as f:
            f.write(page)
        embed(tmp, src, out)
        if decoded(out) != page + b"\0":
            sys.exit(f"FAIL: the source's bytes are not the page's: {decoded(out)!r}")
        print("check: the source holds the page's bytes and a NUL", flush=True)

        os.utime(out, (OLD, OLD))
        embed(tmp, src, out)
        if os.stat(out).st_mtime != OLD:
            sys.exit("FAIL: the same page wrote the source again (its mtime moved): every "
                     "configure recompiles it and relinks everything")
        print("check: the same page again: the source is not written", flush=True)

        with open(src, "ab") as f:
            f.write(b"<p>more</p>\n")
        embed(tmp, src, out)
        if os.stat(out).st_mtime == OLD or decoded(out) != page + b"<p>more</p>\n\0":
            sys.exit("FAIL: a changed page did not write the source with its new bytes")
        print("check: a changed page: written with the new bytes", flush=True)
    print("OK: the embedded page's source is written only when the page changes")


if __name__ == "__main__":
    main()
