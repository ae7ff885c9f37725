#!/usr/bin/env bash
# Builds the CUDA-enabled colorproxy (feature `cuda`: force-links libtorch_cuda, see
# build/libtorch_link.rs) into dist/colorproxy-cuda, stripped, and checks that it links
# libtorch_cuda. Linking needs no NVIDIA libraries; running needs a libtorch 2.11 with CUDA
# (e.g. PyTorch 2.11's site-packages/torch/lib on LD_LIBRARY_PATH) and a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --profile dist --features cuda -p colorproxy --target-dir target/cuda
mkdir -p dist
cp target/cuda/dist/colorproxy dist/colorproxy-cuda
if ! readelf -d dist/colorproxy-cuda | grep -q 'libtorch_cuda.so'; then
  echo "build-cuda: dist/colorproxy-cuda does not link libtorch_cuda" >&2
  exit 1
fi
ls -la dist/colorproxy-cuda
readelf -d dist/colorproxy-cuda | grep NEEDED
