//! The gateway shell: HTTP and WebSocket routes, upgrade authentication and admission, the
//! call registry behind `GET /v1/calls` and transcript posts, event fan-out, and graceful
//! shutdown. All audio work happens in the pure pipeline; this module only moves bytes.

mod audiosocket;
pub mod auth;
mod call;
mod cluster_host;
mod conn;
mod dashboard;
mod events;
mod gateway;
pub mod metrics;
mod playbook;
mod providers_http;
mod providers_plivo;
mod routes;
mod ws_fault;

use crate::bridge::{Bridge, HandoffRequest, WarmTransfers};
use crate::config::Config;
use crate::detect::TranscriptLine;
use crate::event::{Event, EventKind, Signal};
use crate::pipeline::PipelineSettings;
pub use gateway::{Gateway, serve};
use metrics::Metrics;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one active call shows to `GET /v1/calls` and the dashboard.
#[derive(Debug, Clone)]
pub struct CallView {
    /// The provider.
    pub provider: crate::protocol::Provider,
    /// Wall-clock start (for people; media time drives everything else).
    pub started_at: SystemTime,
    /// Latest value of each signal.
    pub scores: BTreeMap<Signal, f64>,
    /// The handoff event, once decided.
    pub handoff: Option<Event>,
    /// Media ms so far.
    pub t_ms: u64,
}

#[derive(Debug)]
struct CallEntry {
    view: CallView,
    transcript: mpsc::Sender<TranscriptLine>,
}

/// Shared state of the gateway; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    settings: Arc<PipelineSettings>,
    admission: Arc<Semaphore>,
    calls: Mutex<HashMap<String, CallEntry>>,
    bridge: Bridge,
    warm: WarmTransfers,
    events: broadcast::Sender<Arc<Event>>,
    metrics: Metrics,
    recent_handoffs: dashboard::RecentHandoffs,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Names this process's connections, for providers whose stream may not name its call.
    connection_prefix: String,
    connections: std::sync::atomic::AtomicU64,
    /// Features-only call records and feedback; `None` when `[store] path = ""` or it failed
    /// to open.
    store: Option<crate::store::Store>,
    recorder: Mutex<crate::store::recorder::Recorder>,
    /// Fleet membership, with `[cluster]`.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    /// The `max_connections` places every listener (HTTP/WebSocket, AudioSocket) takes from,
    /// so the descriptor budget holds whichever way calls arrive; sized on first use.
    connection_slots: std::sync::OnceLock<Arc<Semaphore>>,
}

impl AppState {
    /// State for a gateway with this configuration and bridge handle.
    /// Live handoff ids are random: see [`crate::detect::policy::HandoffIds`].
    pub fn new(cfg: Config, settings: PipelineSettings, bridge: Bridge) -> Self {
        Self::with_warm(cfg, settings, bridge, WarmTransfers::default())
    }

