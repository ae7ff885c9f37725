#!/usr/bin/env bash
# Segmentation examples of Table 1 on real photographs: image | ground truth | from random init |
# from colorization (seed 0), the first 8 val images, written to docs/experiments/table1-realseg/.
#   scripts/realseg-examples.sh [RECIPE_OUT=runs/table1-realseg] [DATA=data/realseg-seen]
# Needs a finished `colorproxy experiment run experiments/table1-realseg.toml --out RECIPE_OUT`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-runs/table1-realseg}"
data="${2:-data/realseg-seen}"
bin="${COLORPROXY_BIN:-target/release/colorproxy}"
args=()
for init in random colorization; do
  run=$(ls -d "$out"/runs/finetune-seg-$init-seed0-* | head -1)
  "$bin" eval seg --checkpoint "$run/checkpoints/last.safetensors" --data "$data" --split val \
    --save-predictions "$out/predictions-$init-seed0"
  args+=(--pred "$init=$out/predictions-$init-seed0")
done
.venv/bin/python tools/seg_examples.py --data "$data" --split val --n 8 --scale 1 \
  --out docs/experiments/table1-realseg/examples-seed0.png "${args[@]}"
