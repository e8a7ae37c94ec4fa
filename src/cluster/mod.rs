//! A fleet of gateways on NATS JetStream (`[cluster]`; absent = one instance, nothing to
//! install).
//!
//! - [`connection`]: the NATS client, reconnecting, with a bounded publish buffer.
//! - [`ownership`]: the KV bucket `calls` (who holds which call, with a TTL).
//! - [`transcripts`]: transcript lines forwarded to the owner.
//! - [`handoffs`]: decided handoffs into a durable stream before they are announced.
//! - [`delivery`]: the shared durable consumer that delivers them (any instance or
//!   `warmline deliver`).
//! - [`fleet`]: every instance's view of who holds which call.
//! - [`events`]: the other instances' calls, scores and handoffs (`{prefix}.events.*`).
//! - [`drain`]: SIGTERM without dropping calls.
//!
//! The gateway reaches its calls through [`Host`], which must not keep the gateway alive.

pub mod config;
pub mod connection;
pub mod delivery;
pub mod drain;
pub mod events;
pub mod fleet;
pub mod handoffs;
pub mod metrics;
pub mod ownership;
pub mod transcripts;

pub use config::ClusterConfig;
pub use metrics::ClusterMetrics;
pub use ownership::{Claim, Owner};

use crate::bridge::{Bridge, BridgeConfig, HandoffRequest, SubmitError};
use crate::detect::TranscriptLine;
use crate::event::Event;
use futures_util::StreamExt as _;
use std::sync::{Arc, Mutex, Weak};

use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// NATS is not reachable.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// `[cluster] nats_url`.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server cannot hold the fleet's state: too old for JetStream KV, or JetStream off.
    #[error("NATS server at {url} cannot run a warmline fleet: {reason}")]
    Server {
        /// `[cluster] nats_url`.
        url: String,
        /// What is missing, naming the server version seen.
        reason: String,
    },
    /// A bucket, stream or consumer cannot be created (JetStream off, an old server, …).
    #[error("NATS JetStream set-up failed: {0}")]
    Setup(String),
}

/// What the cluster needs from the gateway it runs in.
pub trait Host: Send + Sync + 'static {
    /// The transcript queue of a call held here.
    fn transcript_sender(&self, call_id: &str) -> Option<mpsc::Sender<TranscriptLine>>;
    /// Calls held here: (call id, provider, started_at RFC 3339).
    fn local_calls(&self) -> Vec<(String, String, String)>;
    /// Calls open here (media streams, started or not).
    fn open_calls(&self) -> usize;
    /// Announces an event on this instance (event stream, logs, metrics).
    fn emit(&self, event: Event);
    /// What the other instances are shown of the calls held here.
    fn call_summaries(&self) -> Vec<events::CallSummary>;
}

/// A call held by another instance, as this one sees it.
#[derive(Debug, Clone)]
pub struct RemoteCall {
    /// The call.
    pub call_id: String,
    /// Who holds it (the KV bucket).
    pub owner: Owner,
    /// Its latest scores and handoff, once its holder has published them.
    pub summary: Option<events::CallSummary>,
}

/// Where a transcript line for a call held elsewhere went.
#[derive(Debug, Clone, PartialEq)]
pub enum Forward {
    /// Published for this instance, which holds the call.
    Sent(String),
    /// No instance holds the call.
    NoOwner,
    /// NATS cannot be reached to find out or to publish.
    Unavailable(String),
}

/// The running cluster membership; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: ClusterConfig,
    instance: String,
    conn: connection::Connection,
    ownership: ownership::Ownership,
    fleet: fleet::Fleet,
    view: events::RemoteView,
    transcripts: transcripts::Transcripts,
    publisher: handoffs::Publisher,
    drain: drain::Drain,
    host: Arc<dyn Host>,
    metrics: ClusterMetrics,
    stop: CancellationToken,
    tracker: TaskTracker,
    worker: Mutex<Option<delivery::Worker>>,
}

