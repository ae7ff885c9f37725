#!/usr/bin/env bash
# Feature shift (the paper's Fig. 3) on a finished demo: the colorization backbone before and after
# segmentation fine-tuning, on the demo's validation scenes.
#   scripts/demo-shift.sh DEMO_DIR [OUT_DIR]     (DEMO_DIR: what `colorproxy demo --out` wrote)
set -euo pipefail
demo="${1:?usage: scripts/demo-shift.sh DEMO_DIR [OUT_DIR]}"
out="${2:-$demo/shift}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/target/release/colorproxy"
voc="$demo/data/voc"
[[ -f "$voc/ImageSets/Segmentation/val.txt" ]] || { echo "demo-shift: $demo is not a finished demo" >&2; exit 1; }
mkdir -p "$out"
list="$out/val-images.txt"
sed "s|^|$(cd "$voc" && pwd)/JPEGImages/|; s|$|.jpg|" "$voc/ImageSets/Segmentation/val.txt" > "$list"
"$bin" analyse shift --before "$demo/pretrain/checkpoints/last.safetensors" \
  --after "$demo/seg-colorization/checkpoints/last.safetensors" \
  --data "$list" --images 100 --size 96 --out "$out" --force
