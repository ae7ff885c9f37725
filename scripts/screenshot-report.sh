#!/usr/bin/env bash
# Screenshot of a report in headless Chromium (Debian: apt-get install chromium).
#   scripts/screenshot-report.sh RUN_DIR|PAGE.html [OUT.png] [HEIGHT]
# RUN_DIR: its report.html. Writes OUT.png (default: beside the page, .png), 1100 pixels wide,
# HEIGHT (default 5200) tall.
set -euo pipefail
arg="${1:?usage: scripts/screenshot-report.sh RUN_DIR|PAGE.html [OUT.png] [HEIGHT]}"
if [[ -d "$arg" ]]; then html="$arg/report.html"; else html="$arg"; fi
out="${2:-${html%.html}.png}"
height="${3:-5200}"
[[ -f "$html" ]] || { echo "screenshot: $html does not exist" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "screenshot: no Chromium found (Debian/Ubuntu: apt-get install chromium)" >&2; exit 1; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
page="file://$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
# Flags: no sandbox (root in containers), no network use of its own, a fresh profile.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="1100,$height" \
  --screenshot="$(realpath -m "$out")" "$page" 2>/dev/null
echo "screenshot: $out"
