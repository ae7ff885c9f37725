#!/usr/bin/env bash
# The paper's Table 6 (which layers must be fine-tuned) on real photographs (CPU twin): VOC-style
# classification on the real-image set with seen objects, from random init and from Table 1's
# colorization pretraining, with nothing / fc6-fc7 / conv4_1 and up / everything trainable,
# seeds 0, 1, 2, the cls-cpu preset capped at 600 iterations (its early-stopping stages scaled
# with the cap). Run through the experiment runner (`analyse frozen` builds the recipe:
# OUT/recipe.toml); PROCESSES (default 2) processes of one libtorch thread share its runs.
#   scripts/table6-realseg.sh [OUT=runs/table6-realseg] [PROCESSES=2]
# Needs Table 1's pretraining:
#   .venv/bin/python tools/make_realseg.py --out data/realseg-seen --val-objects seen
#   colorproxy experiment run experiments/table1-realseg.toml --out runs/table1-realseg --only colorization
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/table6-realseg}"
procs="${2:-2}"
bin="${COLORPROXY_BIN:-target/release/colorproxy}"
ck=$(ls -d runs/table1-realseg/runs/pretrain-colorization-*/checkpoints/last.safetensors | head -1)
for _ in $(seq "$procs"); do
  OMP_NUM_THREADS=1 "$bin" analyse frozen cls --data data/realseg-seen --init random --init "$ck" \
    --seeds 0,1,2 --max-iterations 600 --out "$out" &
done
wait
# Once more, alone: the full tables (every run is finished; nothing reruns).
"$bin" analyse frozen cls --data data/realseg-seen --init random --init "$ck" \
  --seeds 0,1,2 --max-iterations 600 --out "$out"
