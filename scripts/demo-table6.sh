#!/usr/bin/env bash
# The paper's Table 6 (which layers must be fine-tuned) on a finished demo: segmentation on the
# demo's scenes from random init and from the demo's colorization checkpoint, seeds 0, 1, 2, each
# run capped at 200 iterations (the early-stopping protocol inside the cap), the seg-cpu preset
# evaluated at the scenes' own size (96 px) as the demo does.
#   scripts/demo-table6.sh DEMO_DIR [OUT_DIR]     (DEMO_DIR: what `colorproxy demo --out` wrote)
set -euo pipefail
demo="${1:?usage: scripts/demo-table6.sh DEMO_DIR [OUT_DIR]}"
out="${2:-$demo/table6}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
sed 's/^test_short_side = .*/test_short_side = 96.0/; s/^test_max_side = .*/test_max_side = 0/' \
  "$root/presets/seg-cpu.toml" > "$out/seg-demo.toml"
"$root/target/release/colorproxy" analyse frozen seg --data "$demo/data/voc" --config "$out/seg-demo.toml" \
  --init random --init "$demo/pretrain/checkpoints/last.safetensors" \
  --seeds 0,1,2 --max-iterations 200 --out "$out"
