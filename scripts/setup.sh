#!/usr/bin/env bash
# Idempotent set-up: provides libtorch 2.11.0 from the PyPI `torch==2.11.0` wheel in a project-local
# virtual environment (.venv), plus only the two small CUDA wheels that libtorch_cpu.so needs at run
# time (CUDA runtime and CUPTI), and the Python packages of the reference benchmarks.
#
# Users who already have libtorch 2.11 (e.g. a GPU machine with PyTorch 2.11) skip this script and
# point COLORPROXY_LIBTORCH at it, e.g.
#   COLORPROXY_LIBTORCH=/opt/torch/.venv/lib/python3.12/site-packages/torch scripts/setup.sh
# which only writes the .libtorch link to that directory.
#
# scripts/setup.sh --bench also installs what `import torch` needs (the PyTorch reference benchmarks),
# torchvision and safetensors (the torchvision export check in tools/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -n "${COLORPROXY_LIBTORCH:-}" ]]; then
  [[ -f "$COLORPROXY_LIBTORCH/lib/libtorch_cpu.so" ]] || {
    echo "setup: COLORPROXY_LIBTORCH=$COLORPROXY_LIBTORCH has no lib/libtorch_cpu.so" >&2; exit 1; }
  ln -sfn "$COLORPROXY_LIBTORCH" .libtorch
  echo "setup: using libtorch at $COLORPROXY_LIBTORCH"
  exit 0
fi

PY="${PYTHON:-python3}"
stamp=".venv/.colorproxy-setup-v1"
if [[ ! -f "$stamp" ]]; then
  echo "setup: creating .venv with torch 2.11.0 (libtorch), CUDA runtime + CUPTI wheels, numpy, Pillow"
  "$PY" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --no-warn-conflicts --no-deps \
    "torch==2.11.0" "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*"
  # What `import torch` needs on CPU (the reference benchmarks), and the references' image stack.
  .venv/bin/pip install --quiet --disable-pip-version-check --no-warn-conflicts \
    "typing-extensions>=4.10" "sympy>=1.13.3" filelock "networkx>=2.5.1" jinja2 "fsspec>=0.8.5" \
    "setuptools<82" numpy pillow
  touch "$stamp"
fi
if [[ "${1:-}" == "--bench" && ! -f .venv/.colorproxy-bench-v2 ]]; then
  # The PyTorch reference of `colorproxy bench pretrain` imports torch, which loads libtorch_cuda and
  # so needs all of torch's NVIDIA wheels (about 3 GB), even on CPU. torchvision and safetensors:
  # tools/check_torchvision_export.py and tools/torchvision_keys.py.
  echo "setup: installing torch 2.11.0 with its dependencies, torchvision 0.26.0 and safetensors (reference tools)"
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.11.0" "torchvision==0.26.0" "safetensors>=0.4"
  touch .venv/.colorproxy-bench-v2
fi
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ln -sfn "$site/torch" .libtorch
echo "setup: libtorch at $root/.libtorch -> $site/torch"
