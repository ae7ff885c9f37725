#!/usr/bin/env bash
# The probes' table (issue 31): linear and kNN probes of every layer of the colorization-pretrained
# network vs the same network untrained (seeds 0-4), on the demo scenes and on the real
# photographs with seen and with unseen objects. It probes the pretrainings of the Table 1
# recipes, so run those first (each reuses what is finished):
#   colorproxy experiment run experiments/table1-demo.toml --out runs/table1-demo
#   colorproxy experiment run experiments/table1-realseg.toml --out runs/table1-realseg
#   colorproxy experiment run experiments/table1-realseg.toml --out runs/table1-realseg-unseen \
#       --data realseg=data/realseg
# (data: .venv/bin/python tools/make_realseg.py --out data/realseg-seen --val-objects seen, and
#  --out data/realseg --val-objects unseen). Writes docs/experiments/probes/{tables.md,results.csv}.
# Sets whose pretraining is missing are left out (said on stderr). About 1 s per probe.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/experiments/probes}
sets=()
add() { # NAME RUNS_DIR DATA SIZE
    local ck
    ck=$(ls -d "$2"/runs/pretrain-colorization-*/checkpoints/last.safetensors 2>/dev/null | head -1 || true)
    if [[ -z "$ck" || ! -d "$3" ]]; then
        echo "probes: no pretraining under $2 or no data $3: $1 left out" >&2
        return
    fi
    sets+=(--set "$1=$ck,$3,$4")
}
add demo runs/table1-demo runs/table1-demo/data/demo/voc 96
add "real photographs, seen objects" runs/table1-realseg data/realseg-seen 96
add "real photographs, unseen objects" runs/table1-realseg-unseen data/realseg 96
[[ ${#sets[@]} -gt 0 ]] || { echo "probes: nothing to probe (run the recipes above first)" >&2; exit 1; }
python3 tools/probe_table.py --out "$out" "${sets[@]}"
