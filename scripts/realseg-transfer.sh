#!/usr/bin/env bash
# Transfer on real photographs: colorization pretraining on the shared photos plus the real-image
# set's own training images (unlabelled), then segmentation and classification fine-tuning on the
# set from random init (rebalanced) and from colorization, evaluated on its validation split.
#   scripts/realseg-transfer.sh SEED [PRETRAIN_ITERATIONS]
# FINETUNE_MAX=N caps fine-tuning at N iterations (default: the configs' 600; the early-stopping
# protocol scales with the cap) and writes to runs/realseg/seed-SEED/<task>-<init>-N.
# TASKS="seg" (or "cls") runs one task only (default: "seg cls").
# Needs data/realseg (tools/make_realseg.py) and ../shared/data; writes runs/realseg/seed-SEED.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seed="${1:?seed}"
iters="${2:-1500}"
bin="${COLORPROXY_BIN:-target/release/colorproxy}"
data="$root/data/realseg"
out="$root/runs/realseg/seed-$seed"
mkdir -p "$out"
list="$out/pretrain-images.txt"
{ ls "$root/../shared/data/photos/train"/*.jpg; ls "$data/JPEGImages"/train_*.jpg; } > "$list"
"$bin" pretrain --preset cpu-small --data "$list" --out "$out/pretrain" --iterations "$iters" --seed "$seed" --force
ck="$out/pretrain/checkpoints/last.safetensors"
cap=(); suffix=""
if [[ -n "${FINETUNE_MAX:-}" ]]; then cap=(--max-iterations "$FINETUNE_MAX"); suffix="-$FINETUNE_MAX"; fi
tasks="${TASKS:-seg cls}"
for task in $tasks; do
  for init in random colorization; do
    i=random; [[ $init == colorization ]] && i="$ck"
    "$bin" finetune $task --config experiments/realseg/$task.toml --data "$data" --init "$i" \
      --seed "$seed" --out "$out/$task-$init$suffix" --eval-split val --force "${cap[@]}"
  done
done
python3 - "$out" "$suffix" $tasks <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for task in sys.argv[3:]:
    for init in ["random", "colorization"]:
        r = json.load(open(out / f"{task}-{init}{sys.argv[2]}" / "results.json"))
        ref = r.get("reference") or ["-", float("nan")]
        print(f"{out.name} {task} {init}: {r['metric']} {r['value']:.4f} (reference {ref[0]} {ref[1]:.4f})")
PY
