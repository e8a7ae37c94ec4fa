//! The generator's outside view of the gateway, what a provider would see: WebSocket ping
//! round-trip time per connection, connection set-up time, and how long after the frame that
//! decided it a handoff becomes observable on the gateway's `GET /v1/events` feed. The
//! gateway's own frame-lag histogram starts its clock when a message is read; these start it
//! on the sending side, so time spent in socket buffers or waiting for the gateway's scheduler
//! cannot hide from them.

use super::Percentiles;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Values below this many µs get a bucket each; above, every power of two is split into
/// [`SUB_BUCKETS`] (so a bucket is at most 1/16 = 6 % wide).
const LINEAR_US: u64 = 32;
const SUB_BUCKETS: u64 = 16;
/// Octaves above [`LINEAR_US`]: up to 2^37 µs (38 hours); longer values share the top bucket.
const OCTAVES: u64 = 32;
const BUCKETS: usize = (LINEAR_US + OCTAVES * SUB_BUCKETS) as usize;

/// A lock-free latency histogram with ~6 % resolution, shared by every connection.
#[derive(Debug)]
pub(super) struct LatencyHist {
    counts: Box<[AtomicU64]>,
    max_us: AtomicU64,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR_US {
        return us as usize;
    }
    // LINEAR_US = 2^5: octave 0 starts there.
    let octave = u64::from(63 - us.leading_zeros()) - 5;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (us >> (octave + 1)) & (SUB_BUCKETS - 1);
    (LINEAR_US + octave * SUB_BUCKETS + sub) as usize
}

/// The smallest value (µs) bucket `i` holds.
fn lower_us(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR_US {
        return i;
    }
    let (octave, sub) = ((i - LINEAR_US) / SUB_BUCKETS, (i - LINEAR_US) % SUB_BUCKETS);
    (SUB_BUCKETS + sub) << (octave + 1)
}

impl LatencyHist {
    pub(super) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Adds a connection's local counts (see [`LocalHist`]).
    pub(super) fn merge(&self, local: &LocalHist) {
        for (a, &n) in self.counts.iter().zip(local.counts.iter()) {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.max_us.fetch_max(local.max_us, Ordering::Relaxed);
    }

    /// The counts now, to take a window's difference later.
    pub(super) fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    /// Percentiles of everything recorded; `max_ms` is exact.
    pub(super) fn percentiles(&self) -> Percentiles {
        let mut p = percentiles_of_counts(&self.snapshot());
        if p.count > 0 {
            // Interpolation inside the top bucket must not pass the largest value seen.
            p.max_ms = self.max_us.load(Ordering::Relaxed) as f64 / 1000.0;
            for q in [&mut p.p50_ms, &mut p.p90_ms, &mut p.p99_ms] {
                *q = q.min(p.max_ms);
            }
        }
        p
    }
}

/// A histogram one task fills without atomics and merges once at its end (the per-message
/// send lag).
#[derive(Debug)]
pub(super) struct LocalHist {
    counts: Box<[u64]>,
    max_us: u64,
}

impl Default for LocalHist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            max_us: 0,
        }
    }
}

impl LocalHist {
    pub(super) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(us)] += 1;
        self.max_us = self.max_us.max(us);
    }
}

/// Percentiles of `after - before` counts (a window); `max_ms` is the top non-empty bucket's
/// upper bound.
pub(super) fn window_percentiles(before: &[u64], after: &[u64]) -> Percentiles {
    let delta: Vec<u64> = after
        .iter()
        .zip(before.iter().chain(std::iter::repeat(&0)))
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    percentiles_of_counts(&delta)
}

/// Percentiles from per-bucket counts, interpolating linearly inside a bucket.
fn percentiles_of_counts(counts: &[u64]) -> Percentiles {
    let total: u64 = counts.iter().sum();
    let upper_ms = |i: usize| lower_us(i + 1) as f64 / 1000.0;
    let lower_ms = |i: usize| lower_us(i) as f64 / 1000.0;
    let q = |q: f64| -> f64 {
        if total == 0 {
            return 0.0;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let f = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return lower_ms(i) + (upper_ms(i) - lower_ms(i)) * f;
            }
            below += c;
        }
        0.0
    };
    Percentiles {
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p99_ms: q(0.99),
        max_ms: counts.iter().rposition(|&c| c > 0).map_or(0.0, upper_ms),
        count: total,
    }
}

/// The outside view of a run (or of its all-calls-open window).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutsideView {
    /// Client-side WebSocket ping round trip: a Ping sent by the generator to its Pong read
    /// back, every connection, all tracks of the gateway's read loop in it.
    pub ping_rtt: Percentiles,
    /// Pings sent.
    pub pings_sent: u64,
    /// Pongs received.
    pub pongs_received: u64,
    /// Connection set-up: TCP connect, WebSocket upgrade and every message before the first
    /// media (Twilio: `connected` and `start`) sent. Whole run only.
    pub setup: Percentiles,
    /// From sending the frame whose audio ends at a handoff's `t_ms` to that handoff arriving
    /// on `GET /v1/events`. Whole run only; empty when the feed was not watched.
    pub handoff_observed: Percentiles,
    /// Handoffs seen on the event feed.
    pub handoffs_observed: u64,
    /// Whether the event feed was watched (it needs the API token when one is configured).
    pub events_watched: bool,
}

