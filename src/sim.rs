//! The load generator behind `warmline simulate`: many concurrent media streams in a provider's
//! real wire format against a running gateway, paced like a real provider, with the gateway's
//! own view (its `/metrics`, its process's CPU and memory) measured before and after.
//!
//! Messages are rendered once per run and shared by every connection (`Bytes`-backed
//! [`Message`]s clone by reference count), so the generator's per-message work is a clone, a
//! timer tick and a socket write. Only the few messages that carry the call id (start, stop) are
//! rendered per connection, at connect time.

use crate::codec::Codec;
use crate::detect::TranscriptLine;
use crate::protocol::{Provider, RenderSpec, WireMessage};
use crate::synth::Rng;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
pub use outside::OutsideView;
use outside::{HandoffWatch, LatencyHist, LocalHist, MediaOrigins};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::{self, Message};

/// Stand-in call id in the shared render; replaced per connection in the messages carrying it.
const PLACEHOLDER_CALL_ID: &str = "CAsimplaceholdercallid000000000000";
/// Stream id shared by every connection, so media messages need no per-connection copy.
const SHARED_STREAM_ID: &str = "MZsim0000000000000000000000000000";

mod conn;
mod outside;
mod report;

use conn::Conn;
use report::*;
pub use report::{
    Percentiles, ProcessStats, Scrape, ServerMetrics, SimReport, SteadyState, parse_metrics,
    percentiles_from_buckets,
};

/// How fast media is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// One chunk per chunk duration, as a provider sends.
    Realtime,
    /// As fast as the socket takes it.
    Max,
}

/// Credentials for the upgrade.
#[derive(Debug, Clone)]
pub enum SimAuth {
    /// No credentials.
    None,
    /// Twilio's `X-Twilio-Signature` with this auth token.
    Twilio(String),
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// One load run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Wire format.
    pub provider: Provider,
    /// Concurrent streams to open.
    pub calls: usize,
    /// Connections are spread evenly over this time.
    pub ramp: Duration,
    /// Media length of each call (the input is looped to fill it).
    pub duration: Duration,
    /// Pacing.
    pub rate: Rate,
    /// Uniform extra delay per chunk, 0..jitter_ms.
    pub jitter_ms: f64,
    /// PRNG seed for jitter.
    pub seed: u64,
    /// Gateway base URL, `ws://host:port`.
    pub base_url: String,
    /// Upgrade credentials.
    pub auth: SimAuth,
    /// Bearer token for transcript posts (when the API is protected).
    pub api_token: Option<String>,
    /// Where to scrape metrics; default `http://host:port/metrics` of `base_url`.
    pub metrics_url: Option<String>,
    /// Gateway process to sample CPU and RSS of.
    pub server_pid: Option<u32>,
    /// Caller audio at `sample_rate_hz`.
    pub pcm: Vec<i16>,
    /// Rate of `pcm`.
    pub sample_rate_hz: u32,
    /// Transcript lines posted to every call at their `t_ms`.
    pub transcript: Vec<TranscriptLine>,
    /// Every connection sends a WebSocket Ping this often and times its Pong (`None`: never).
    pub ping_interval: Option<Duration>,
    /// Subscribe to the gateway's `GET /v1/events` (with `api_token`) and time each handoff
    /// from the frame that decided it to its arrival there.
    pub watch_events: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The URL is not `ws://host:port`.
    #[error("bad gateway URL {url:?}: {detail}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// Nothing to send.
    #[error("the input audio is empty")]
    EmptyInput,
}

