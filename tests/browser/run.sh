#!/usr/bin/env bash
# Dashboard browser test: builds warmline (release), installs playwright-core, and drives
# Debian's Chromium headless against a live `warmline serve` fed an escalating call from
# $WARMLINE_DATA (default ../shared/data). Fails loudly on any missing piece.
#   SCREENSHOT=docs/dashboard.png tests/browser/run.sh   # keep the screenshot
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export WARMLINE_DATA="${WARMLINE_DATA:-$repo/../shared/data}"
# Relative to where the script was started, not to this directory.
if [[ -n "${SCREENSHOT:-}" && "$SCREENSHOT" != /* ]]; then
  export SCREENSHOT="$PWD/$SCREENSHOT"
fi
export CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$CHROMIUM" ]]; then
  echo "FAIL: chromium not found (apt-get install -y chromium)" >&2
  exit 1
fi
(cd "$repo" && cargo build --release --bin warmline)
export WARMLINE_BIN="$repo/target/release/warmline"
cd "$here"
if [[ ! -d node_modules/playwright-core ]]; then
  npm install --no-audit --no-fund --loglevel=error
fi
exec node dashboard.mjs
