#!/usr/bin/env python3
"""How much two store dialects repeat each other (issue #17's measure).

Usage: scripts/dialect-overlap.py src/store/sqlite src/store/postgres

Counts the meaningful lines (stripped; not blank, not a comment, not a lone brace or
bracket, at least 12 characters) of each directory's .rs files, and how many of them
also occur in the other directory (as a multiset, so a line written three times on one
side and once on the other counts once). A line both stores need is a rule or a shape
written twice; SQL differs between the dialects, so it rarely matches.

A second line counts, the same way, the lines that stand in runs of three or more that
occur in the same order in the other directory (issue #17's first measure).

A third line counts those runs again with function signatures left out (from `fn` to the
line that opens the body). Both stores implement the same traits (`Store` and the step
traits of `store::sequences`), so the compiler makes them write each method's signature
alike: the third line is what the bodies, where rules and sequences live, still repeat.
"""
import collections
import pathlib
import re
import sys

SIGNATURE = re.compile(r"^(pub(\([^)]*\))?\s+)?(async\s+)?fn\s")


def lines(directory):
    out = collections.Counter()
    for path in sorted(pathlib.Path(directory).rglob("*.rs")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if len(line) < 12 or line.startswith("//"):
                continue
            out[line] += 1
    return out


def sequences(directory, bodies_only=False):
    out = []
    for path in sorted(pathlib.Path(directory).rglob("*.rs")):
        kept, in_signature = [], False
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if bodies_only and not in_signature and SIGNATURE.match(line):
                in_signature = not line.endswith(("{", ";"))
                continue
            if in_signature:
                in_signature = not line.endswith(("{", ";"))
                continue
            if len(line) >= 12 and not line.startswith("//"):
                kept.append(line)
        out.append(kept)
    return out


def in_runs(mine, theirs, n=3):
    grams = {tuple(s[i:i + n]) for s in theirs for i in range(len(s) - n + 1)}
    count = 0
    for s in mine:
        marked = [False] * len(s)
        for i in range(len(s) - n + 1):
            if tuple(s[i:i + n]) in grams:
                marked[i:i + n] = [True] * n
        count += sum(marked)
    return count


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = lines(sys.argv[1]), lines(sys.argv[2])
    shared = sum(min(a[line], b[line]) for line in a.keys() & b.keys()) * 2
    total = sum(a.values()) + sum(b.values())
    print(f"{shared}/{total} meaningful lines repeated across the two = {100 * shared / total:.1f} %")
    sa, sb = sequences(sys.argv[1]), sequences(sys.argv[2])
    runs = in_runs(sa, sb) + in_runs(sb, sa)
    print(f"{runs}/{total} in runs of 3+ lines found in the same order in the other = {100 * runs / total:.1f} %")
    sa, sb = sequences(sys.argv[1], True), sequences(sys.argv[2], True)
    runs, total = in_runs(sa, sb) + in_runs(sb, sa), sum(map(len, sa + sb))
    print(f"{runs}/{total} of the same, function signatures left out = {100 * runs / total:.1f} %")


if __name__ == "__main__":
    main()