#[derive(Debug)]
struct Totals {
    opened: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    completed: AtomicU64,
    ended_otherwise: AtomicU64,
    active: AtomicU64,
    peak: AtomicU64,
    messages: AtomicU64,
    transcript_accepted: AtomicU64,
    send_lag: LatencyHist,
    ping_rtt: LatencyHist,
    pings_sent: AtomicU64,
    pongs: AtomicU64,
    setup: LatencyHist,
    /// Ping payloads carry microseconds since this instant.
    epoch: Instant,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            opened: AtomicU64::default(),
            refused: AtomicU64::default(),
            failed: AtomicU64::default(),
            completed: AtomicU64::default(),
            ended_otherwise: AtomicU64::default(),
            active: AtomicU64::default(),
            peak: AtomicU64::default(),
            messages: AtomicU64::default(),
            transcript_accepted: AtomicU64::default(),
            send_lag: LatencyHist::default(),
            ping_rtt: LatencyHist::default(),
            pings_sent: AtomicU64::default(),
            pongs: AtomicU64::default(),
            setup: LatencyHist::default(),
            epoch: Instant::now(),
        }
    }
}

/// The shared render: messages before media (per connection when they carry the call id),
/// media (shared), and the tail.
#[derive(Debug)]
struct Rendered {
    messages: Vec<Part>,
    chunk: Duration,
}

#[derive(Debug)]
enum Part {
    /// Carries the call id: rendered per connection.
    PerCall(WireMessage),
    /// Sent as is, without pacing.
    Shared(Message),
    /// A media message: paced.
    Media(Message),
}

fn to_message(m: WireMessage) -> Message {
    match m {
        WireMessage::Text(t) => Message::Text(Utf8Bytes::from(t)),
        WireMessage::Binary(b) => Message::Binary(Bytes::from(b)),
    }
}

/// The codec and rate a provider usually sends.
pub fn provider_format(p: Provider) -> (Codec, u32) {
    p.spec().usual_format
}

/// Linear-interpolation resampling: good enough for load, where only the byte rate matters.
pub fn resample_linear(pcm: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    if from_hz == to_hz || pcm.is_empty() {
        return pcm.to_vec();
    }
    let n_out = (pcm.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    let step = f64::from(from_hz) / f64::from(to_hz);
    (0..n_out)
        .map(|i| {
            let x = i as f64 * step;
            let i0 = x as usize;
            let i1 = (i0 + 1).min(pcm.len() - 1);
            let f = x - i0 as f64;
            let a = f64::from(pcm[i0.min(pcm.len() - 1)]);
            (a + (f64::from(pcm[i1]) - a) * f).round() as i16
        })
        .collect()
}

fn render(cfg: &SimConfig) -> Result<Rendered, SimError> {
    if cfg.pcm.is_empty() {
        return Err(SimError::EmptyInput);
    }
    let (codec, rate_hz) = provider_format(cfg.provider);
    let pcm = resample_linear(&cfg.pcm, cfg.sample_rate_hz, rate_hz);
    let want = (cfg.duration.as_secs_f64() * f64::from(rate_hz)).round() as usize;
    let want = want.max(1);
    let looped: Vec<i16> = pcm.iter().copied().cycle().take(want).collect();
    let mut spec = RenderSpec::new(PLACEHOLDER_CALL_ID, codec, rate_hz);
    spec.stream_id = SHARED_STREAM_ID.to_owned();
    let chunk = Duration::from_millis(u64::from(spec.chunk_ms));
    let messages = cfg
        .provider
        .render(&spec, &looped, None)
        .into_iter()
        .map(|m| match &m {
            WireMessage::Text(t) if t.contains(PLACEHOLDER_CALL_ID) => Part::PerCall(m),
            WireMessage::Text(t) if t.contains(r#""event":"media""#) => Part::Media(to_message(m)),
            WireMessage::Text(_) => Part::Shared(to_message(m)),
            WireMessage::Binary(_) => Part::Media(to_message(m)),
        })
        .collect();
    Ok(Rendered { messages, chunk })
}

struct Target {
    ws_url: String,
    http_base: String,
}

fn target(cfg: &SimConfig) -> Result<Target, SimError> {
    let bad = |detail: &str| SimError::BadUrl {
        url: cfg.base_url.clone(),
        detail: detail.to_owned(),
    };
    let base = cfg.base_url.trim_end_matches('/');
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| bad("expected ws://host:port"))?;
    let http = match scheme {
        "ws" => "http",
        "wss" => "https",
        _ => return Err(bad("scheme must be ws or wss")),
    };
    // Accept either the gateway root or a full media URL.
    let host = rest.split('/').next().unwrap_or(rest);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target {
        ws_url: format!("{scheme}://{host}/v1/media/{}", cfg.provider.name()),
        http_base: format!("{http}://{host}"),
    })
}

