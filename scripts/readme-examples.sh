#!/usr/bin/env bash
# The README's "On your own data" blocks, run on this machine's CPUs exactly as the README writes
# them except: `--device cpu`; the `cpu-small` pretraining preset instead of `gpu-vgg16` and
# `seg-cpu`/`cls-cpu` instead of `seg-paper`/`cls-paper`; `--iterations 20` on pretrain and
# finetune; generated data instead of /data/photos and /data/VOCdevkit/MYSET.
#   (a) pretrain: the --dry-run plan, training with --resume auto, the same line again (must say
#       it is done), export as a torchvision state dict (of a full-width VGG-16 trained for 4
#       iterations, tools/torchvision-check/vgg16.toml: the export refuses cpu-small's 1/8
#       width), and the README's Python lines when .venv has torchvision (setup.sh --bench);
#   (b) fine-tune seg and cls on a VOC-layout set with its own class list (--classes), eval, the
#       seg line again (resume), and the random-init baseline;
#   (c) the sbatch script's srun line as 2 processes started by hand with the variables Slurm
#       sets (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE, no
#       OMP_NUM_THREADS; MASTER_ADDR/MASTER_PORT as the script exports them), then again as a
#       requeued job would (must say it is done);
#   (d) the launch and torchrun lines with 2 processes.
#
#   scripts/readme-examples.sh [WORK_DIR]
# WORK_DIR (kept) holds the data, runs/ and logs; default: a temporary folder, removed at exit.
# COLORPROXY_BIN: the binary (default target/release/colorproxy). A few minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BIN=${COLORPROXY_BIN:-target/release/colorproxy}
[[ -x "$BIN" ]] || { echo "readme-examples: no binary at $BIN (cargo build --release)" >&2; exit 1; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
if [[ -n "${1:-}" ]]; then
  work="$1"; mkdir -p "$work"
else
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
fi
work="$(cd "$work" && pwd)"
cd "$work"
mkdir -p logs
export CI=1
t_all=$(date +%s)
say() { echo "readme-examples: $*"; }
fail() { echo "readme-examples: $*" >&2; exit 1; }
run() { # LOG CMD...: run, log, show the log's tail on failure
  local log=$1; shift
  if ! "$@" > "logs/$log" 2>&1; then tail -40 "logs/$log" >&2; fail "failed: $* (log: $work/logs/$log)"; fi
}

# Data: 64 generated scenes (gen/unlabelled) and a VOC-style set (gen/voc). The set's
# class_names.txt lists VOC's 20 classes but its scenes hold only the 5 of the class folders
# (aeroplane ... bottle, mask indices 1-5): the "own" set keeps those 5, in mask-index order, and
# drops the other classes' ImageSets/Main lists (a list for a class not in --classes is an error).
run generate.log "$BIN" data generate --out gen --images 64 --seed 0
{ grep -vx background gen/voc/class_names.txt | grep -Fx -f <(ls gen/folders/train) || true; } > own-classes.txt
[[ $(wc -l < own-classes.txt) -ge 2 ]] || fail "expected the generated classes in own-classes.txt"
rm -rf gen/myset && cp -r gen/voc gen/myset && rm -f gen/myset/class_names.txt
for f in gen/myset/ImageSets/Main/*_*.txt; do
  c=$(basename "$f"); c=${c%_*}
  grep -qx "$c" own-classes.txt || rm "$f"
done
say "data: $(ls gen/unlabelled | wc -l) photos, VOC-style set with classes $(tr '\n' ' ' < own-classes.txt)"

# (a) Pretrain on a folder of photos.
t0=$(date +%s)
run a-dry-run.log "$BIN" pretrain --preset cpu-small --data gen/unlabelled --out runs/vgg16 --device cpu --dry-run
[[ ! -e runs/vgg16/checkpoints ]] || fail "(a) --dry-run wrote checkpoints"
run a-pretrain.log "$BIN" pretrain --preset cpu-small --data gen/unlabelled --out runs/vgg16 --device cpu --resume auto --iterations 20
[[ -f runs/vgg16/checkpoints/last.safetensors && -f runs/vgg16/config.toml && -f runs/vgg16/metrics.jsonl ]] \
  || fail "(a) runs/vgg16 lacks last.safetensors, config.toml or metrics.jsonl"
run a-pretrain-again.log "$BIN" pretrain --preset cpu-small --data gen/unlabelled --out runs/vgg16 --device cpu --resume auto --iterations 20
grep -q "done at iteration 20" logs/a-pretrain-again.log || { cat logs/a-pretrain-again.log >&2; fail "(a) rerun: not done at 20"; }
# The export needs a standard width: a full-width VGG-16, 4 iterations (tools/torchvision-check).
run a-pretrain-full.log "$BIN" pretrain --config "$root/tools/torchvision-check/vgg16.toml" --data gen/unlabelled --out runs/vgg16-full --device cpu --resume auto
run a-export.log "$BIN" export --checkpoint runs/vgg16-full/checkpoints/last.safetensors --format torchvision --color --out vgg16-colorization.safetensors
[[ -s vgg16-colorization.safetensors ]] || fail "(a) no vgg16-colorization.safetensors"
py="$root/.venv/bin/python"
if [[ -x "$py" ]] && "$py" -c "import torchvision, safetensors" 2>/dev/null; then
  cp gen/unlabelled/000000.jpg photo.jpg
  cat > load.py <<'EOF'
import torchvision
from safetensors.torch import load_file
from torchvision.io import read_image, ImageReadMode
model = torchvision.models.vgg16()
model.load_state_dict(load_file("vgg16-colorization.safetensors"), strict=True)
img = read_image("photo.jpg", ImageReadMode.RGB).float()        # [3, H, W], 0..255
gray = img.sum(0, keepdim=True) / 765 - 0.4488                 # colorproxy's input, not ImageNet's
features = model.features(gray.expand(3, -1, -1)[None])         # conv5_3 after pooling
print("features", tuple(features.shape))
EOF
  run a-python.log "$py" load.py
  say "(a) torchvision loaded the export: $(tail -1 logs/a-python.log)"
else
  say "(a) no torchvision in .venv (scripts/setup.sh --bench installs it): Python lines not run"
fi
rm -f vgg16-colorization.safetensors
rm -rf runs/vgg16-full
say "(a) pretrain, resume, export ok in $(( $(date +%s) - t0 )) s"

# (b) Fine-tune on your own classes (VOC format).
t0=$(date +%s)
DATA=gen/myset
INIT=runs/vgg16/checkpoints/last.safetensors
cp own-classes.txt classes.txt   # the README writes its own list here with printf
run b-seg.log "$BIN" finetune seg --data $DATA --classes classes.txt --init $INIT --preset seg-cpu --out runs/seg --device cpu --resume auto --iterations 20
run b-seg-eval.log "$BIN" eval seg --checkpoint runs/seg/checkpoints/last.safetensors --data $DATA --split val --json --report runs/seg/eval --device cpu
run b-cls.log "$BIN" finetune cls --data $DATA --classes classes.txt --init $INIT --preset cls-cpu --out runs/cls --device cpu --resume auto --iterations 20
run b-cls-eval.log "$BIN" eval cls --checkpoint runs/cls/checkpoints/last.safetensors --data $DATA --split val --json --report runs/cls/eval --device cpu
for r in seg cls; do
  for f in results.json results.md report.html config.toml checkpoints/last.safetensors; do
    [[ -e "runs/$r/$f" ]] || fail "(b) runs/$r/$f missing"
  done
  [[ -e "runs/$r/eval/report.html" ]] || fail "(b) runs/$r/eval/report.html missing"
done
run b-seg-again.log "$BIN" finetune seg --data $DATA --classes classes.txt --init $INIT --preset seg-cpu --out runs/seg --device cpu --resume auto --iterations 20
run b-seg-random.log "$BIN" finetune seg --data $DATA --classes classes.txt --init random --preset seg-cpu --out runs/seg-random --device cpu --resume auto --iterations 20
say "(b) fine-tuning and eval ok in $(( $(date +%s) - t0 )) s"

# (c) 2 processes srun-style (the sbatch script's srun line, cpu-small, 2 tasks on this machine).
t0=$(date +%s)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 29500)
export MASTER_ADDR=127.0.0.1 MASTER_PORT=$port
srun_like() { # LOG_PREFIX: start 2 tasks as srun would, wait for both
  local pids=() r
  for r in 0 1; do
    # As srun starts them: no OMP_NUM_THREADS (the sbatch script sets none; each rank takes its
    # share of the CPUs), Slurm's tasks per node.
    env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u OMP_NUM_THREADS SLURM_PROCID=$r SLURM_NTASKS=2 SLURM_LOCALID=$r \
      SLURM_STEP_TASKS_PER_NODE=2 \
      "$BIN" pretrain --preset cpu-small --data gen/unlabelled --out runs/vgg16-8gpu --device cpu --resume auto --iterations 20 \
      > "logs/$1-$r.log" 2>&1 &
    pids+=($!)
  done
  for r in 0 1; do
    wait "${pids[$r]}" || { tail -30 "logs/$1-$r.log" >&2; fail "(c) task $r failed (log: $work/logs/$1-$r.log)"; }
  done
}
srun_like c-srun
got=$(grep -E '^(world_size|total_batch) =' runs/vgg16-8gpu/config.toml | tr '\n' ' ')
[[ "$got" == *"world_size = 2 "* && "$got" == *"total_batch = 32 "* ]] || fail "(c) config.toml says: $got"
grep -m1 -i "learning rate" logs/c-srun-0.log || true
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 29501)
export MASTER_PORT=$port
srun_like c-requeue
grep -q "done at iteration 20" logs/c-requeue-0.log || { cat logs/c-requeue-0.log >&2; fail "(c) requeued job: not done at 20"; }
grep -q "rank 0: 1 intra-op thread" logs/c-srun-0.log || { cat logs/c-srun-0.log >&2; fail "(c) rank 0 did not take its share of the CPUs"; }
say "(c) srun-style 2 tasks ($got) and requeue ok in $(( $(date +%s) - t0 )) s"

# (d) One machine: the README's launch and torchrun lines (2 processes; torchrun from .venv when
# setup.sh --bench or the Python package installed it).
t0=$(date +%s)
run d-launch.log "$BIN" launch --nproc 2 -- pretrain --preset cpu-small --data gen/unlabelled --out runs/launch --device cpu --resume auto --iterations 20
grep -q "done at iteration 20" logs/d-launch.log || fail "(d) launch: not done at 20"
torchrun="$root/.venv/bin/torchrun"
if [[ -x "$torchrun" ]]; then
  run d-torchrun.log "$torchrun" --no-python --nproc-per-node 2 "$BIN" pretrain --preset cpu-small --data gen/unlabelled --out runs/torchrun --device cpu --resume auto --iterations 20
  grep -q "done at iteration 20" logs/d-torchrun.log || fail "(d) torchrun: not done at 20"
  say "(d) launch and torchrun ok in $(( $(date +%s) - t0 )) s"
else
  say "(d) launch ok in $(( $(date +%s) - t0 )) s; no torchrun in .venv (scripts/setup.sh --bench installs it): torchrun line not run"
fi

say "all README blocks passed in $(( $(date +%s) - t_all )) s (work folder: $work)"
