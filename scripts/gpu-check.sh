#!/usr/bin/env bash
# One-shot GPU check of colorproxy against PyTorch on the same card (issue: CUDA training path).
#
#   scripts/gpu-check.sh LOG_DIR
#
# Runs on a GPU machine with PyTorch 2.11 (default /opt/torch/.venv) and no Rust toolchain: it uses
# the CUDA build dist/colorproxy-cuda (scripts/build-cuda.sh) and JPEGs in dist/photos (copy a few
# dozen photos there before carrying dist/ over). Steps:
#   1. card and library versions;
#   2. one paper-vgg16 step on CUDA vs the same step on CPU, float32, TF32 off (loss and every
#      gradient within 1e-3 relative error);
#   3. 50 timed steps of paper-vgg16 (batch 8, 352x352, sparse hypercolumns) with colorproxy and the
#      PyTorch reference (bench/pretrain_ref.py) on the same card: in-memory batches (compute only)
#      and end to end from the JPEGs; the data pipeline's images/s per CPU core;
#   4. a last line: vgg16-352 b8: colorproxy X img/s, pytorch Y img/s, ratio X/Y
# Full logs go to LOG_DIR. GPU_CHECK_DEVICE=cpu runs the same sequence on the CPU with the
# cpu-small preset (to try the script on a machine without a GPU).
set -uo pipefail
log="${1:?usage: scripts/gpu-check.sh LOG_DIR}"
mkdir -p "$log"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
device="${GPU_CHECK_DEVICE:-cuda}"
if [[ "$device" == cpu ]]; then preset=cpu-small; steps=10; warmup=2; label="cpu-small"
else preset=paper-vgg16; steps=50; warmup=10; label="vgg16-352 b8"; fi
py="${PYTHON:-}"
for c in "$py" /opt/torch/.venv/bin/python "$root/.venv/bin/python" python3; do
  [[ -n "$c" ]] && "$c" -c "import torch" 2>/dev/null && { py="$c"; break; }
done
bin="${COLORPROXY_BIN:-$root/dist/colorproxy-cuda}"
[[ -x "$bin" ]] || bin="$root/target/release/colorproxy"
images="${GPU_CHECK_IMAGES:-$root/dist/photos}"
[[ -d "$images" ]] || images="$root/../shared/data/photos/train"
torch_lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cores="$(nproc)"
echo "gpu-check: binary $bin, python $py, images $images, device $device, $cores cores" | tee "$log/summary.txt"

# 1. Versions.
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
  "$bin" --version; } 2>&1 | tee "$log/versions.txt"

# 2. CPU vs device parity of one step.
"$bin" bench parity --preset "$preset" --images "$images" --device "$device" --json \
  > "$log/parity.json" 2> "$log/parity.err"
echo "parity (rc $?): $(cat "$log/parity.json")" | tee -a "$log/summary.txt"

# 3. Throughput: colorproxy and PyTorch on the same device, and the data pipeline per core.
"$bin" bench data --images "$images" --count 200 --size "$([[ $device == cpu ]] && echo 64 || echo 352)" \
  $([[ $device == cpu ]] && echo "--short-min 72 --short-max 96 --points 32 --border 8") \
  --no-reference --json > "$log/data.json" 2> "$log/data.err"
echo "pipeline (1 thread = per core): $(cat "$log/data.json")" | tee -a "$log/summary.txt"
threads=$(( cores < 2 ? 1 : 2 )); workers=$(( cores > 4 ? cores - 4 : 2 ))
[[ "$device" == cpu ]] && workers=2
"$bin" bench pretrain --preset "$preset" --images "$images" --device "$device" --steps "$steps" \
  --warmup "$warmup" --threads "$threads" --workers "$workers" --python "$py" --json \
  > "$log/pretrain.json" 2> "$log/pretrain.err"
echo "pretrain (rc $?): $(cat "$log/pretrain.json")" | tee -a "$log/summary.txt"

# 4. The last line.
"$py" - "$log/pretrain.json" "$label" <<'PY' | tee -a "$log/summary.txt"
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"{sys.argv[2]}: no result ({e})"); sys.exit(0)
f = lambda v: "n/a" if v is None else f"{v:.1f}"
print(f"{sys.argv[2]} compute only: colorproxy {f(r['colorproxy_compute_images_per_s'])} img/s, "
      f"pytorch {f(r['pytorch_compute_images_per_s'])} img/s, ratio {f(r['compute_ratio'] and 100 * r['compute_ratio'])}%")
e = r.get("e2e_ratio")
print(f"{sys.argv[2]}: colorproxy {f(r['colorproxy_e2e_images_per_s'])} img/s, "
      f"pytorch {f(r['pytorch_e2e_images_per_s'])} img/s, ratio {'n/a' if e is None else f'{e:.3f}'}")
PY

# 5. The GPU preset's real step (memory fits, time per step): calibrates docs/costs.md, whose GPU
#    figures are estimates until this runs.
gpu_preset=$([[ $device == cpu ]] && echo cpu-small || echo gpu-vgg16)
"$bin" pretrain --preset "$gpu_preset" --data "$images" --out "$log/unused-run" --device "$device" --dry-run \
  > "$log/dry-run.txt" 2>&1
echo "dry run of $gpu_preset (rc $?): $(grep -E 'measured on|estimate on' "$log/dry-run.txt" | tr -s ' ' | tr '\n' ' ')" \
  | tee -a "$log/summary.txt"

# 6. Several GPUs: NCCL all-reduce bandwidth and a short data-parallel pretraining with the ranks'
#    weights compared at every checkpoint (skipped with fewer than 2 GPUs).
ngpu=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -c GPU || echo 0)
if [[ "$device" == cuda && "$ngpu" -ge 2 ]]; then
  "$bin" bench allreduce --nproc "$ngpu" --device cuda > "$log/allreduce.txt" 2>&1
  echo "nccl all-reduce ($ngpu GPUs, rc $?): $(grep 'all-reduce of' "$log/allreduce.txt")" | tee -a "$log/summary.txt"
  "$bin" launch --nproc "$ngpu" -- pretrain --preset cpu-small --data "$images" --out "$log/multi-gpu-run" \
    --device cuda --iterations 20 --set checkpoint_every=10 --resume auto > "$log/multi-gpu.txt" 2>&1
  echo "multi-GPU pretraining (rc $?): $(grep -c 'weights identical' "$log/multi-gpu.txt") checkpoints with identical weights on all ranks" \
    | tee -a "$log/summary.txt"
else
  echo "multi-GPU: skipped ($ngpu GPU(s))" | tee -a "$log/summary.txt"
fi
