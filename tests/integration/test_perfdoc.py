"""bench/perfdoc.py keeps a section's hand-written notes when `make bench` rewrites it.

A benchmark replaces its own section of docs/PERFORMANCE.md on every run; the analysis
written by hand beside its figures (what perf found, why a target is missed) lives between
<!-- NAME:notes:begin --> and <!-- NAME:notes:end --> and must survive the rewrite, while the
figures of the previous run go and the other sections stay byte for byte."""
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import perfdoc  # noqa: E402


def fail(msg):
    raise AssertionError(msg)


def main():
    with tempfile.TemporaryDirectory(prefix="bp-perfdoc-") as tmp:
        path = os.path.join(tmp, "PERFORMANCE.md")
        other = "<!-- pg:begin -->\n## PostgreSQL\n\n| a | 1 |\n<!-- pg:end -->"
        notes = ("<!-- metrics:notes:begin -->\nRe-measured at `abc` by hand: 0.66.\n"
                 "<!-- metrics:notes:end -->")
        with open(path, "w") as f:
            f.write(f"# Performance\n\n{other}\n\n<!-- metrics:begin -->\n## Derived\n\n"
                    f"| old figure | old-figure-111 |\n\n{notes}\n<!-- metrics:end -->\n")
        perfdoc.write_section(path, "metrics", "## Derived\n\n| new figure | new-figure-222 |\n")
        doc = open(path).read()
        sec = perfdoc.read_section(path, "metrics")
        if "old-figure-111" in sec or "new-figure-222" not in sec:
            fail(f"the section's figures were not replaced:\n{sec}")
        if notes not in sec or sec.index("new-figure-222") > sec.index(notes):
            fail(f"the hand-written notes were dropped or moved before the figures:\n{sec}")
        if other not in doc:
            fail("another section changed")
        perfdoc.write_section(path, "metrics", "## Derived\n\n| newer | newer-figure-333 |\n")
        sec = perfdoc.read_section(path, "metrics")
        if sec.count("metrics:notes:begin") != 1 or "newer-figure-333" not in sec:
            fail(f"a second run duplicated the notes or kept old figures:\n{sec}")
        perfdoc.not_run(path, "metrics", "simnode died")
        sec = perfdoc.read_section(path, "metrics")
        if "newer-figure-333" in sec or notes not in sec or "Did not run" not in sec:
            fail(f"a failed run must drop the figures and keep the notes:\n{sec}")
        perfdoc.write_section(path, "verify", "## verify\n\nfirst run\n")
        if "verify:notes" in open(path).read():
            fail("a new section got notes it never had")
    print("ok: hand-written notes survive rewrites and failed runs; figures and other "
          "sections behave as before")


if __name__ == "__main__":
    main()