/// Runs the load and measures it.
pub async fn run(cfg: SimConfig) -> Result<SimReport, SimError> {
    let rendered = Arc::new(render(&cfg)?);
    let tgt = target(&cfg)?;
    let metrics_url = cfg
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", tgt.http_base));
    let http = reqwest::Client::new();
    let before = scrape(&http, &metrics_url).await;
    let cpu_before = cfg.server_pid.and_then(proc_cpu_ticks);
    let rss_before = cfg.server_pid.and_then(proc_rss_kib).unwrap_or(0);
    let self_cpu_before = proc_cpu_ticks_self();
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let run_id = u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64 & 0xffff_ffff);

    // RSS sampler.
    let rss_peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = cfg.server_pid.map(|pid| {
        let peak = rss_peak.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_millis(250));
            loop {
                t.tick().await;
                if let Some(kib) = proc_rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
            }
        })
    });

    // The event feed first, so no handoff can be published before the watcher listens.
    let origins = Arc::new(MediaOrigins::default());
    let watch = Arc::new(HandoffWatch::default());
    let watcher = if cfg.watch_events {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (w, o) = (watch.clone(), origins.clone());
        let (http, url, token) = (
            http.clone(),
            format!("{}/v1/events", tgt.http_base),
            cfg.api_token.clone(),
        );
        let chunk = rendered.chunk;
        let task =
            tokio::spawn(async move { w.watch(http, url, token, &o, chunk, ready_tx).await });
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        Some(task)
    } else {
        None
    };

    let t0 = tokio::time::Instant::now();
    let steady_task = steady_window(cfg.ramp, cfg.duration).map(|(from, to)| {
        let http = http.clone();
        let url = metrics_url.clone();
        let totals = totals.clone();
        let pid = cfg.server_pid;
        tokio::spawn(async move {
            tokio::time::sleep_until(t0 + from).await;
            let a = Snapshot::take(&http, &url, pid, &totals).await;
            tokio::time::sleep_until(t0 + to).await;
            let b = Snapshot::take(&http, &url, pid, &totals).await;
            (from, to, a, b)
        })
    });

    let transcript = Arc::new(cfg.transcript.clone());
    let ws_url: Arc<str> = tgt.ws_url.into();
    let http_base: Arc<str> = tgt.http_base.into();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cfg.calls {
        let offset = if cfg.calls > 1 {
            cfg.ramp.mul_f64(i as f64 / cfg.calls as f64)
        } else {
            Duration::ZERO
        };
        let conn = Conn {
            call_id: format!("CA{run_id:016x}{i:016x}"),
            origins: cfg.watch_events.then(|| origins.clone()),
            ping_every: cfg
                .ping_interval
                .map(|p| (p.as_nanos() / rendered.chunk.as_nanos().max(1)).max(1) as u64),
            ping_phase: i as u64,
            rendered: rendered.clone(),
            totals: totals.clone(),
            ws_url: ws_url.clone(),
            http_base: http_base.clone(),
            http: http.clone(),
            auth: cfg.auth.clone(),
            api_token: cfg.api_token.clone(),
            transcript: transcript.clone(),
            rate: cfg.rate,
            jitter_ms: cfg.jitter_ms,
            rng: Rng::new(
                cfg.seed
                    .wrapping_add(i as u64)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
        };
        tasks.spawn(async move {
            tokio::time::sleep_until(t0 + offset).await;
            conn.run().await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed();
    if let Some(s) = sampler {
        s.abort();
    }
    // The gateway updates its counters when a call's task ends, right after the close frame.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape(&http, &metrics_url).await;
    if let Some(w) = watcher {
        w.abort();
    }

    let t = &totals;
    let mut report = SimReport {
        provider: cfg.provider,
        calls: cfg.calls,
        opened: t.opened.load(Ordering::Relaxed),
        refused: t.refused.load(Ordering::Relaxed),
        failed: t.failed.load(Ordering::Relaxed),
        completed: t.completed.load(Ordering::Relaxed),
        ended_otherwise: t.ended_otherwise.load(Ordering::Relaxed),
        peak_concurrent: t.peak.load(Ordering::Relaxed),
        messages_sent: t.messages.load(Ordering::Relaxed),
        send_lag: t.send_lag.percentiles(),
        outside: OutsideView {
            ping_rtt: t.ping_rtt.percentiles(),
            pings_sent: t.pings_sent.load(Ordering::Relaxed),
            pongs_received: t.pongs.load(Ordering::Relaxed),
            setup: t.setup.percentiles(),
            handoff_observed: watch.latency.percentiles(),
            handoffs_observed: watch.seen.load(Ordering::Relaxed),
            events_watched: watch.watching.load(Ordering::Relaxed),
        },
        transcript_accepted: t.transcript_accepted.load(Ordering::Relaxed),
        wall_s: wall.as_secs_f64(),
        generator_cpu_pct: match (self_cpu_before, proc_cpu_ticks_self()) {
            (Some(a), Some(b)) => cpu_pct(b.saturating_sub(a), wall),
            _ => 0.0,
        },
        server: None,
        server_process: None,
        steady: None,
    };
    if let Some(task) = steady_task
        && let Ok((from, to, a, b)) = task.await
    {
        report.steady = Some(steady_state(from, to, &a, &b, rss_before));
    }
    if let (Some(b), Some(a)) = (before, after) {
        report.server = Some(server_delta(&b, &a));
    }
    if let Some(pid) = cfg.server_pid {
        let cpu = match (cpu_before, proc_cpu_ticks(pid)) {
            (Some(a), Some(b)) => cpu_pct(b.saturating_sub(a), wall),
            _ => 0.0,
        };
        let peak = rss_peak.load(Ordering::Relaxed);
        let calls = report.peak_concurrent.max(1);
        report.server_process = Some(ProcessStats {
            cpu_pct: cpu,
            rss_before_kib: rss_before,
            rss_peak_kib: peak,
            rss_per_call_kib: peak.saturating_sub(rss_before) as f64 / calls as f64,
        });
    }
    Ok(report)
}

/// Start and end of the all-calls-open window, as offsets from the first connection.
fn steady_window(ramp: Duration, duration: Duration) -> Option<(Duration, Duration)> {
    // A second for the last connections' handshakes; the first call stops at `duration`.
    let from = ramp + Duration::from_secs(2);
    let to = duration.checked_sub(Duration::from_secs(1))?;
    (to >= from + Duration::from_secs(1)).then_some((from, to))
}

/// The gateway seen at one instant.
struct Snapshot {
    at: Instant,
    active: u64,
    cpu_ticks: Option<u64>,
    self_cpu_ticks: Option<u64>,
    ping_rtt: Vec<u64>,
    rss_kib: Option<u64>,
    scrape: Option<Scrape>,
}

impl Snapshot {
    async fn take(
        http: &reqwest::Client,
        metrics_url: &str,
        pid: Option<u32>,
        totals: &Totals,
    ) -> Self {
        Self {
            at: Instant::now(),
            active: totals.active.load(Ordering::Relaxed),
            cpu_ticks: pid.and_then(proc_cpu_ticks),
            self_cpu_ticks: proc_cpu_ticks_self(),
            ping_rtt: totals.ping_rtt.snapshot(),
            rss_kib: pid.and_then(proc_rss_kib),
            scrape: scrape(http, metrics_url).await,
        }
    }
}

fn steady_state(
    from: Duration,
    to: Duration,
    a: &Snapshot,
    b: &Snapshot,
    rss_before_kib: u64,
) -> SteadyState {
    let active = a.active.min(b.active);
    let window = b.at.saturating_duration_since(a.at);
    let cpu = |x: Option<u64>, y: Option<u64>| Some(cpu_pct(y?.saturating_sub(x?), window));
    SteadyState {
        from_s: from.as_secs_f64(),
        to_s: to.as_secs_f64(),
        active_calls: active,
        server: match (&a.scrape, &b.scrape) {
            (Some(x), Some(y)) => Some(server_delta(x, y)),
            _ => None,
        },
        cpu_pct: cpu(a.cpu_ticks, b.cpu_ticks),
        generator_cpu_pct: cpu(a.self_cpu_ticks, b.self_cpu_ticks),
        ping_rtt: outside::window_percentiles(&a.ping_rtt, &b.ping_rtt),
        rss_kib: b.rss_kib,
        rss_per_call_kib: b
            .rss_kib
            .map(|r| r.saturating_sub(rss_before_kib) as f64 / active.max(1) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_buckets() {
        // 100 observations: 50 under 1 ms, 49 in (1, 2], 1 in (2, 4].
        let p = percentiles_from_buckets(&[1.0, 2.0, 4.0, f64::INFINITY], &[50, 99, 100, 100]);
        assert!((p.p50_ms - 1.0).abs() < 1e-9, "{p:?}");
        assert!(p.p90_ms > 1.0 && p.p90_ms < 2.0, "{p:?}");
        assert!((p.p99_ms - 2.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.max_ms, 4.0);
        assert_eq!(p.count, 100);
    }

    #[test]
    fn parses_the_gateways_own_exposition() {
        let m = crate::server::metrics::Metrics::new();
        m.frame_latency.observe(0.0003);
        m.frame_latency.observe(0.0003);
        m.admission_rejections.inc_by(3);
        m.frames
            .get_or_create(&crate::server::metrics::TrackLabel {
                track: "caller".into(),
            })
            .inc_by(7);
        m.frames
            .get_or_create(&crate::server::metrics::TrackLabel {
                track: "agent".into(),
            })
            .inc_by(2);
        let s = parse_metrics(&m.encode());
        assert_eq!(s.sums.get("warmline_admission_rejections"), Some(&3));
        assert_eq!(s.sums.get("warmline_frames"), Some(&9));
        let d = server_delta(&Scrape::default(), &s);
        assert_eq!(d.frame_latency.count, 2);
        // 0.3 ms lies in the (0.2, 0.4] ms bucket.
        assert!(d.frame_latency.p50_ms > 0.2 && d.frame_latency.p50_ms <= 0.4);
    }

    #[test]
    fn proc_stat_parsing_skips_names_with_spaces() {
        let line = "123 (tokio rt) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(parse_stat_ticks(line), Some(300));
    }

    #[test]
    fn media_is_shared_and_only_id_bearing_messages_are_per_call() {
        let cfg = SimConfig {
            provider: Provider::Twilio,
            calls: 1,
            ramp: Duration::ZERO,
            duration: Duration::from_millis(200),
            rate: Rate::Max,
            jitter_ms: 0.0,
            seed: 1,
            base_url: "ws://127.0.0.1:1".into(),
            auth: SimAuth::None,
            api_token: None,
            metrics_url: None,
            server_pid: None,
            pcm: vec![100; 800],
            sample_rate_hz: 8000,
            transcript: Vec::new(),
            ping_interval: None,
            watch_events: false,
        };
        let r = render(&cfg).unwrap();
        let media = r
            .messages
            .iter()
            .filter(|p| matches!(p, Part::Media(_)))
            .count();
        let per_call = r
            .messages
            .iter()
            .filter(|p| matches!(p, Part::PerCall(_)))
            .count();
        // 200 ms of looped 100 ms input = 10 chunks of 20 ms; start and stop carry the id.
        assert_eq!(media, 10);
        assert_eq!(per_call, 2);
    }
}
