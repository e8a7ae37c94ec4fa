#!/usr/bin/env bash
# Chaos/soak run (issue #16): real-time calls for MINUTES with churn (a new wave of calls every
# WAVE_S seconds, each call WAVE_S*2 s long, each escalating to a handoff through the demo
# transcript), TCP resets against the gateway, a webhook receiver that flaps (200 / 503 /
# connection reset, benches/soak/receiver.py), and a `kill -9` + restart of the gateway halfway.
# Then the receiver stays up until the outbox is empty (or DRAIN_S passes).
#
# Reports: calls completed (simulate's clean ends), handoffs decided (distinct handoff ids in the
# gateway's event log, both runs) vs delivered (distinct Idempotency-Keys the receiver answered
# 200) — they must be equal — how many keys were answered 200 more than once (a delivery cut by
# the kill is repeated: receivers deduplicate on Idempotency-Key), and the gateway's RSS and open
# fds every SAMPLE_S seconds.
#
# Usage: benches/soak.sh
#   MINUTES=2          length of the call phase
#   CALLS=20           calls per wave
#   WAVE_S=20          seconds between waves (each call lasts 2*WAVE_S of media)
#   DRAIN_S=120        longest wait for the outbox to empty after the call phase
#   SAMPLE_S=5         RSS/fd sampling period
#   NICE="nice -n 10"  prefix for every process (shared machine)
#   BIN=path           binary to run (default: target/debug/warmline, built by cargo build)
#   OUT=dir            keep logs there (default: a temp dir, printed)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-2}
CALLS=${CALLS:-20}
WAVE_S=${WAVE_S:-20}
DRAIN_S=${DRAIN_S:-120}
SAMPLE_S=${SAMPLE_S:-5}
NICE=${NICE:-}
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --bin warmline
  BIN=target/debug/warmline
fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
GW_PORT=${GW_PORT:-18180}
RX_PORT=${RX_PORT:-18181}
TOKEN=soak-token
PIDS=()
GW=
cleanup() {
  [ -n "$GW" ] && kill "$GW" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

cat > "$OUT/cfg.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
[auth.twilio]
auth_token = "$TOKEN"
[auth.token]
value = "$TOKEN"
[bridge]
outbox_dir = "$OUT/outbox"
initial_backoff_ms = 200
max_backoff_ms = 2000
max_attempts = 1000
request_timeout_ms = 2000
[bridge.webhook]
url = "http://127.0.0.1:$RX_PORT/handoff"
secret = "soak"
TOML

: > "$OUT/received.log"
$NICE python3 benches/soak/receiver.py "$RX_PORT" "$OUT/received.log" &
PIDS+=($!)

start_gateway() { # run number
  $NICE "$BIN" serve --config "$OUT/cfg.toml" > "$OUT/gateway$1.out" 2> "$OUT/gateway$1.log" &
  GW=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$GW_PORT/healthz" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "gateway did not come up; see $OUT/gateway$1.log" >&2
  exit 1
}

sample() { # label
  local rss fds
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$GW/fd" 2>/dev/null | wc -l)
  echo "$(date +%s) $1 rss_kib=$rss fds=$fds" >> "$OUT/samples.txt"
}

start_gateway 1
: > "$OUT/samples.txt"
END=$(( $(date +%s) + MINUTES * 60 ))
KILL_AT=$(( $(date +%s) + MINUTES * 30 ))
KILLED=0
WAVE=0
NEXT_WAVE=0
NEXT_SAMPLE=0
SIMS=()
while [ "$(date +%s)" -lt "$END" ]; do
  now=$(date +%s)
  if [ "$now" -ge "$NEXT_WAVE" ]; then
    WAVE=$((WAVE + 1))
    $NICE "$BIN" simulate --calls "$CALLS" --ramp-s "$((WAVE_S / 2))" --duration-s "$((WAVE_S * 2))" \
      --transcript fixtures/demo/escalating.transcript.jsonl --token "$TOKEN" \
      --twilio-auth-token "$TOKEN" --json "ws://127.0.0.1:$GW_PORT" \
      > "$OUT/wave$WAVE.json" 2> "$OUT/wave$WAVE.log" &
    SIMS+=($!)
    $NICE python3 benches/soak/resets.py 127.0.0.1 "$GW_PORT" 20 2>/dev/null || true
    NEXT_WAVE=$((now + WAVE_S))
  fi
  if [ "$KILLED" = 0 ] && [ "$now" -ge "$KILL_AT" ]; then
    sample "before-kill"
    kill -9 "$GW"
    wait "$GW" 2>/dev/null || true
    echo "$(date +%s) kill -9 gateway (wave $WAVE)" >> "$OUT/samples.txt"
    start_gateway 2
    KILLED=1
  fi
  if [ "$now" -ge "$NEXT_SAMPLE" ]; then
    sample "run$((KILLED + 1))"
    NEXT_SAMPLE=$((now + SAMPLE_S))
  fi
  sleep 1
done
for p in "${SIMS[@]}"; do wait "$p" 2>/dev/null || true; done
sample "calls-done"

# Drain: the receiver keeps flapping; the bridge keeps retrying until the outbox is empty.
DRAIN_END=$(( $(date +%s) + DRAIN_S ))
while [ "$(date +%s)" -lt "$DRAIN_END" ]; do
  left=$(find "$OUT/outbox" -maxdepth 1 -name '*.json' | wc -l)
  [ "$left" = 0 ] && break
  sleep 1
done
sample "drained"
kill "$GW"
wait "$GW" 2>/dev/null || true
GW=

decided=$(cat "$OUT"/gateway*.log | grep -o '"event":"handoff","handoff_id":"[^"]*"' \
  | sed 's/.*"handoff_id":"//; s/"$//' | sort -u || true)
# Event field order is the contract's; fall back to any handoff line if it ever changes.
[ -z "$decided" ] && decided=$(cat "$OUT"/gateway*.log | grep '"event":"handoff"' \
  | grep -o '"handoff_id":"[^"]*"' | sed 's/.*:"//; s/"$//' | sort -u || true)
delivered=$(awk '$2 == 200 {print $3}' "$OUT/received.log" | sort -u || true)
n_decided=$(printf '%s\n' "$decided" | grep -c . || true)
n_delivered=$(printf '%s\n' "$delivered" | grep -c . || true)
missing=$(comm -23 <(printf '%s\n' "$decided") <(printf '%s\n' "$delivered") | grep -c . || true)
extra=$(comm -13 <(printf '%s\n' "$decided") <(printf '%s\n' "$delivered") | grep -c . || true)
dups=$(awk '$2 == 200 {print $3}' "$OUT/received.log" | sort | uniq -d | wc -l)
completed=0
for f in "$OUT"/wave*.json; do
  c=$(python3 -c 'import json,sys
try:
  r=json.load(open(sys.argv[1])); print(r.get("calls_completed", r.get("completed", 0)))
except Exception: print(0)' "$f")
  completed=$((completed + c))
done
pending=$(find "$OUT/outbox" -maxdepth 1 -name '*.json' | wc -l)
failed=$(find "$OUT/outbox/failed" -maxdepth 1 -name '*.json' 2>/dev/null | wc -l)
rss=$(awk '{print $3}' "$OUT/samples.txt" | grep rss | sed 's/rss_kib=//' | sort -n | tail -1 || true)
fds=$(awk '{print $4}' "$OUT/samples.txt" | grep fds | sed 's/fds=//' | sort -n | tail -1 || true)

echo "soak: ${MINUTES} min, $WAVE waves of $CALLS calls, kill -9 + restart at half time; logs in $OUT"
echo "calls completed (simulate, clean end): $completed"
echo "handoffs decided: $n_decided; delivered (distinct keys answered 200): $n_delivered"
echo "decided but not delivered: $missing; delivered but never decided: $extra"
echo "keys answered 200 more than once (repeated after the kill; receivers dedupe): $dups"
echo "outbox after drain: $pending pending, $failed failed"
echo "max RSS ${rss:-?} KiB, max fds ${fds:-?}; samples:"
cat "$OUT/samples.txt"
[ "$missing" = 0 ] && [ "$extra" = 0 ] && [ "$n_decided" -gt 0 ]
