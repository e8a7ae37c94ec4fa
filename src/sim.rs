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

mod outside;

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

struct Conn {
    call_id: String,
    rendered: Arc<Rendered>,
    totals: Arc<Totals>,
    ws_url: Arc<str>,
    http_base: Arc<str>,
    http: reqwest::Client,
    auth: SimAuth,
    api_token: Option<String>,
    transcript: Arc<Vec<TranscriptLine>>,
    rate: Rate,
    jitter_ms: f64,
    rng: Rng,
    /// Where to note when this call's media began (when handoffs are watched).
    origins: Option<Arc<MediaOrigins>>,
    /// A ping after every this many media frames.
    ping_every: Option<u64>,
    /// Spreads the connections' pings over the interval.
    ping_phase: u64,
}

enum Outcome {
    Completed,
    Other,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Conn {
    async fn run(mut self) {
        let t = self.totals.clone();
        let Ok(mut req) = self.ws_url.as_ref().into_client_request() else {
            t.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let header = match &self.auth {
            SimAuth::None => None,
            SimAuth::Twilio(token) => Some((
                "x-twilio-signature",
                crate::server::auth::twilio_signature(token, &self.ws_url, &[]),
            )),
            SimAuth::Bearer(token) => Some(("authorization", format!("Bearer {token}"))),
        };
        if let Some((name, value)) = header
            && let Ok(v) = value.parse()
        {
            req.headers_mut().insert(name, v);
        }
        let connecting = Instant::now();
        // A provider streams small messages every 20 ms: with Nagle on, each waits for the ACK
        // of the previous one, which the gateway delays (it rarely writes), adding tens of ms.
        let ws = match tokio_tungstenite::connect_async_with_config(req, None, true).await {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(resp)) if resp.status().as_u16() == 503 => {
                t.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::debug!("connect failed: {e}");
                t.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        t.opened.fetch_add(1, Ordering::Relaxed);
        let now = t.active.fetch_add(1, Ordering::Relaxed) + 1;
        t.peak.fetch_max(now, Ordering::Relaxed);
        let outcome = self.stream(ws, connecting).await;
        t.active.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Completed => t.completed.fetch_add(1, Ordering::Relaxed),
            Outcome::Other => t.ended_otherwise.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Sends the call while reading the gateway's replies (pongs, the close frame) on the same
    /// connection, then waits for the close.
    async fn stream(&mut self, ws: WsStream, connecting: Instant) -> Outcome {
        let (mut tx, mut rx) = ws.split();
        let totals = self.totals.clone();
        let reader = read_replies(&mut rx, &totals);
        tokio::pin!(reader);
        let sent_all = {
            let sender = self.send_all(&mut tx, connecting);
            tokio::pin!(sender);
            tokio::select! {
                ok = &mut sender => ok,
                // The gateway closed (or the socket broke) before the stop was out.
                _ = &mut reader => return Outcome::Other,
            }
        };
        if !sent_all {
            return Outcome::Other;
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), &mut reader).await;
        // Flushes tungstenite's reply to the gateway's close frame.
        let _ = tx.close().await;
        match closed {
            Ok(Some(1000)) => Outcome::Completed,
            _ => Outcome::Other,
        }
    }

    /// Every message of the call, paced; pings between media frames. False when a send failed.
    async fn send_all(
        &mut self,
        tx: &mut futures_util::stream::SplitSink<WsStream, Message>,
        connecting: Instant,
    ) -> bool {
        let rendered = self.rendered.clone();
        let chunk = rendered.chunk;
        let mut tick = tokio::time::interval(chunk);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0u64;
        let mut media_sent = 0u64;
        let mut lag = LocalHist::default();
        let mut poster = None;
        let mut ok = true;
        for part in &rendered.messages {
            let msg = match part {
                Part::PerCall(m) => {
                    let m = match m {
                        WireMessage::Text(s) => {
                            WireMessage::Text(s.replace(PLACEHOLDER_CALL_ID, &self.call_id))
                        }
                        WireMessage::Binary(b) => WireMessage::Binary(b.clone()),
                    };
                    to_message(m)
                }
                Part::Shared(m) => m.clone(),
                Part::Media(m) => {
                    let mut due = Instant::now();
                    if self.rate == Rate::Realtime {
                        let mut at = tick.tick().await;
                        if self.jitter_ms > 0.0 {
                            let j = f64::from(self.rng.next_f32()) * self.jitter_ms;
                            at += Duration::from_secs_f64(j / 1000.0);
                            tokio::time::sleep_until(at).await;
                        }
                        lag.record(at.elapsed());
                        due = at.into_std();
                    }
                    if media_sent == 0 {
                        self.totals.setup.record(connecting.elapsed());
                        if let Some(o) = &self.origins {
                            o.insert(&self.call_id, due);
                        }
                    }
                    m.clone()
                }
            };
            if tx.send(msg).await.is_err() {
                ok = false;
                break;
            }
            sent += 1;
            if let Part::Media(_) = part {
                media_sent += 1;
                if let Some(every) = self.ping_every
                    && (media_sent + self.ping_phase).is_multiple_of(every)
                {
                    let stamp = self.totals.epoch.elapsed().as_micros() as u64;
                    let ping = Message::Ping(Bytes::copy_from_slice(&stamp.to_be_bytes()));
                    if tx.send(ping).await.is_err() {
                        ok = false;
                        break;
                    }
                    self.totals.pings_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Transcript lines need the call registered: post them once the start is out.
            if poster.is_none() && matches!(part, Part::PerCall(_)) && !self.transcript.is_empty() {
                poster = Some(tokio::spawn(post_transcript(
                    self.http.clone(),
                    format!("{}/v1/calls/{}/transcript", self.http_base, self.call_id),
                    self.api_token.clone(),
                    self.transcript.clone(),
                    self.rate,
                    self.totals.clone(),
                )));
            }
        }
        let t = &self.totals;
        t.messages.fetch_add(sent, Ordering::Relaxed);
        t.send_lag.merge(&lag);
        if let Some(p) = poster {
            p.abort();
        }
        ok
    }
}

/// Reads what the gateway sends on a media stream until it closes: pongs are timed against
/// the stamp their ping carried. The close code, if a close frame came.
async fn read_replies(
    rx: &mut futures_util::stream::SplitStream<WsStream>,
    t: &Totals,
) -> Option<u16> {
    while let Some(m) = rx.next().await {
        match m {
            Ok(Message::Pong(p)) => {
                let now_us = t.epoch.elapsed().as_micros() as u64;
                if let Ok(stamp) = <[u8; 8]>::try_from(p.as_ref()) {
                    let rtt_us = now_us.saturating_sub(u64::from_be_bytes(stamp));
                    t.ping_rtt.record(Duration::from_micros(rtt_us));
                    t.pongs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

async fn post_transcript(
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    lines: Arc<Vec<TranscriptLine>>,
    rate: Rate,
    totals: Arc<Totals>,
) {
    let start = tokio::time::Instant::now();
    for line in lines.iter() {
        if rate == Rate::Realtime {
            let at = Duration::from_millis(line.t_ms.unwrap_or(0));
            tokio::time::sleep_until(start + at).await;
        }
        let mut req = http.post(&url).json(line);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if let Ok(r) = req.send().await
            && r.status().as_u16() == 202
        {
            totals.transcript_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
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

async fn scrape(http: &reqwest::Client, url: &str) -> Option<Scrape> {
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

fn server_delta(b: &Scrape, a: &Scrape) -> ServerMetrics {
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
fn bucket_delta(before: &[(f64, u64)], after: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(le, c)| {
            let b = before.iter().find(|x| x.0 == le).map_or(0, |x| x.1);
            (le, c.saturating_sub(b))
        })
        .collect()
}

fn percentiles_of(buckets: &[(f64, u64)]) -> Percentiles {
    let bounds: Vec<f64> = buckets.iter().map(|x| x.0).collect();
    let cumulative: Vec<u64> = buckets.iter().map(|x| x.1).collect();
    percentiles_from_buckets(&bounds, &cumulative)
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on every Linux we target).
const CLOCK_TICKS_HZ: f64 = 100.0;

fn cpu_pct(ticks: u64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s <= 0.0 {
        return 0.0;
    }
    ticks as f64 / CLOCK_TICKS_HZ / s * 100.0
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn proc_cpu_ticks_self() -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
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
