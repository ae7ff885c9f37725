#!/usr/bin/env bash
# Builds the CUDA-enabled colorproxy (feature `cuda`: force-links libtorch_cuda, see
# build/libtorch_link.rs, and compiles the NCCL process group of crates/colorproxy-dist) into
# dist/colorproxy-cuda, stripped, and checks that it links libtorch_cuda. Linking needs no NVIDIA libraries; running needs a libtorch 2.11 with CUDA
# (e.g. PyTorch 2.11's site-packages/torch/lib on LD_LIBRARY_PATH) and a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
# Data-parallel GPU training compiles c10d's ProcessGroupNCCL path (crates/colorproxy-dist): it
# needs the CUDA and NCCL headers of torch's NVIDIA wheels (scripts/setup.sh --bench installs
# them: cudart, cublas, cusparse, cusolver, nvidia-nccl-cu13 2.28.9, the NCCL that libtorch_cuda
# was built with) plus two header-only wheels torch does not depend on. Already have them?
# Point CUDA_INCLUDE / NCCL_INCLUDE (path lists) at their include folders instead.
if [[ -z "${CUDA_INCLUDE:-}" ]]; then
  scripts/setup.sh --bench
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps \
    "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85"
fi
cargo build --profile dist --features cuda -p colorproxy --target-dir target/cuda
mkdir -p dist
cp target/cuda/dist/colorproxy dist/colorproxy-cuda
if ! readelf -d dist/colorproxy-cuda | grep -q 'libtorch_cuda.so'; then
  echo "build-cuda: dist/colorproxy-cuda does not link libtorch_cuda" >&2
  exit 1
fi
ls -la dist/colorproxy-cuda
readelf -d dist/colorproxy-cuda | grep NEEDED