    /// State whose Twilio handoffs are tracked by `warm`; handoff ids are random as in
    /// [`Self::new`].
    pub fn with_warm(
        cfg: Config,
        mut settings: PipelineSettings,
        bridge: Bridge,
        warm: WarmTransfers,
    ) -> Self {
        settings.detector.handoff_ids = crate::detect::policy::HandoffIds::Random;
        let (events, _) = broadcast::channel(4096);
        let store = open_store(&cfg);
        let recorder = Mutex::new(crate::store::recorder::Recorder::new(&settings.detector));
        let mut metrics = Metrics::new();
        let (write_errors, held) = bridge.metric_handles();
        metrics.register_outbox(write_errors, held);
        Self {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(cfg.server.max_calls)),
                cfg,
                settings: Arc::new(settings),
                calls: Mutex::new(HashMap::new()),
                bridge,
                warm,
                events,
                metrics,
                recent_handoffs: dashboard::RecentHandoffs::default(),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                // Start time in ms keeps ids from a restarted gateway apart from the last run's.
                connection_prefix: format!(
                    "{:x}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis())
                ),
                connections: std::sync::atomic::AtomicU64::new(1),
                store,
                recorder,
                cluster: std::sync::OnceLock::new(),
                connection_slots: std::sync::OnceLock::new(),
            }),
        }
    }

    /// A name for a new connection, unique within this process and across restarts.
    pub(crate) fn next_connection_id(&self) -> String {
        let n = self
            .inner
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n}", self.inner.connection_prefix)
    }

    /// `[server] max_connections`, or its default from the process's open-file limit.
    pub fn max_connections(&self) -> usize {
        self.inner.cfg.server.max_connections.unwrap_or_else(|| {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            crate::config::derived_max_connections(soft)
        })
    }

    /// The connection places shared by every listener (see `Inner::connection_slots`).
    pub(crate) fn connection_slots(&self) -> Arc<Semaphore> {
        self.inner
            .connection_slots
            .get_or_init(|| Arc::new(Semaphore::new(self.max_connections())))
            .clone()
    }

    /// Checks a Twilio `start` against `[auth.twilio]`: the account, and the per-call token
    /// when a secret is configured. `Err` carries the close reason (1008).
    fn check_start(
        &self,
        provider: crate::protocol::Provider,
        start: &crate::protocol::StreamStart,
    ) -> Result<(), &'static str> {
        let a = &self.inner.cfg.auth;
        if !a.required || provider != crate::protocol::Provider::Twilio {
            return Ok(());
        }
        let Some(tw) = &a.twilio else { return Ok(()) };
        let res = auth::check_twilio_start(
            tw.account_sid.as_deref(),
            tw.call_token_secret.as_deref(),
            start.account_id.as_deref(),
            &start.call_id,
            start
                .custom_parameters
                .get(auth::CALL_TOKEN_PARAMETER)
                .map(String::as_str),
        );
        if let Err((reason, _)) = &res {
            self.inner
                .metrics
                .auth_rejections
                .get_or_create(&metrics::AuthLabels {
                    provider,
                    reason: (*reason).to_owned(),
                })
                .inc();
        }
        res.map_err(|(_, message)| message)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// Fleet membership, when `[cluster]` is configured.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.get()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The warm-transfer tracker: transfer outcomes by handoff id.
    pub fn warm(&self) -> &WarmTransfers {
        &self.inner.warm
    }

    /// Subscribes to every event the gateway emits.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.events.subscribe()
    }

    /// Token cancelled when the gateway shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Snapshot of active calls, hottest (highest tone score) first.
    pub fn calls(&self) -> Vec<(String, CallView)> {
        let mut v: Vec<(String, CallView)> = match self.inner.calls.lock() {
            Ok(m) => m.iter().map(|(k, e)| (k.clone(), e.view.clone())).collect(),
            Err(_) => Vec::new(),
        };
        v.sort_by(|a, b| {
            let sa = a.1.scores.get(&Signal::Tone).copied().unwrap_or(0.0);
            let sb = b.1.scores.get(&Signal::Tone).copied().unwrap_or(0.0);
            sb.total_cmp(&sa).then_with(|| a.0.cmp(&b.0))
        });
        v
    }

    fn register(
        &self,
        call_id: &str,
        view: CallView,
        transcript: mpsc::Sender<TranscriptLine>,
    ) -> bool {
        let Ok(mut m) = self.inner.calls.lock() else {
            return false;
        };
        if m.contains_key(call_id) {
            return false;
        }
        m.insert(call_id.to_owned(), CallEntry { view, transcript });
        true
    }

    fn update(&self, call_id: &str, f: impl FnOnce(&mut CallView)) {
        if let Ok(mut m) = self.inner.calls.lock()
            && let Some(e) = m.get_mut(call_id)
        {
            f(&mut e.view);
        }
    }

    fn unregister(&self, call_id: &str) {
        if let Ok(mut m) = self.inner.calls.lock() {
            m.remove(call_id);
        }
    }

    /// The call's transcript queue and its media clock (ms, as of its last events).
    fn transcript_sender(&self, call_id: &str) -> Option<(mpsc::Sender<TranscriptLine>, u64)> {
        self.inner
            .calls
            .lock()
            .ok()?
            .get(call_id)
            .map(|e| (e.transcript.clone(), e.view.t_ms))
    }

    /// The store, when on.
    pub fn store(&self) -> Option<&crate::store::Store> {
        self.inner.store.as_ref()
    }

    /// The detector settings calls run with.
    pub fn settings(&self) -> &PipelineSettings {
        &self.inner.settings
    }

    /// Feeds the call recorder; queues what it writes.
    fn record(&self, e: &Event) {
        use crate::store::recorder::Write;
        let Some(store) = &self.inner.store else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let write = match self.inner.recorder.lock() {
            Ok(mut r) => r.on_event(e, now),
            Err(_) => None,
        };
        let queued = match write {
            None => true,
            Some(Write::Handoff(id, call, reason, json)) => {
                store.submit(move |db| db.put_handoff(&id, &call, &reason, &json))
            }
            Some(Write::Outcome(id, outcome)) => {
                store.submit(move |db| db.set_outcome(&id, outcome))
            }
            Some(Write::Call(rec)) => {
                let outcome = if rec.handoff_id.is_some() {
                    "handed_off"
                } else {
                    "contained"
                };
                // Topic names come from the configuration: the label set is bounded.
                let m = &self.inner.metrics.calls_by_topic;
                for t in rec.topics.iter().chain(&rec.flagged) {
                    m.get_or_create(&metrics::TopicOutcomeLabels {
                        topic: t.clone(),
                        outcome: outcome.to_owned(),
                    })
                    .inc();
                }
                if rec.topics.is_empty() && rec.flagged.is_empty() {
                    m.get_or_create(&metrics::TopicOutcomeLabels {
                        topic: "none".into(),
                        outcome: outcome.to_owned(),
                    })
                    .inc();
                }
                store.submit(move |db| db.put_call(&rec))
            }
        };
        if !queued {
            self.inner.metrics.store_dropped.inc();
        }
    }

    /// Publishes events to subscribers and logs; counts signals and handoffs.
    fn publish(&self, events: &mut Vec<Event>) {
        for e in events.drain(..) {
            self.record(&e);
            match &e.kind {
                EventKind::Prosody(_) => {}
                EventKind::Signal(s) => {
                    self.inner
                        .metrics
                        .signal_crossings
                        .get_or_create(&metrics::SignalLabel {
                            signal: s.signal.name().to_owned(),
                        })
                        .inc();
                    log_event(&e);
                }
                EventKind::Handoff(h) => {
                    let reason = h.reasons.first().map_or("unknown", |r| r.signal.name());
                    let m = &self.inner.metrics;
                    m.handoffs
                        .get_or_create(&metrics::ReasonLabel {
                            reason: reason.to_owned(),
                        })
                        .inc();
                    m.handoff_after_start.observe(e.t_ms as f64 / 1000.0);
                    let first = h
                        .reasons
                        .iter()
                        .map(|r| r.evidence.from_ms)
                        .min()
                        .unwrap_or(e.t_ms);
                    m.handoff_after_first_crossing
                        .observe(e.t_ms.saturating_sub(first) as f64 / 1000.0);
                    log_event(&e);
                }
                EventKind::HandoffDelivered(d) | EventKind::HandoffFailed(d) => {
                    let outcome = if matches!(e.kind, EventKind::HandoffDelivered(_)) {
                        "delivered"
                    } else {
                        "failed"
                    };
                    let labels = metrics::TargetLabels {
                        target: d.target.clone(),
                        outcome: outcome.to_owned(),
                    };
                    self.inner.metrics.deliveries.get_or_create(&labels).inc();
                    if outcome == "failed" && d.target != "webhook" {
                        // The caller could not be moved at all: a transfer that failed.
                        self.inner
                            .metrics
                            .transfers
                            .get_or_create(&metrics::TransferLabels {
                                provider: d.target.clone(),
                                outcome: "failed".to_owned(),
                            })
                            .inc();
                    }
                    self.inner
                        .metrics
                        .delivery_attempts
                        .get_or_create(&labels)
                        .inc_by(u64::from(d.attempts));
                    log_event(&e);
                }
                EventKind::HandoffConnected(_)
                | EventKind::HandoffFallback(_)
                | EventKind::HandoffAbandoned(_) => {
                    self.inner.metrics.on_transfer_event(&e.kind);
                    log_event(&e);
                }
                _ => log_event(&e),
            }
            self.inner.warm.on_event(&e);
            self.inner
                .recent_handoffs
                .on_event(&self.inner.cfg.bridge, &self.inner.metrics, &e);
            // No subscribers is fine.
            let _ = self.inner.events.send(Arc::new(e));
        }
    }

    /// Starts tracking a warm transfer for `req` (idempotent: a retried submission keeps the
    /// first). Every submission path calls it before the bridge or the fleet sees the request,
    /// so the transfer exists when the delivery result comes back.
    fn register_warm(&self, req: &HandoffRequest) {
        self.inner.warm.register(req, &self.inner.cfg.bridge);
    }

    /// Hands a decided handoff to the bridge and returns once it is durable (group commit: a
    /// few ms) or, if the outbox cannot take it within the bridge's bounded wait, once the
    /// bridge keeps it in memory (counted, `/healthz` degraded, retried). Never drops it.
    async fn persist_handoff(&self, req: HandoffRequest) {
        let id = handoff_id(&req.event).to_owned();
        self.register_warm(&req);
        match self.inner.bridge.submit(req).await {
            Ok(crate::bridge::Durability::Held) => {
                tracing::error!(handoff_id = %id, "handoff not yet durable; delivered from memory, outbox write retried");
            }
            Ok(_) => {}
            Err(crate::bridge::SubmitError::Closed(r) | crate::bridge::SubmitError::Full(r)) => {
                // Only during shutdown, after every call has finished: nothing can reach here.
                tracing::error!(handoff_id = %handoff_id(&r.event), "bridge closed; handoff not delivered (it is in the event log)");
            }
        }
    }

    /// Queues a handoff, waiting for room (end of call only).
    async fn submit_handoff_waiting(
        &self,
        req: HandoffRequest,
    ) -> Result<(), crate::bridge::SubmitError> {
        match self.cluster() {
            Some(c) => {
                self.register_warm(&req);
                c.submit_handoff(req).await
            }
            None => {
                self.persist_handoff(req).await;
                Ok(())
            }
        }
    }

    /// Fleet mode: hands a handoff to the cluster's publisher without waiting. Without
    /// `[cluster]` the call persists through [`Self::persist_handoff`] instead; a request that
    /// lands here anyway is handed back for the call to keep.
    fn submit_handoff(&self, req: HandoffRequest) -> Result<(), Box<HandoffRequest>> {
        let Some(c) = self.cluster() else {
            return Err(Box::new(req));
        };
        self.register_warm(&req);
        match c.try_submit_handoff(req) {
            Ok(()) => Ok(()),
            Err(crate::bridge::SubmitError::Full(r)) => {
                self.inner.metrics.bridge_queue_full.inc();
                tracing::warn!(handoff_id = %handoff_id(&r.event), "bridge queue full; the call keeps the handoff and retries");
                Err(r)
            }
            Err(crate::bridge::SubmitError::Closed(r)) => Err(r),
        }
    }

    /// The bridge's health, for `/healthz`.
    pub fn bridge_health(&self) -> crate::bridge::BridgeHealth {
        self.inner.bridge.health()
    }
}

/// Opens `[store] path`; a store that cannot open is logged and left off (calls still run).
fn open_store(cfg: &Config) -> Option<crate::store::Store> {
    let s = &cfg.store;
    if s.path.trim().is_empty() {
        return None;
    }
    match crate::store::Store::open(Path::new(&s.path), s.retention_days, s.max_calls) {
        Ok(st) => Some(st),
        Err(e) => {
            tracing::error!(path = %s.path, error = %e, "call-record store unavailable; running without it");
            None
        }
    }
}

fn handoff_id(e: &Event) -> &str {
    match &e.kind {
        EventKind::Handoff(h) => &h.handoff_id,
        _ => "",
    }
}

fn log_event(e: &Event) {
    match serde_json::to_string(e) {
        Ok(json) => tracing::info!(target: "warmline::event", call_id = ?e.call_id, "{json}"),
        Err(err) => tracing::warn!(call_id = ?e.call_id, "event not serialisable: {err}"),
    }
}

/// The gateway failed to start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The handoff bridge could not start (outbox not writable, bad `[bridge]` settings).
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    /// `[cluster]` is set and NATS JetStream cannot be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}
