#!/usr/bin/env bash
# The README's first command: set up libtorch, build colorproxy, and run it on built-in data.
# Until `colorproxy demo` lands this shows the colour targets of a generated image and, when the
# shared photos are beside the checkout, a short cpu-small pretraining run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release -p colorproxy
out="${1:-out/quickstart}"
mkdir -p "$out"
# A generated test image: hue sweeps left to right, saturation top to bottom.
.venv/bin/python - "$out/sweep.png" <<'PY'
import colorsys, sys
from PIL import Image
w, h = 256, 128
img = Image.new("RGB", (w, h))
img.putdata([tuple(int(255 * c) for c in colorsys.hsv_to_rgb(x / w, 1 - y / h, 0.9)) for y in range(h) for x in range(w)])
img.save(sys.argv[1])
PY
target/release/colorproxy targets --image "$out/sweep.png" --point 16,32 --point 64,128 --point 120,224 --png "$out/targets.png"
echo "wrote $out/targets.png (image | gray input | hue and chroma histograms at each point)"
photos="$root/../shared/data/photos/train"
if [[ -d "$photos" ]]; then
  target/release/colorproxy pretrain --preset cpu-small --data "$photos" --out "$out/pretrain" --iterations 200
  echo "wrote $out/pretrain (config.toml, metrics.jsonl, checkpoints/, loss.png)"
fi
