#!/usr/bin/env bash
# Small runs whose weights must stay bit-identical across a refactoring (same machine, same
# thread count): prints the sha256 of each run's checkpoints/last.safetensors. Compare the output
# of two binaries, e.g. one built before a change and one after:
#   scripts/bitcheck.sh /tmp/colorproxy-before /tmp/before > before.sha
#   scripts/bitcheck.sh target/release/colorproxy /tmp/after > after.sha && diff before.sha after.sha
# Needs data/realseg-seen (tools/make_realseg.py --val-objects seen) and ../shared/data/photos.
# usage: scripts/bitcheck.sh BINARY OUTDIR
set -euo pipefail
B=$(realpath "$1"); O=$2
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rm -rf "$O"; mkdir -p "$O"
"$B" pretrain --preset cpu-small --data ../shared/data/photos/train --iterations 40 --out "$O/pre" --seed 0 --device cpu > "$O/pre.log" 2>&1
CK=$O/pre/checkpoints/last.safetensors
"$B" finetune seg --data data/realseg-seen --init "$CK" --max-iterations 40 --out "$O/seg" --device cpu > "$O/seg.log" 2>&1
"$B" finetune cls --data data/realseg-seen --init random --max-iterations 40 --out "$O/cls" --device cpu > "$O/cls.log" 2>&1
"$B" demo --quick --seed 0 --out "$O/demo" > "$O/demo.log" 2>&1
(cd "$O" && sha256sum pre/checkpoints/last.safetensors seg/checkpoints/last.safetensors \
  cls/checkpoints/last.safetensors demo/*/checkpoints/last.safetensors)
