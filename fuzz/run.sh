#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, one at a time, and prints one line per
# target: target, seconds, execs, crashes. Findings land in fuzz/artifacts/<target>/.
#   fuzz/run.sh 600                 # 10 minutes per target
#   NICE="nice -n 19" fuzz/run.sh 20
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
NICE="${NICE:-}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=$(cargo +nightly fuzz list)
# One retry: a build interrupted by the machine (linker killed under memory pressure) is not a
# finding; a real compile error fails twice and stops the run.
cargo +nightly fuzz build >/dev/null || cargo +nightly fuzz build
status=0
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="$(mktemp)"
  # -rss_limit_mb: the oracles bound memory per input; this catches what they miss.
  if $NICE cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" \
      -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=$(find "artifacts/$t" -type f | wc -l)
    [ "$crashes" -gt 0 ] || crashes=1
    status=1
    tail -40 "$log" >&2
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  printf '%-12s %6ss %12s execs %3s crashes\n' "$t" "$SECONDS_EACH" "$execs" "$crashes"
  rm -f "$log"
done
exit $status
