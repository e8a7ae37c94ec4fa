//! The delivery worker: a durable pull consumer (`deliver`, explicit ack) on the handoff stream,
//! shared by every instance that runs one and by `warmline deliver`, so each handoff goes to one
//! worker at a time. Delivery itself is the local bridge (same webhook/transfer code, retry and
//! backoff policy); the message is double-acked only after every target's final verdict
//! (delivered or failed for good). Until then the worker reports progress every third of
//! `ack_wait`; a worker that dies stops doing so and JetStream hands the message to another,
//! which repeats delivery under the same `Idempotency-Key`.

use super::ClusterError;
use super::handoffs::{HandoffEnvelope, unix_ms};
use super::metrics::ClusterMetrics;
use crate::bridge::{Bridge, BridgeConfig, Target};
use crate::event::{Event, EventKind};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Name of the shared durable consumer.
pub const CONSUMER: &str = "deliver";
/// How long one fetch waits for messages.
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

/// Where delivery outcome events go.
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

type Waiters = Arc<Mutex<HashMap<String, (usize, oneshot::Sender<()>)>>>;

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    stop: CancellationToken,
    tracker: TaskTracker,
    bridge_task: crate::bridge::BridgeTask,
}

/// Everything the worker needs.
pub struct WorkerSettings {
    /// JetStream.
    pub js: jetstream::Context,
    /// Stream name.
    pub stream: String,
    /// Ack wait of the consumer.
    pub ack_wait: Duration,
    /// Handoffs delivered at once.
    pub max_deliveries: usize,
    /// Targets, retry policy; `outbox_dir` gets a `jetstream` subfolder of its own.
    pub bridge: BridgeConfig,
    /// Delivery outcomes.
    pub emit: Emit,
    /// Metrics.
    pub metrics: ClusterMetrics,
}

impl Worker {
    /// Creates the consumer if needed and starts fetching.
    pub async fn start(s: WorkerSettings) -> Result<Self, ClusterError> {
        let stream =
            s.js.get_stream(&s.stream)
                .await
                .map_err(|e| ClusterError::Setup(format!("stream {}: {e}", s.stream)))?;
        let consumer = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: s.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: i64::try_from(s.max_deliveries.max(1) * 4).unwrap_or(1024),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ClusterError::Setup(format!("consumer {CONSUMER}: {e}")))?;
        // JetStream holds what is pending; a file left by a killed run would only be delivered
        // a second time next to JetStream's redelivery.
        let mut bridge_cfg = s.bridge.clone();
        bridge_cfg.outbox_dir = bridge_cfg.outbox_dir.join("jetstream");
        let _ = std::fs::remove_dir_all(&bridge_cfg.outbox_dir);
        let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
        let targets_cfg = bridge_cfg.clone();
        let (bridge, bridge_task) = Bridge::start(bridge_cfg, events_tx)
            .await
            .map_err(|e| ClusterError::Setup(format!("delivery bridge: {e}")))?;
        let waiters: Waiters = Arc::default();
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let w = Arc::clone(&waiters);
        let emit = Arc::clone(&s.emit);
        tracker.spawn(async move {
            while let Some(e) = events_rx.recv().await {
                if let EventKind::HandoffDelivered(d) | EventKind::HandoffFailed(d) = &e.kind
                    && let Ok(mut m) = w.lock()
                    && let Some((left, _)) = m.get_mut(&d.handoff_id)
                {
                    *left = left.saturating_sub(1);
                    if *left == 0
                        && let Some((_, done)) = m.remove(&d.handoff_id)
                    {
                        let _ = done.send(());
                    }
                }
                emit(e);
            }
        });
        let fetch = Fetch {
            consumer,
            bridge,
            targets_cfg,
            waiters,
            ack_wait: s.ack_wait,
            permits: Arc::new(Semaphore::new(s.max_deliveries.max(1))),
            metrics: s.metrics,
            tracker: tracker.clone(),
            stop: stop.clone(),
        };
        tracker.spawn(fetch.run());
        Ok(Self {
            stop,
            tracker,
            bridge_task,
        })
    }

    /// Stops fetching, hands back (nak) what is unfinished so other workers take it at once,
    /// and gives the bridge `grace` to finish attempts in flight.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        self.tracker.close();
        self.bridge_task.shutdown(grace).await;
        let _ = tokio::time::timeout(grace.max(Duration::from_secs(1)), self.tracker.wait()).await;
    }
}

