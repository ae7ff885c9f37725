#!/usr/bin/env bash
# The README's scale-out examples, run on this machine's CPUs with Gloo exactly as written except
# `--device cpu` and the `cpu-small` preset: `launch --nproc 3`, `torchrun --nproc-per-node 4`
# (`launch --nproc 4` where torchrun is absent), an `srun`-style start of 4 processes with the
# Slurm variables set by hand, and 16 ranks for 2 iterations. Each must succeed and leave one run
# folder whose config.toml records its world size and total batch; each is then rerun as a
# requeued job would (the same command, `--resume auto`) and must say it is done.
#
#   scripts/scale-out-check.sh [DATA] [ITERATIONS]
# DATA: unlabelled images (default: 48 generated scenes); ITERATIONS: passed as --iterations to
# the first three examples (default: none, the preset's 600, as the README writes them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${COLORPROXY_BIN:-$root/target/release/colorproxy}"
[[ -x "$bin" ]] || { echo "scale-out-check: build first (cargo build --release)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CI=1
data="${1:-}"
if [[ -z "$data" ]]; then
  "$bin" data generate --out "$work/scenes" --images 48 --seed 7 > /dev/null
  data="$work/scenes/unlabelled"
fi
its=()
[[ -n "${2:-}" ]] && its=(--iterations "$2")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
t_all=$(date +%s)

check() { # NAME RUN_DIR WORLD LOG
  local name=$1 run=$2 world=$3 log=$4
  [[ -f "$run/checkpoints/last.safetensors" ]] || { echo "$name: no checkpoint in $run" >&2; tail -30 "$log" >&2; exit 1; }
  local got
  got=$(grep -E '^(world_size|total_batch) =' "$run/config.toml" | tr '\n' ' ')
  [[ "$got" == *"world_size = $world "* ]] || { echo "$name: config.toml says $got" >&2; exit 1; }
  echo "scale-out-check: $name ok ($got; $(grep -c . "$run/metrics.jsonl") metrics lines)"
}

run_timed() { # NAME LOG CMD...
  local name=$1 log=$2; shift 2
  local t0; t0=$(date +%s)
  if ! "$@" > "$log" 2>&1; then echo "scale-out-check: $name failed" >&2; tail -40 "$log" >&2; exit 1; fi
  echo "scale-out-check: $name took $(( $(date +%s) - t0 )) s"
}

# 1. colorproxy launch --nproc 3 (the README's `launch --nproc 8` line, 3 ranks).
cmd=(pretrain --preset cpu-small --data "$data" --out "$work/launch3" --device cpu --resume auto "${its[@]}")
run_timed "launch --nproc 3" "$work/launch3.log" "$bin" launch --nproc 3 -- "${cmd[@]}"
check "launch --nproc 3" "$work/launch3" 3 "$work/launch3.log"
"$bin" launch --nproc 3 -- "${cmd[@]}" > "$work/launch3-again.log" 2>&1
grep -q "done at iteration" "$work/launch3-again.log" || { echo "launch 3 requeue: not done" >&2; cat "$work/launch3-again.log" >&2; exit 1; }

# 2. torchrun --no-python --nproc-per-node 4 (PyTorch's launcher, from scripts/setup.sh --bench).
cmd=(pretrain --preset cpu-small --data "$data" --out "$work/torchrun4" --device cpu --resume auto "${its[@]}")
torchrun="$root/.venv/bin/torchrun"
if [[ -x "$torchrun" ]] && "$root/.venv/bin/python" -c "import torch" 2>/dev/null; then
  run_timed "torchrun --nproc-per-node 4" "$work/torchrun4.log" \
    "$torchrun" --no-python --nproc-per-node 4 --master-addr 127.0.0.1 --master-port "$(free_port)" "$bin" "${cmd[@]}"
  name="torchrun --nproc-per-node 4"
else
  echo "scale-out-check: no torchrun (scripts/setup.sh --bench installs it): colorproxy launch --nproc 4 instead"
  run_timed "launch --nproc 4" "$work/torchrun4.log" "$bin" launch --nproc 4 -- "${cmd[@]}"
  name="launch --nproc 4"
fi
check "$name" "$work/torchrun4" 4 "$work/torchrun4.log"

# 3. srun-style: 4 processes started by hand with the variables Slurm sets (srun gives each task
#    SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the sbatch script exports MASTER_ADDR/PORT).
cmd=(pretrain --preset cpu-small --data "$data" --out "$work/srun4" --device cpu --resume auto "${its[@]}")
port=$(free_port)
t0=$(date +%s)
pids=()
for r in 0 1 2 3; do
  env -u RANK -u WORLD_SIZE -u LOCAL_RANK SLURM_PROCID=$r SLURM_NTASKS=4 SLURM_LOCALID=$r \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
    "$bin" "${cmd[@]}" > "$work/srun4-$r.log" 2>&1 &
  pids+=($!)
done
for i in 0 1 2 3; do
  wait "${pids[$i]}" || { echo "scale-out-check: srun-style rank $i failed" >&2; tail -30 "$work/srun4-$i.log" >&2; exit 1; }
done
echo "scale-out-check: srun-style 4 tasks took $(( $(date +%s) - t0 )) s"
check "srun-style 4 tasks" "$work/srun4" 4 "$work/srun4-0.log"

# 4. 16 ranks, 2 iterations.
cmd=(pretrain --preset cpu-small --data "$data" --out "$work/ranks16" --device cpu --resume auto --iterations 2)
run_timed "launch --nproc 16 (2 iterations)" "$work/ranks16.log" "$bin" launch --nproc 16 -- "${cmd[@]}"
check "16 ranks" "$work/ranks16" 16 "$work/ranks16.log"

echo "scale-out-check: all examples passed in $(( $(date +%s) - t_all )) s"
