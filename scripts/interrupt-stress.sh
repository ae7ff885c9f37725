#!/usr/bin/env bash
# SIGINT/SIGTERM stress: pretraining runs interrupted at random moments (start-up, training,
# checkpoint writing), each then resumed with the same command plus `--resume auto` until it
# finishes; every finished run's weights must be bit-identical to an uninterrupted run's, and
# every interrupted process must exit with 130 (SIGINT) or 143 (SIGTERM), or 0 if it had already
# finished (not counted as an interrupt). Any other status (a crash: 134 abort, 139 segfault) fails the script.
#
#   scripts/interrupt-stress.sh [INTERRUPTS] [SEED]      (default 200 interrupts, seed 1)
#
# Environment: COLORPROXY_BIN (default target/release/colorproxy), MALLOC_CHECK_ / MALLOC_PERTURB_
# are passed through (set MALLOC_CHECK_=3 to make glibc abort on any heap inconsistency).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n="${1:-200}"
seed="${2:-1}"
bin="${COLORPROXY_BIN:-$root/target/release/colorproxy}"
[[ -x "$bin" ]] || { echo "interrupt-stress: build first (cargo build --release)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
RANDOM="$seed"
export OMP_NUM_THREADS=1
"$bin" data generate --out "$work/scenes" --images 48 --seed 3 > /dev/null
cmd=(pretrain --preset cpu-small --data "$work/scenes/unlabelled" --iterations 24
     --set checkpoint_every=4 --set log_every=4 --workers 1 --threads 1 --device cpu)

t0=$(date +%s.%N)
"$bin" "${cmd[@]}" --out "$work/reference" > "$work/reference.log" 2>&1 \
  || { cat "$work/reference.log"; exit 1; }
ref_ms=$(python3 -c "import time; print(int((time.time() - $t0) * 1000))")
ref_sum="$(sha256sum < "$work/reference/checkpoints/last.safetensors" | cut -d' ' -f1)"
echo "interrupt-stress: reference run ${ref_ms} ms; signals at random moments in [0, ${ref_ms}] ms after start"

declare -A codes=()
interrupts=0 runs=0 sent=0
while (( interrupts < n )); do
  runs=$((runs + 1))
  out="$work/run-$runs"
  resume=()
  # 1 to 3 interrupts per run, then the rest of the run uninterrupted.
  k=$(( 1 + RANDOM % 3 ))
  for (( j = 0; j < k && interrupts < n; j++ )); do
    sig=$([[ $((RANDOM % 2)) == 0 ]] && echo INT || echo TERM)
    delay_ms=$(( (RANDOM * 32768 + RANDOM) % (ref_ms + 1) ))
    "$bin" "${cmd[@]}" --out "$out" "${resume[@]}" > "$out.log" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    kill -s "$sig" "$pid" 2>/dev/null || true
    set +e; wait "$pid"; rc=$?; set -e
    sent=$((sent + 1))
    # A run that had finished before its signal came is not an interrupt.
    [[ $rc != 0 ]] && interrupts=$((interrupts + 1))
    codes[$rc]=$(( ${codes[$rc]:-0} + 1 ))
    want=$([[ $sig == INT ]] && echo 130 || echo 143)
    if [[ $rc != "$want" && $rc != 0 ]]; then
      echo "interrupt-stress: run $runs, SIG$sig after ${delay_ms} ms: exit $rc (expected $want or 0)" >&2
      tail -20 "$out.log" >&2
      exit 1
    fi
    resume=(--resume auto)
  done
  "$bin" "${cmd[@]}" --out "$out" --resume auto > "$out.final.log" 2>&1 \
    || { echo "interrupt-stress: resuming run $runs failed" >&2; cat "$out.final.log" >&2; exit 1; }
  sum="$(sha256sum < "$out/checkpoints/last.safetensors" | cut -d' ' -f1)"
  if [[ "$sum" != "$ref_sum" ]]; then
    echo "interrupt-stress: run $runs resumed to different weights than the uninterrupted run" >&2
    exit 1
  fi
  rm -rf "$out" "$out.log" "$out.final.log"
done
summary=""
for c in $(printf '%s\n' "${!codes[@]}" | sort -n); do summary+=" exit $c: ${codes[$c]};"; done
echo "interrupt-stress: $interrupts interrupts ($sent signals) over $runs runs:$summary every run resumed bit-identical"
