#!/usr/bin/env bash
# Sets up libtorch (scripts/setup.sh, idempotent) and runs the whole test suite: the Rust workspace
# (cargo test), then the Python package built into .venv and its pytest suite (python/tests).
# Tests that use the real photos of ../shared/data read its path from COLORPROXY_SHARED_DATA.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
if [[ -z "${COLORPROXY_SHARED_DATA:-}" && -d "$root/../shared/data" ]]; then
  export COLORPROXY_SHARED_DATA="$root/../shared/data"
fi
# Doctests are linked by rustdoc, without the build script's rpath: they find libtorch (and the
# CUDA runtime/CUPTI wheels libtorch_cpu loads) through LD_LIBRARY_PATH.
lt="$(cd "$root/.libtorch" && pwd -P)"
for d in "$lt/lib" "$lt/../nvidia/cu13/lib" "$lt/../nvidia/cuda_runtime/lib" "$lt/../nvidia/cuda_cupti/lib"; do
  [[ -d "$d" ]] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
# Two cores: keep libtorch's own thread pool from oversubscribing the test threads.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cargo test --workspace --release "$@"
# The Python package (pyo3 + pyo3-tch) against .venv's torch (scripts/python-package.sh installs
# what `import torch` needs, maturin and pytest there), then its tests against the binary.
if [[ $# -eq 0 ]]; then
  COLORPROXY_BIN="$root/target/release/colorproxy" PYTHON="$root/.venv/bin/python" scripts/python-package.sh --test
fi