impl Cluster {
    /// Connects, creates the bucket and stream if needed, and starts the refresher, the fleet
    /// view, the handoff publisher and (with `deliver = true`) a delivery worker.
    /// `fallback` is the local bridge for handoffs that cannot reach JetStream.
    pub async fn start(
        cfg: &ClusterConfig,
        bridge: &BridgeConfig,
        fallback: Bridge,
        host: Arc<dyn Host>,
        metrics: ClusterMetrics,
    ) -> Result<Self, ClusterError> {
        let instance = cfg.instance();
        let conn = connection::Connection::open(cfg, &instance, &metrics).await?;
        let ttl = Duration::from_millis(cfg.call_ttl_ms);
        let ownership =
            ownership::Ownership::open(&conn.js, &cfg.calls_bucket, ttl, instance.clone()).await?;
        handoffs::ensure_stream(&conn.js, &cfg.handoff_stream, &cfg.subject_prefix).await?;
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let fleet = fleet::Fleet::default();
        tracker.spawn(
            fleet
                .clone()
                .follow(ownership.store().clone(), stop.clone()),
        );
        let publisher = handoffs::Publisher::start(
            conn.js.clone(),
            cfg.subject_prefix.clone(),
            instance.clone(),
            cfg.publish_buffer,
            Duration::from_millis(cfg.publish_fallback_ms),
            fallback,
            host.clone(),
            metrics.clone(),
            &tracker,
            stop.clone(),
        );
        let view = events::RemoteView::default();
        let sub = conn
            .client
            .subscribe(events::wildcard(&cfg.subject_prefix))
            .await
            .map_err(|e| ClusterError::Connect {
                url: cfg.nats_url.clone(),
                reason: format!("subscribing to the fleet view: {e}"),
            })?;
        tracker.spawn(follow_view(
            sub,
            view.clone(),
            instance.clone(),
            view_ttl(cfg),
            stop.clone(),
        ));
        let worker = if cfg.deliver {
            let h = Arc::clone(&host);
            let emit: delivery::Emit = Arc::new(move |e| h.emit(e));
            Some(
                delivery::Worker::start(worker_settings(cfg, &conn, bridge, emit, &metrics))
                    .await?,
            )
        } else {
            None
        };
        let inner = Arc::new(Inner {
            transcripts: transcripts::Transcripts::new(
                conn.client.clone(),
                cfg.subject_prefix.clone(),
                instance.clone(),
            ),
            cfg: cfg.clone(),
            instance,
            conn,
            ownership,
            fleet,
            view,
            publisher,
            drain: drain::Drain::default(),
            host,
            metrics,
            stop: stop.clone(),
            tracker: tracker.clone(),
            worker: Mutex::new(worker),
        });
        tracker.spawn(refresh(Arc::downgrade(&inner), stop.clone()));
        tracker.spawn(publish_view(Arc::downgrade(&inner), stop));
        tracing::info!(instance = %inner.instance, nats = %cfg.nats_url, "joined the fleet");
        Ok(Self { inner })
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Whether NATS is reachable right now.
    pub fn is_connected(&self) -> bool {
        self.inner.conn.is_connected()
    }

    /// Whether new calls are refused (SIGTERM received).
    pub fn is_draining(&self) -> bool {
        self.inner.drain.is_draining()
    }

    /// Claims a call that just started here; `Err(instance)` when another instance holds it.
    /// With NATS away the call goes on (the refresher registers it once NATS is back).
    pub async fn claim(
        &self,
        call_id: &str,
        provider: &str,
        started_at: &str,
    ) -> Result<(), String> {
        match self
            .inner
            .ownership
            .claim(call_id, provider, started_at)
            .await
        {
            Claim::Owned => {}
            Claim::Taken(other) => {
                self.inner.metrics.ownership_conflicts.inc();
                return Err(other);
            }
            Claim::Unknown(e) => {
                tracing::warn!(%call_id, "ownership not registered (NATS: {e}); the call goes on");
            }
        }
        let m = self.inner.metrics.transcripts_received.clone();
        self.inner
            .transcripts
            .receive(call_id, self.inner.host.clone(), move || {
                m.inc();
            })
            .await;
        Ok(())
    }

    /// Gives up a call that ended here.
    pub fn release(&self, call_id: &str) {
        self.inner.transcripts.stop(call_id);
        let inner = Arc::clone(&self.inner);
        let id = call_id.to_owned();
        self.inner
            .tracker
            .spawn(async move { inner.ownership.release(&id).await });
    }

    /// Queues a decided handoff for JetStream; the cluster announces it once stored.
    pub fn try_submit_handoff(&self, req: HandoffRequest) -> Result<(), SubmitError> {
        self.inner.publisher.try_submit(req)
    }

    /// Queues a decided handoff for JetStream, waiting for room (end of call only).
    pub async fn submit_handoff(&self, req: HandoffRequest) -> Result<(), SubmitError> {
        self.inner.publisher.submit(req).await
    }

    /// Sends a transcript line to the instance holding `call_id`.
    pub async fn forward_transcript(&self, call_id: &str, line: &TranscriptLine) -> Forward {
        let ttl = Duration::from_millis(self.inner.cfg.call_ttl_ms);
        let owner = match self.inner.fleet.owner(call_id, ttl) {
            Some(o) => o,
            None => match self.inner.ownership.owner(call_id).await {
                Ok(Some(o)) => o,
                Ok(None) => return Forward::NoOwner,
                Err(e) => return Forward::Unavailable(e),
            },
        };
        if owner.instance == self.inner.instance {
            // Registered here but no longer open here: it ended.
            return Forward::NoOwner;
        }
        match self.inner.transcripts.forward(call_id, line).await {
            Ok(()) => {
                self.inner.metrics.transcripts_forwarded.inc();
                Forward::Sent(owner.instance)
            }
            Err(e) => {
                self.inner.metrics.publish_failures.inc();
                Forward::Unavailable(e)
            }
        }
    }

    /// Calls held by the other instances, with their scores once published.
    pub fn remote_calls(&self) -> Vec<RemoteCall> {
        let ttl = Duration::from_millis(self.inner.cfg.call_ttl_ms);
        let view_ttl = view_ttl(&self.inner.cfg);
        self.inner
            .fleet
            .others(&self.inner.instance, ttl)
            .into_iter()
            .map(|(call_id, owner)| RemoteCall {
                summary: self.inner.view.get(&call_id, &owner.instance, view_ttl),
                call_id,
                owner,
            })
            .collect()
    }

    /// Stops admitting calls and waits (up to `drain_timeout_ms`) for the open ones to end.
    pub async fn drain(&self) {
        let host = Arc::clone(&self.inner.host);
        let open = move || host.open_calls();
        let timeout = Duration::from_millis(self.inner.cfg.drain_timeout_ms);
        let left = self.inner.drain.run(open, timeout).await;
        if left > 0 {
            tracing::warn!(
                open = left,
                "drain timeout over; closing the remaining calls"
            );
        }
    }

    /// Stops the worker (its unfinished handoffs go back to JetStream), publishes what the
    /// calls queued, and flushes the client.
    pub async fn shutdown(&self, grace: Duration) {
        let worker = self.inner.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = worker {
            w.shutdown(grace).await;
        }
        self.inner.stop.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(grace, self.inner.tracker.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.conn.client.flush()).await;
    }
}

/// The worker of `serve` and of `warmline deliver`.
pub fn worker_settings(
    cfg: &ClusterConfig,
    conn: &connection::Connection,
    bridge: &BridgeConfig,
    emit: delivery::Emit,
    metrics: &ClusterMetrics,
) -> delivery::WorkerSettings {
    delivery::WorkerSettings {
        js: conn.js.clone(),
        stream: cfg.handoff_stream.clone(),
        ack_wait: Duration::from_millis(cfg.ack_wait_ms),
        max_deliveries: cfg.max_deliveries,
        bridge: bridge.clone(),
        emit,
        metrics: metrics.clone(),
    }
}

/// A published summary is shown for three publishing periods (at least 3 s): one lost message
/// does not blank a call, and a dead instance's scores vanish soon after.
fn view_ttl(cfg: &ClusterConfig) -> Duration {
    Duration::from_millis((cfg.view_interval_ms * 3).max(3000))
}

/// Publishes this instance's calls every `view_interval_ms` (nothing while NATS is away: the
/// next period after reconnecting brings the view up to date).
async fn publish_view(inner: Weak<Inner>, stop: CancellationToken) {
    let Some((period, subject, ttl)) = inner.upgrade().map(|i| {
        (
            Duration::from_millis(i.cfg.view_interval_ms),
            events::subject(&i.cfg.subject_prefix, &i.instance),
            view_ttl(&i.cfg),
        )
    }) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.view.expire(ttl);
        if !inner.conn.is_connected() {
            continue;
        }
        for msg in events::messages(&inner.instance, inner.host.call_summaries()) {
            let Ok(bytes) = serde_json::to_vec(&msg) else {
                continue;
            };
            if let Err(e) = inner
                .conn
                .client
                .publish(subject.clone(), bytes.into())
                .await
            {
                tracing::debug!("fleet view not published: {e}");
                break;
            }
        }
    }
}

/// Follows the other instances' views until `stop` (the client re-subscribes after outages).
async fn follow_view(
    mut sub: async_nats::Subscriber,
    view: events::RemoteView,
    me: String,
    ttl: Duration,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return,
            m = sub.next() => m,
        };
        let Some(msg) = msg else { return };
        view.apply(&me, &msg.payload, ttl);
    }
}

/// Keeps this instance's calls alive in the bucket: every third of the TTL, each is rewritten.
async fn refresh(inner: Weak<Inner>, stop: CancellationToken) {
    let Some(period) = inner
        .upgrade()
        .map(|i| Duration::from_millis(i.cfg.call_ttl_ms / 3))
    else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let calls = inner.host.local_calls();
        futures_util::stream::iter(calls)
            .for_each_concurrent(64, |(id, provider, started)| {
                let inner = Arc::clone(&inner);
                async move { inner.ownership.refresh(&id, &provider, &started).await }
            })
            .await;
    }
}
