#!/usr/bin/env python3
"""Summarises bench/compare.sh's output directory as one Markdown table:
for each measure, the median over the rounds of each side, and the ratio
(this tree / the base; below 1 is faster for times, above 1 is more for
rates), with the rounds' range.

    python3 bench/compare.py OUT_DIR BASE_LABEL NOW_LABEL
"""
import glob
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "cache"))
import report  # noqa: E402  (the cache benchmark's parser)


def emulator(path):
    """{mode: tokens/s} from the token endpoint benchmark's summary."""
    out = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\s+(secret|certificate)\s+([\d.]+) tokens/s", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def isv(path):
    """{row label: wall seconds} from bench/isv/run.sh's table."""
    out = {}
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[2].endswith(" s") and cells[1] != "run":
            label = re.sub(r"\d+ tenants", "N tenants", cells[1])
            out[label] = float(cells[2][:-2])
    return out


def collect(directory, kind, side, parse):
    runs = [parse(p) for p in sorted(glob.glob(os.path.join(directory, "%s-%s-*.txt" % (kind, side))))]
    keys = set().union(*runs) if runs else set()
    return {k: [r[k] for r in runs if k in r] for k in keys}


def row(name, unit, base, now):
    if not base or not now:
        return
    b, n = statistics.median(base), statistics.median(now)
    fmt = (lambda v: "%.0f ns" % v) if unit == "ns" else (lambda v: "%.2f s" % v) if unit == "s" else (lambda v: "{:,.0f}/s".format(v))
    print("| %s | %s (%s–%s) | %s (%s–%s) | %.2f |" % (
        name, fmt(b), fmt(min(base)), fmt(max(base)), fmt(n), fmt(min(now)), fmt(max(now)), n / b))


def main(directory, base_label, now_label):
    print("| measure | %s (base) | %s (now) | now / base |" % (base_label, now_label))
    print("|---|---|---|---|")
    cb, cn = (collect(directory, "cache", s, report.parse) for s in ("base", "now"))
    for bench in ("hit_hot_key", "hit"):
        for arg in ("1", "1000", "100000"):
            for t in (1, 2):
                k = (bench, arg, t)
                row("cache `%s`, %s tokens, %d thread%s" % (bench, "{:,}".format(int(arg)), t, "s" if t > 1 else ""),
                    "ns", cb.get(k), cn.get(k))
    for bench in ("miss", "coalesced_miss_64_callers"):
        k = (bench, None, None)
        row("cache `%s`" % bench, "ns", cb.get(k), cn.get(k))
    eb, en = (collect(directory, "emu", s, emulator) for s in ("base", "now"))
    for mode in ("secret", "certificate"):
        row("emulator token endpoint, %s (tokens/s)" % mode, "rate", eb.get(mode), en.get(mode))
    ib, inow = (collect(directory, "isv", s, isv) for s in ("base", "now"))
    for label in sorted(set(ib) | set(inow)):
        row(label + " (wall)", "s", ib.get(label), inow.get(label))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
