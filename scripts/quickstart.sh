#!/usr/bin/env bash
# The README's first command: set up libtorch, build colorproxy, and run the built-in demo
# (generated scenes -> colorization pretraining -> fine-tuning from random and from colorization
# -> report). A few minutes on a 2-core CPU; the report goes to out/demo/report.html.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release -p colorproxy
target/release/colorproxy demo --out "${1:-out/demo}"
