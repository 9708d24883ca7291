#!/usr/bin/env python3
"""Summarises runs of `cargo bench -p apptoken --bench cache` (divan's text
output) as Markdown: per run, the median hit cost at each size, one and two
threads, the 2-thread throughput (2 x t1 / t2), and the same ratio for the
pure-computation calibration, which shows how much of a second core this
shared machine actually gave during that run.

    bench/cache/run.sh [runs]        # runs the bench, then this script
    python3 bench/cache/report.py out1.txt out2.txt ...
"""
import re
import sys

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def ns(text):
    m = re.match(r"\s*([\d.]+)\s*(ps|ns|µs|us|ms|s)\s*$", text)
    if not m:
        raise ValueError("not a duration: %r" % text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(path):
    """{(bench, arg or None, threads or None): median_ns}"""
    out, bench, arg = {}, None, None
    for line in open(path, encoding="utf-8"):
        prefix = re.match(r"^([│ ]*)[├╰]─ ", line)
        if not prefix:
            continue
        depth = len(prefix.group(1)) // 3
        cells = line[prefix.end():].rstrip("\n").split("│")
        label = cells[0].split()[0]
        # A row with timings: name + fastest, slowest, median, mean, samples, iters.
        median = ns(cells[2]) if len(cells) >= 6 and re.search(r"\d", cells[2]) else None
        if depth == 0:
            bench, arg = label, None
            if median is not None:
                out[(bench, None, None)] = median
        elif label.startswith("t="):
            out[(bench, arg, int(label[2:]))] = median
        else:
            arg = label
            if median is not None:
                out[(bench, arg, None)] = median
    return out


def fmt(v):
    return "%.0f ns" % v if v < 10_000 else "%.1f µs" % (v / 1000)


def main(paths):
    runs = [parse(p) for p in paths]
    for i, r in enumerate(runs, 1):
        cal = r.get(("calibration_hash_80_bytes", None, 1)), r.get(("calibration_hash_80_bytes", None, 2))
        mem = r.get(("calibration_memory_access", None, 1)), r.get(("calibration_memory_access", None, 2))
        machine = 2 * cal[0] / cal[1] if all(cal) else float("nan")
        print("Run %d: the machine's own 2-thread scaling (calibration, pure computation) %.2f×; "
              "one read from memory outside the caches %s (1 thread), %s (2 threads)\n"
              % (i, machine, fmt(mem[0]) if mem[0] else "-", fmt(mem[1]) if mem[1] else "-"))
        print("| bench | cached tokens | 1 thread | 2 threads (per thread) | 2-thread throughput | relative to the machine's |")
        print("|---|---|---|---|---|---|")
        for bench in ("hit", "hit_hot_key", "hit_names_from_a_list"):
            for arg in ("1", "1000", "100000"):
                t1, t2 = r.get((bench, arg, 1)), r.get((bench, arg, 2))
                if not (t1 and t2):
                    continue
                scale = 2 * t1 / t2
                print("| `%s` | %s | %s | %s | %.2f× | %.2f |" % (
                    bench, "{:,}".format(int(arg)), fmt(t1), fmt(t2), scale, scale / machine))
        for bench in ("miss", "coalesced_miss_64_callers"):
            v = r.get((bench, None, None))
            if v:
                print("| `%s` | | %s | | | |" % (bench, fmt(v)))
        print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
