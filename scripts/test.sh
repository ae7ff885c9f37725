#!/usr/bin/env bash
# Sets up libtorch (scripts/setup.sh, idempotent) and runs the whole test suite.
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