struct Fetch {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    bridge: Bridge,
    targets_cfg: BridgeConfig,
    waiters: Waiters,
    ack_wait: Duration,
    permits: Arc<Semaphore>,
    metrics: ClusterMetrics,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Fetch {
    async fn run(self) {
        let this = Arc::new(self);
        while !this.stop.is_cancelled() {
            // Fetch only what there is room to deliver: the rest stays with JetStream for
            // the other workers.
            let room = this.permits.available_permits();
            if room == 0 {
                tokio::select! {
                    () = this.stop.cancelled() => return,
                    p = this.permits.acquire() => drop(p),
                }
                continue;
            }
            let batch = this
                .consumer
                .fetch()
                .max_messages(room.min(64))
                .expires(FETCH_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!("handoff fetch: {e}");
                    tokio::select! {
                        () = this.stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    () = this.stop.cancelled() => return,
                    n = batch.next() => n,
                };
                let Some(Ok(msg)) = next else { break };
                let Ok(permit) = Arc::clone(&this.permits).acquire_owned().await else {
                    return;
                };
                let t = Arc::clone(&this);
                this.tracker.spawn(async move {
                    t.handle(msg).await;
                    drop(permit);
                });
            }
        }
    }

    async fn handle(&self, msg: jetstream::Message) {
        let env: HandoffEnvelope = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("unreadable handoff in JetStream, terminated: {e}");
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        let Some(handoff_id) = env.request.handoff_id().map(str::to_owned) else {
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        };
        let targets = Target::for_provider(&self.targets_cfg, env.request.provider).len();
        if targets == 0 {
            tracing::debug!(%handoff_id, "no delivery target configured; acked");
            let _ = msg.double_ack().await;
            return;
        }
        let (done_tx, mut done_rx) = oneshot::channel();
        {
            let Ok(mut m) = self.waiters.lock() else {
                return;
            };
            if m.contains_key(&handoff_id) {
                // A redelivery of what this worker is still delivering: the first copy acks.
                return;
            }
            m.insert(handoff_id.clone(), (targets, done_tx));
        }
        let _holding = Holding::new(&self.metrics);
        if self.bridge.submit(env.request).await.is_err() {
            self.forget(&handoff_id);
            let _ = msg.ack_with(AckKind::Nak(None)).await;
            return;
        }
        let mut progress = tokio::time::interval(self.ack_wait / 3);
        progress.tick().await;
        loop {
            tokio::select! {
                r = &mut done_rx => {
                    if r.is_err() {
                        // The verdicts never came (bridge stopped): let another worker try.
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        return;
                    }
                    break;
                }
                _ = progress.tick() => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
                () = self.stop.cancelled() => {
                    self.forget(&handoff_id);
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    return;
                }
            }
        }
        for _ in 0..3 {
            if msg.double_ack().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.metrics.handoffs_acked.inc();
        let ms = unix_ms().saturating_sub(env.decided_at_ms);
        self.metrics.handoff_latency.observe(ms as f64 / 1000.0);
    }

    fn forget(&self, handoff_id: &str) {
        if let Ok(mut m) = self.waiters.lock() {
            m.remove(handoff_id);
        }
    }
}

/// Counts a handoff in `handoffs_delivering` while this worker holds it, whatever way
/// [`Fetch::handle`] returns.
struct Holding(prometheus_client::metrics::gauge::Gauge);

impl Holding {
    fn new(m: &ClusterMetrics) -> Self {
        m.handoffs_delivering.inc();
        Self(m.handoffs_delivering.clone())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.dec();
    }
}
