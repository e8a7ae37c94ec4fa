//! What a `simulate` run reports, and how it reads the gateway from the outside of its process:
//! the `/metrics` exposition (scraped before and after, turned into deltas and bucket
//! percentiles) and `/proc` (CPU ticks, RSS).

use super::OutsideView;
use crate::protocol::Provider;
use serde::Serialize;
use std::time::Duration;

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest seen (generator side) or the upper bound of the top bucket (server side).
    pub max_ms: f64,
    /// Observations.
    pub count: u64,
}

/// Counter deltas and latency scraped from the gateway's `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerMetrics {
    /// Time from a message's arrival (when the call's task read it) to its features and
    /// decision being ready: processing only.
    pub frame_latency: Percentiles,
    /// Time from when a frame's audio ended by the call's media clock to its features and
    /// decision being ready: processing plus socket and scheduler queueing.
    pub frame_lag: Percentiles,
    /// Frames whose lag exceeded 20 ms.
    pub frames_lag_over_20ms: u64,
    /// Media frames processed.
    pub frames: u64,
    /// Frames lost (missing or late), all tracks.
    pub frames_dropped: u64,
    /// Messages whose processing exceeded 20 ms.
    pub frames_late: u64,
    /// Handoffs decided.
    pub handoffs: u64,
    /// Stream errors, all kinds.
    pub stream_errors: u64,
    /// Upgrades refused with 503.
    pub admission_rejections: u64,
    /// Calls started.
    pub calls_started: u64,
}

/// The gateway process, from `/proc`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessStats {
    /// CPU used during the run, percent of one core.
    pub cpu_pct: f64,
    /// RSS before the first connection.
    pub rss_before_kib: u64,
    /// Highest RSS sampled (every 250 ms) during the run.
    pub rss_peak_kib: u64,
    /// (peak - before) / peak concurrent streams.
    pub rss_per_call_kib: f64,
}

/// The stretch of the run when every call is open (after the ramp and a settling second,
/// before the first call stops): the gateway's CPU, memory and latency under N live calls,
/// without the idle ramp and tail diluting them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SteadyState {
    /// Window start, seconds after the first connection.
    pub from_s: f64,
    /// Window end, seconds after the first connection.
    pub to_s: f64,
    /// Streams open at the window's start and end (the smaller).
    pub active_calls: u64,
    /// The gateway's metrics over the window.
    pub server: Option<ServerMetrics>,
    /// Gateway CPU over the window, percent of one core.
    pub cpu_pct: Option<f64>,
    /// Gateway RSS at the window's end.
    pub rss_kib: Option<u64>,
    /// Client-side ping round trip over the window (see [`OutsideView::ping_rtt`]).
    pub ping_rtt: Percentiles,
    /// Generator CPU over the window, percent of one core.
    pub generator_cpu_pct: Option<f64>,
    /// (RSS at the window's end - RSS before the first connection) / `active_calls`.
    pub rss_per_call_kib: Option<f64>,
}

/// What a run saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimReport {
    /// The provider.
    pub provider: Provider,
    /// Streams attempted.
    pub calls: usize,
    /// Upgrades accepted.
    pub opened: u64,
    /// Upgrades refused with HTTP 503 (admission).
    pub refused: u64,
    /// Upgrades that failed otherwise (other status, connect error).
    pub failed: u64,
    /// Streams the gateway closed with 1000 after the stop message.
    pub completed: u64,
    /// Opened streams that ended any other way.
    pub ended_otherwise: u64,
    /// Most streams open at once.
    pub peak_concurrent: u64,
    /// WebSocket messages sent, all streams.
    pub messages_sent: u64,
    /// How late the generator was against its own schedule (a slow generator, not a slow server).
    pub send_lag: Percentiles,
    /// What a provider would see of the gateway, measured on the client side.
    pub outside: OutsideView,
    /// Transcript lines posted and accepted (202).
    pub transcript_accepted: u64,
    /// Wall time of the run.
    pub wall_s: f64,
    /// Generator CPU, percent of one core.
    pub generator_cpu_pct: f64,
    /// The gateway's metrics over the run, when they could be scraped.
    pub server: Option<ServerMetrics>,
    /// The gateway process, when `server_pid` was given.
    pub server_process: Option<ProcessStats>,
    /// The all-calls-open window, when the run is long enough to have one (duration at least
    /// ramp + 4 s).
    pub steady: Option<SteadyState>,
}

