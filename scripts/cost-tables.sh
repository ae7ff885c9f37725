#!/usr/bin/env bash
# The presets' cost table and the data-parallel scaling table (docs/costs.md): FLOPs, memory and
# hours from `colorproxy bench cost` (assumptions printed with it), and the communication /
# compute ratio measured on this machine: `bench allreduce` (Gloo, 2 ranks, paper-vgg16's
# gradient) against the measured CPU step of paper-vgg16 (`pretrain --dry-run`).
#   scripts/cost-tables.sh [OUT.md]          (default docs/costs.md)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${COLORPROXY_BIN:-$root/target/release/colorproxy}"
out="${1:-$root/docs/costs.md}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CI=1
"$bin" data generate --out "$work/scenes" --images 16 --seed 7 > /dev/null
{
  echo "# What runs cost, and how they scale"
  echo
  echo "Made by \`scripts/cost-tables.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPU cores, no GPU: every GPU"
  echo "figure is an estimate from the network's FLOPs and the stated throughput and bandwidths;"
  echo "\`scripts/gpu-check.sh\` measures the real step on the day a GPU is at hand)."
  echo
  "$bin" bench cost
  echo
  echo "## Measured on this machine (CPU, Gloo over loopback)"
  echo
  echo '```'
  "$bin" bench allreduce --preset paper-vgg16 --nproc 2 --iters 2 2>&1 | grep "all-reduce of"
  OMP_NUM_THREADS=2 "$bin" pretrain --preset paper-vgg16 --data "$work/scenes/unlabelled" --out "$work/unused" \
    --device cpu --dry-run --batch-size 2 2>&1 | grep -E "measured on|network:"
  echo '```'
} > "$out.tmp"
# The communication / compute ratio of those two measurements.
ar=$(grep -oE "over 2 ranks \(gloo\): [0-9.]+ s" "$out.tmp" | grep -oE "[0-9.]+ s" | cut -d' ' -f1)
step=$(grep -oE "measured on cpu: [0-9.]+ s per step" "$out.tmp" | grep -oE "[0-9.]+ s" | cut -d' ' -f1)
python3 - "$ar" "$step" >> "$out.tmp" <<'PY'
import sys
ar, step = float(sys.argv[1]), float(sys.argv[2])
print(f"\nOn this machine a paper-vgg16 gradient all-reduce between 2 processes takes {ar:.2f} s and one")
print(f"training step of 2 images {step:.2f} s: communication / compute = {ar / step:.2f}. On CPUs the")
print("compute is so slow that data parallelism over Gloo costs little per step; on GPUs the ratio")
print("is the model above (compute shrinks ~1000x, the gradient does not).")
PY
mv "$out.tmp" "$out"
echo "cost-tables: wrote $out"