/// When each call's first media frame was due to be sent, by call id: the origin of the
/// media time a handoff's `t_ms` counts from.
#[derive(Debug, Default)]
pub(super) struct MediaOrigins(Mutex<HashMap<String, Instant>>);

impl MediaOrigins {
    pub(super) fn insert(&self, call_id: &str, at: Instant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(call_id.to_owned(), at);
        }
    }

    fn get(&self, call_id: &str) -> Option<Instant> {
        self.0.lock().ok()?.get(call_id).copied()
    }
}

/// What the watcher reads of each event.
#[derive(Deserialize)]
struct EventHead<'a> {
    event: &'a str,
    call_id: &'a str,
    t_ms: u64,
}

/// Handoffs seen on the event feed, and their latency from the frame that decided them.
#[derive(Debug, Default)]
pub(super) struct HandoffWatch {
    pub(super) latency: LatencyHist,
    pub(super) seen: AtomicU64,
    pub(super) watching: std::sync::atomic::AtomicBool,
}

impl HandoffWatch {
    /// One `data:` line of the feed, read at `at`. `chunk` is the media frame length: the
    /// frame ending at `t_ms` went out at `origin + t_ms - chunk`.
    pub(super) fn on_line(&self, line: &str, at: Instant, origins: &MediaOrigins, chunk: Duration) {
        let Some(json) = line.strip_prefix("data:") else {
            return;
        };
        let Ok(ev) = serde_json::from_str::<EventHead<'_>>(json.trim_start()) else {
            return;
        };
        if ev.event != "handoff" {
            return;
        }
        self.seen.fetch_add(1, Ordering::Relaxed);
        if let Some(origin) = origins.get(ev.call_id) {
            let sent = origin + Duration::from_millis(ev.t_ms).saturating_sub(chunk);
            self.latency.record(at.saturating_duration_since(sent));
        }
    }

    /// Subscribes to `url` (`/v1/events`) and reads it until the task is aborted; `ready` is
    /// told whether the subscription was accepted, so calls start only once it is.
    pub(super) async fn watch(
        &self,
        http: reqwest::Client,
        url: String,
        token: Option<String>,
        origins: &MediaOrigins,
        chunk: Duration,
        ready: tokio::sync::oneshot::Sender<bool>,
    ) {
        let mut req = http.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let mut resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            _ => {
                let _ = ready.send(false);
                return;
            }
        };
        self.watching.store(true, Ordering::Relaxed);
        let _ = ready.send(true);
        // Lines can straddle chunks; at most one partial line is kept.
        let mut partial: Vec<u8> = Vec::new();
        while let Ok(Some(bytes)) = resp.chunk().await {
            let at = Instant::now();
            partial.extend_from_slice(&bytes);
            let mut start = 0;
            while let Some(nl) = partial[start..].iter().position(|&b| b == b'\n') {
                if let Ok(line) = std::str::from_utf8(&partial[start..start + nl]) {
                    self.on_line(line.trim_end_matches('\r'), at, origins, chunk);
                }
                start += nl + 1;
            }
            partial.drain(..start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(bucket_of(lower_us(i)), i, "bucket {i}");
            assert_eq!(bucket_of(lower_us(i + 1) - 1), i, "bucket {i} top");
            let (lo, hi) = (lower_us(i), lower_us(i + 1));
            assert!(
                i < LINEAR_US as usize || (hi - lo) * 16 <= lo,
                "bucket {i}: {lo}..{hi}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_land_in_the_right_bucket() {
        let h = LatencyHist::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(1_000));
        }
        h.record(Duration::from_millis(100));
        h.record(Duration::from_millis(120));
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 1.0).abs() < 0.07, "{p:?}");
        assert!(p.p99_ms > 93.0 && p.p99_ms < 107.0, "{p:?}");
        assert!((p.max_ms - 120.0).abs() < 1e-9, "{p:?}");
        let before = h.snapshot();
        h.record(Duration::from_millis(5));
        let w = window_percentiles(&before, &h.snapshot());
        assert_eq!(w.count, 1);
        assert!(w.p50_ms > 4.6 && w.p50_ms < 5.4, "{w:?}");
    }

    #[test]
    fn handoff_latency_counts_from_the_deciding_frame() {
        let origins = MediaOrigins::default();
        let t0 = Instant::now();
        origins.insert("CA1", t0);
        let w = HandoffWatch::default();
        let chunk = Duration::from_millis(20);
        // The frame ending at 26,000 ms went out at t0 + 25,980 ms; seen 30 ms later.
        let seen_at = t0 + Duration::from_millis(26_010);
        let line = r#"data: {"call_id":"CA1","t_ms":26000,"event":"handoff","reasons":[]}"#;
        w.on_line(line, seen_at, &origins, chunk);
        w.on_line(
            r#"data: {"call_id":"CA1","t_ms":1,"event":"prosody"}"#,
            seen_at,
            &origins,
            chunk,
        );
        w.on_line(": keep-alive", seen_at, &origins, chunk);
        assert_eq!(w.seen.load(Ordering::Relaxed), 1);
        let p = w.latency.percentiles();
        assert_eq!(p.count, 1);
        assert!((p.max_ms - 30.0).abs() < 1e-9, "{p:?}");
    }
}