/// Percentiles from cumulative bucket counts with upper bounds in ms, interpolating linearly
/// inside the bucket (the lower bound of the first bucket is 0).
pub fn percentiles_from_buckets(upper_ms: &[f64], cumulative: &[u64]) -> Percentiles {
    let total = cumulative.last().copied().unwrap_or(0);
    let q = |q: f64| -> f64 {
        if total == 0 {
            return 0.0;
        }
        let rank = q * total as f64;
        let mut prev_count = 0u64;
        let mut prev_bound = 0.0;
        for (&ub, &c) in upper_ms.iter().zip(cumulative) {
            if c as f64 >= rank {
                if !ub.is_finite() {
                    return prev_bound;
                }
                let in_bucket = (c - prev_count) as f64;
                let f = if in_bucket > 0.0 {
                    (rank - prev_count as f64) / in_bucket
                } else {
                    1.0
                };
                return prev_bound + (ub - prev_bound) * f.clamp(0.0, 1.0);
            }
            prev_count = c;
            prev_bound = ub;
        }
        prev_bound
    };
    let max_ms = upper_ms
        .iter()
        .zip(cumulative)
        .scan(0u64, |prev, (&ub, &c)| {
            let nonempty = c > *prev;
            *prev = c;
            Some((ub, nonempty))
        })
        .filter(|&(_, n)| n)
        .map(|(ub, _)| ub)
        .last()
        .unwrap_or(0.0);
    Percentiles {
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p99_ms: q(0.99),
        max_ms,
        count: total,
    }
}

/// The parts of a `/metrics` scrape the report uses.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `(le in ms, cumulative count)` of `warmline_frame_processing_seconds`.
    pub latency_buckets: Vec<(f64, u64)>,
    /// `(le in ms, cumulative count)` of `warmline_frame_lag_seconds`.
    pub lag_buckets: Vec<(f64, u64)>,
    /// Sums over all label sets, by metric name (without `_total`).
    pub sums: std::collections::HashMap<String, u64>,
}

/// Parses Prometheus/OpenMetrics text.
pub fn parse_metrics(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        let buckets = match name {
            "warmline_frame_processing_seconds_bucket" => Some(&mut s.latency_buckets),
            "warmline_frame_lag_seconds_bucket" => Some(&mut s.lag_buckets),
            _ => None,
        };
        if let Some(buckets) = buckets {
            let le = labels
                .split(',')
                .find_map(|kv| kv.strip_prefix("le=\""))
                .map(|x| x.trim_end_matches('"'));
            let le_ms = match le {
                Some("+Inf") => f64::INFINITY,
                Some(x) => x.parse::<f64>().map_or(f64::NAN, |s| s * 1000.0),
                None => f64::NAN,
            };
            if !le_ms.is_nan() {
                buckets.push((le_ms, v as u64));
            }
            continue;
        }
        let key = name.strip_suffix("_total").unwrap_or(name);
        *s.sums.entry(key.to_owned()).or_default() += v as u64;
    }
    s.latency_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s.lag_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

pub(super) async fn scrape(http: &reqwest::Client, url: &str) -> Option<Scrape> {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(parse_metrics(&r.text().await.ok()?))
}

pub(super) fn server_delta(b: &Scrape, a: &Scrape) -> ServerMetrics {
    let d = |k: &str| {
        a.sums
            .get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(b.sums.get(k).copied().unwrap_or(0))
    };
    let lag = bucket_delta(&b.lag_buckets, &a.lag_buckets);
    let lag_within_20ms = lag
        .iter()
        .find(|x| (x.0 - 20.0).abs() < 1e-9)
        .map_or(0, |x| x.1);
    let total = |v: &[(f64, u64)]| v.last().map_or(0, |x| x.1);
    ServerMetrics {
        frame_latency: percentiles_of(&bucket_delta(&b.latency_buckets, &a.latency_buckets)),
        frame_lag: percentiles_of(&lag),
        frames_lag_over_20ms: total(&lag).saturating_sub(lag_within_20ms),
        frames: d("warmline_frames"),
        frames_dropped: d("warmline_frames_dropped"),
        frames_late: d("warmline_frames_late"),
        handoffs: d("warmline_handoffs"),
        stream_errors: d("warmline_stream_errors"),
        admission_rejections: d("warmline_admission_rejections"),
        calls_started: d("warmline_calls_started"),
    }
}

/// Cumulative buckets of `after` minus those of `before`.
pub(super) fn bucket_delta(before: &[(f64, u64)], after: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(le, c)| {
            let b = before.iter().find(|x| x.0 == le).map_or(0, |x| x.1);
            (le, c.saturating_sub(b))
        })
        .collect()
}

pub(super) fn percentiles_of(buckets: &[(f64, u64)]) -> Percentiles {
    let bounds: Vec<f64> = buckets.iter().map(|x| x.0).collect();
    let cumulative: Vec<u64> = buckets.iter().map(|x| x.1).collect();
    percentiles_from_buckets(&bounds, &cumulative)
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on every Linux we target).
const CLOCK_TICKS_HZ: f64 = 100.0;

pub(super) fn cpu_pct(ticks: u64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s <= 0.0 {
        return 0.0;
    }
    ticks as f64 / CLOCK_TICKS_HZ / s * 100.0
}

pub(super) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(super) fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub(super) fn proc_cpu_ticks_self() -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

pub(super) fn proc_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
