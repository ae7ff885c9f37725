"""The probes' table (issue 31): does colorization pretraining learn something that fine-tuning
then washes out? Linear (logistic regression on standardised features) and kNN (cosine, k = 20)
probes of each layer's globally pooled features, trained on a VOC-style set's train split and
scored (mAP) on its val split, for the colorization-pretrained network and for the same network
untrained (`analyse probe --random-init`: the pretraining's own initialisation, one per seed).

Standard library only; it runs `colorproxy analyse probe --json` and writes OUT/results.csv (one
row per probe) and OUT/tables.md. Command (what scripts/probes.sh runs):

    python3 tools/probe_table.py --out docs/experiments/probes \
        --set NAME=CHECKPOINT,DATA,SIZE [--set ...] [--seeds 0,1,2,3,4] [--layers conv1_2,...]

Untrained: one network per seed (its initialisation) probed with that seed. Colorization: the one
pretrained network, its linear probe started from each seed (the probe is convex: the spread is
the probe's own, near 0), kNN once (deterministic). Every value is listed in results.csv.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def probe(binary, checkpoint, data, size, layers, method, seed, random_init):
    cmd = [binary, "analyse", "probe", "--checkpoint", checkpoint, "--data", data, "--size", str(size),
           "--layer", ",".join(layers), "--method", method, "--seed", str(seed), "--json"]
    if random_init:
        cmd.append("--random-init")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def spread(xs):
    m = statistics.mean(xs)
    if len(xs) < 2:
        return f"{m:.3f}"
    sd = statistics.stdev(xs)
    h = T975.get(len(xs) - 1, 1.96) * sd / len(xs) ** 0.5
    return f"{m:.3f} ± {sd:.3f} [{m - h:.3f}, {m + h:.3f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", required=True, help="NAME=CHECKPOINT,DATA,SIZE")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--layers", default="conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc6,fc7")
    ap.add_argument("--bin", default="target/release/colorproxy")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    layers = a.layers.split(",")
    os.makedirs(a.out, exist_ok=True)
    rows = []
    t0 = time.time()
    for spec in a.set:
        name, rest = spec.split("=", 1)
        checkpoint, data, size = rest.split(",")
        for method in ["linear", "knn"]:
            for seed in seeds:
                for network, random_init in [("untrained", True), ("colorization", False)]:
                    if network == "colorization" and method == "knn" and seed != seeds[0]:
                        continue  # deterministic
                    for r in probe(a.bin, checkpoint, data, size, layers, method, seed, random_init):
                        rows.append({"set": name, "network": network, "seed": seed, "method": method,
                                     "layer": r["layer"], "features": r["features"], "value": r["value"]})
                    print(f"{name} {method} {network} seed {seed}: done ({time.time() - t0:.0f} s)",
                          file=sys.stderr)
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["# Probes: colorization-pretrained vs untrained features, layer by layer", "",
          "Linear and kNN probes of each layer's globally pooled features (VOC-style classification, mAP "
          "on the val split, trained on train). Untrained: the pretraining's architecture with the initial "
          f"weights of seeds {a.seeds} (mean ± sd [95% t interval], one network per seed). Colorization: "
          "the pretrained network (linear: the probe started from each seed; kNN: once). Difference: "
          "colorization minus the untrained mean. Command: `scripts/probes.sh` "
          "(tools/probe_table.py; every probe in results.csv). "
          f"{len(rows)} probes, {time.time() - t0:.0f} s.", ""]
    for spec in a.set:
        name, rest = spec.split("=", 1)
        md += [f"## {name}", "", f"`{rest}` (checkpoint, data, image size)", ""]
        for method in ["linear", "knn"]:
            md += [f"### {method}", "", "| layer | features | untrained | colorization | difference |",
                   "|---|---|---|---|---|"]
            for layer in layers:
                sel = [r for r in rows if r["set"] == name and r["method"] == method and r["layer"] == layer]
                u = [r["value"] for r in sel if r["network"] == "untrained"]
                c = [r["value"] for r in sel if r["network"] == "colorization"]
                if not u or not c:
                    continue
                md.append(f"| {layer} | {sel[0]['features']} | {spread(u)} | {spread(c)} | "
                          f"{statistics.mean(c) - statistics.mean(u):+.3f} |")
            md.append("")
    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
