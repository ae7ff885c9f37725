#!/usr/bin/env bash
# Screenshot of a report.html in headless Chromium (Debian: apt-get install chromium).
#   scripts/screenshot-report.sh RUN_DIR [OUT.png] [HEIGHT]
# Writes OUT.png (default RUN_DIR/report.png), 1100 pixels wide, HEIGHT (default 5200) tall.
set -euo pipefail
dir="${1:?usage: scripts/screenshot-report.sh RUN_DIR [OUT.png] [HEIGHT]}"
out="${2:-$dir/report.png}"
height="${3:-5200}"
[[ -f "$dir/report.html" ]] || { echo "screenshot: $dir/report.html does not exist" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "screenshot: no Chromium found (Debian/Ubuntu: apt-get install chromium)" >&2; exit 1; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
page="file://$(cd "$dir" && pwd)/report.html"
# Flags: no sandbox (root in containers), no network use of its own, a fresh profile.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="1100,$height" \
  --screenshot="$(realpath -m "$out")" "$page" 2>/dev/null
echo "screenshot: $out"
