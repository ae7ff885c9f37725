#!/usr/bin/env bash
# The same 2-rank pretraining job under PyTorch's real torchrun and under `colorproxy launch`:
# the weights must be byte-identical. Needs the `scripts/setup.sh --bench` environment (torchrun
# comes with the full torch wheel) and a release build.
#   scripts/torchrun-check.sh [ITERATIONS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
its="${1:-20}"
bin="$root/target/release/colorproxy"
torchrun="$root/.venv/bin/torchrun"
[[ -x "$torchrun" ]] || { echo "torchrun-check: no $torchrun (run scripts/setup.sh --bench)" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "torchrun-check: build first (cargo build --release)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" data generate --out "$work/scenes" --images 48 --seed 7 > /dev/null
data="$work/scenes/unlabelled"
common=(pretrain --preset cpu-small --iterations "$its" --data "$data")
echo "torchrun-check: torchrun --no-python --nproc-per-node 2 colorproxy ${common[*]}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
OMP_NUM_THREADS=1 "$torchrun" --no-python --nproc-per-node 2 --master-addr 127.0.0.1 --master-port "$port" \
  "$bin" "${common[@]}" --out "$work/torchrun" > "$work/torchrun.log" 2>&1 || { cat "$work/torchrun.log"; exit 1; }
echo "torchrun-check: colorproxy launch --nproc 2 -- ${common[*]}"
"$bin" launch --nproc 2 -- "${common[@]}" --out "$work/launch" > "$work/launch.log" 2>&1 || { cat "$work/launch.log"; exit 1; }
a="$(sha256sum < "$work/torchrun/checkpoints/last.safetensors" | cut -d' ' -f1)"
b="$(sha256sum < "$work/launch/checkpoints/last.safetensors" | cut -d' ' -f1)"
grep -h "weights identical" "$work/torchrun.log" | tail -1
echo "torchrun: $a"
echo "launch:   $b"
if [[ "$a" == "$b" ]]; then echo "torchrun-check: identical weights"; else echo "torchrun-check: DIFFERENT weights" >&2; exit 1; fi
