#!/usr/bin/env bash
# `colorproxy demo --seed S` for S = 0..4 (each alone, one after the other), then the paired
# comparison colorization - random per task: per seed the difference, its mean and 95% interval
# (Student's t, paired, n - 1 degrees of freedom). Finished seeds (results.json) are reused.
# Writes OUT/seed-S/ (the demo's folders) and docs/experiments/demo-seeds/tables.md.
#   scripts/demo-seeds.sh [OUT] [SEEDS...]      (default: runs/demo-seeds 0 1 2 3 4)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/runs/demo-seeds}"
shift || true
seeds=("${@:-0 1 2 3 4}")
seeds=(${seeds[*]})
bin="$root/target/release/colorproxy"
mkdir -p "$out"
for s in "${seeds[@]}"; do
  if [[ ! -f "$out/seed-$s/results.json" ]]; then
    echo "demo-seeds: seed $s" >&2
    "$bin" demo --seed "$s" --out "$out/seed-$s" > "$out/seed-$s.log" 2>&1
  fi
done
python3 - "$out" "$root/docs/experiments/demo-seeds/tables.md" "${seeds[@]}" <<'PY'
import json, math, pathlib, sys
out, md, seeds = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), [int(s) for s in sys.argv[3:]]
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262]  # df 1..9 (standard table)
runs = {s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in seeds}
lines = ["# `colorproxy demo --seed S`, S = " + ", ".join(map(str, seeds)), "",
         "Command: `scripts/demo-seeds.sh` (each seed alone on the 2-core machine, one after the other).", "",
         "| seed | seg mIoU: reference / random / colorization (difference) | cls mAP: reference / random / colorization (difference) | wall time |",
         "|---|---|---|---|"]
diffs = {"seg": [], "cls": []}
for s, r in runs.items():
    cells = []
    for t in ["seg", "cls"]:
        d = r[t]["colorization"] - r[t]["random"]
        diffs[t].append(d)
        ref = (r["reference"][t] or {}).get("value", float("nan"))
        cells.append(f"{ref:.3f} / {r[t]['random']:.3f} / {r[t]['colorization']:.3f} ({d:+.3f})")
    lines.append(f"| {s} | {cells[0]} | {cells[1]} | {r['seconds']:.0f} s |")
lines += ["", "Paired comparison, colorization - random (same seed: same scenes, pretraining and fine-tuning seed):", "",
          "| task | mean difference | sample std | 95% paired t interval | seeds ahead |", "|---|---|---|---|---|"]
for t, name in [("seg", "segmentation (mIoU)"), ("cls", "classification (mAP)")]:
    d = diffs[t]
    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)) if n > 1 else float("nan")
    h = T975[n - 2] * sd / math.sqrt(n) if n > 1 else float("nan")
    verdict = "above 0" if m - h > 0 else ("below 0" if m + h < 0 else "includes 0")
    lines.append(f"| {name} | {m:+.3f} | {sd:.3f} | [{m - h:+.3f}, {m + h:+.3f}] ({verdict}) | {sum(x > 0 for x in d)} of {n} |")
md.parent.mkdir(parents=True, exist_ok=True)
md.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
