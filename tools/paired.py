#!/usr/bin/env python3
"""Paired differences between two cells of a recipe's results (same seed): per seed the difference,
its mean, sample standard deviation and 95% paired t interval (n - 1 degrees of freedom), as a
Markdown table. For tables whose rows the runner cannot pair itself (a random-init row of another
fine-tuning, e.g. Table 3's architectures).

    python3 tools/paired.py RESULTS.csv METRIC LABEL=NAME:INIT,NAME:INIT [...]

e.g. python3 tools/paired.py runs/table3-realseg/results.csv miou \
         "AlexNet=seg:alexnet,seg-alexnet:random" "VGG-16=seg:vgg16,seg:random"
(the first cell minus the second).
"""
import csv
import math
import statistics
import sys

# Student's t, two-sided 95%, df 1..9 (standard table).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, metric, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    values = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["kind"].startswith("finetune") and r["metric"] == metric:
                values[(r["name"], r["init"], int(r["seed"]))] = float(r["value"])
    print(f"| comparison ({metric}, first - second, same seed) | per seed | mean | sd | 95% paired t interval | seeds ahead |")
    print("|---|---|---|---|---|---|")
    for spec in pairs:
        label, cells = spec.split("=", 1)
        if cells.count(",") != 1:
            sys.exit(f"{spec}: expected LABEL=NAME:INIT,NAME:INIT")
        a, b = cells.split(",")
        an, ai = a.split(":", 1)
        bn, bi = b.split(":", 1)
        seeds = sorted(s for (n, i, s) in values if (n, i) == (an, ai) and (bn, bi, s) in values)
        if not seeds:
            sys.exit(f"{spec}: no seed has both {a} and {b} in {path}")
        d = [values[(an, ai, s)] - values[(bn, bi, s)] for s in seeds]
        m = statistics.mean(d)
        if len(d) > 1:
            sd = statistics.stdev(d)
            h = T975[len(d) - 2] * sd / math.sqrt(len(d))
            interval = f"[{m - h:+.3f}, {m + h:+.3f}]" + (" (above 0)" if m - h > 0 else " (includes 0)" if m + h > 0 else " (below 0)")
            sd_s = f"{sd:.3f}"
        else:
            interval, sd_s = "-", "-"
        each = " / ".join(f"{x:+.3f}" for x in d)
        ahead = sum(x > 0 for x in d)
        print(f"| {label} | {each} (seeds {', '.join(map(str, seeds))}) | {m:+.3f} | {sd_s} | {interval} | {ahead} of {len(d)} |")


if __name__ == "__main__":
    main()
