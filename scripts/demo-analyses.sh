#!/usr/bin/env bash
# The paper's analyses on a finished demo, on its validation scenes: feature shift (Fig. 3) of the
# colorization backbone before and after segmentation fine-tuning (OUT_DIR/shift), and top
# activations (Fig. 5) of conv4_1 in both (OUT_DIR/top/index.html).
#   scripts/demo-analyses.sh DEMO_DIR [OUT_DIR]     (DEMO_DIR: what `colorproxy demo --out` wrote)
set -euo pipefail
demo="${1:?usage: scripts/demo-analyses.sh DEMO_DIR [OUT_DIR]}"
out="${2:-$demo/analyses}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/target/release/colorproxy"
voc="$demo/data/voc"
[[ -f "$voc/ImageSets/Segmentation/val.txt" ]] || { echo "demo-analyses: $demo is not a finished demo" >&2; exit 1; }
mkdir -p "$out"
list="$out/val-images.txt"
sed "s|^|$(cd "$voc" && pwd)/JPEGImages/|; s|$|.jpg|" "$voc/ImageSets/Segmentation/val.txt" > "$list"
before="$demo/pretrain/checkpoints/last.safetensors"
after="$demo/seg-colorization/checkpoints/last.safetensors"
"$bin" analyse shift --before "$before" --after "$after" --data "$list" --images 100 --size 96 \
  --out "$out/shift" --force
"$bin" analyse top --checkpoint "$before" --compare "$after" --layer conv4_1 --features 6 --top 8 \
  --data "$list" --size 96 --out "$out/top" --force
