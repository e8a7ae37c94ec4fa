#!/usr/bin/env bash
# Per-core capacity: `warmline serve` on core 0, `warmline simulate` on core 1, N ramped until
# p99 frame latency >= 20 ms or frames drop. DURATION (s per step, default 60), STEPS.
# Usage: benches/load.sh    (e.g. DURATION=20 STEPS="250 500 1000" benches/load.sh)
set -euo pipefail
DURATION=${DURATION:-60}
STEPS=${STEPS:-"250 500 1000 1500 2000 2500 3000"}
ulimit -n 20000 || true
cargo build --release --quiet
BIN=target/release/warmline
TMP=$(mktemp -d)
cat > "$TMP/cfg.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
max_calls = ${MAX_CALLS:-10000}
[auth.twilio]
auth_token = "bench-token"
[bridge]
outbox_dir = "$TMP/outbox"
TOML
RUST_LOG=warmline=warn taskset -c 0 "$BIN" serve --config "$TMP/cfg.toml" > "$TMP/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%6s %8s %8s %8s %6s %6s %6s %10s %10s\n" N opened p50_ms p99_ms dropped late cpu% rss_MiB kib/call
for N in $STEPS; do
  taskset -c 1 "$BIN" simulate --provider twilio --calls "$N" --ramp-s 5 --duration-s "$DURATION" \
    --twilio-auth-token bench-token --server-pid "$SERVER" --json fixtures/demo/escalating.wav ws://127.0.0.1:18080 > "$TMP/$N.json"
  python3 - "$TMP/$N.json" "$N" <<'PY'
import json,sys
r=json.load(open(sys.argv[1])); s=r.get("server") or {}; p=r.get("server_process") or {}
l=s.get("frame_latency",{})
print("%6s %8d %8.3f %8.3f %6d %6d %6.0f %10.1f %10.0f"%(sys.argv[2],r["opened"],l.get("p50_ms",0),l.get("p99_ms",0),
  s.get("frames_dropped",0),s.get("frames_late",0),p.get("cpu_pct",0),p.get("rss_peak_kib",0)/1024,p.get("rss_per_call_kib",0)))
PY
done
