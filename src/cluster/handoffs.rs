//! Decided handoffs into the durable JetStream stream, before they are announced.
//!
//! The audio path only `try_submit`s into a bounded queue (full: the call keeps its handoff and
//! offers it again, as with the local bridge). A publisher task stores each one in the stream
//! under `warmline.handoffs.{call id}` with `Nats-Msg-Id` = `handoff_id`, so a repeated publish
//! (retry after a lost ack, a crash between publish and ack) is deduplicated by the server.
//! Only once JetStream has acknowledged it is the `handoff` event announced. A handoff that
//! cannot reach JetStream within `publish_fallback_ms` goes to this instance's own outbox
//! instead: with NATS down a decided handoff is still delivered, never lost, and (as nothing
//! is handed to a disconnected client) not also later through JetStream.

use super::Host;
use super::metrics::ClusterMetrics;
use crate::bridge::{Bridge, HandoffRequest, SubmitError};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest one publish waits for JetStream's ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Publishes in flight at once.
const PUBLISHES_IN_FLIGHT: usize = 64;
/// Handoffs are kept this long in the stream if nobody delivers them.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the stream holds per handoff.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandoffEnvelope {
    /// The request as the local bridge would get it.
    pub request: HandoffRequest,
    /// Wall clock of the decision (for the delivery latency metric).
    pub decided_at_ms: u64,
    /// The deciding instance.
    pub instance: String,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Subjects of the stream.
pub fn stream_subjects(prefix: &str) -> String {
    format!("{prefix}.handoffs.>")
}

/// Creates the stream if it does not exist: work-queue retention (an acked handoff is gone),
/// file storage, a 2-minute duplicate window (the server default).
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    prefix: &str,
) -> Result<stream::Stream, super::ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![stream_subjects(prefix)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: STREAM_MAX_AGE,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| super::ClusterError::Setup(format!("stream {name}: {e}")))
}

/// Handle of the publisher; cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: mpsc::Sender<HandoffEnvelope>,
    instance: String,
}

impl Publisher {
    /// Starts the publisher task.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        js: jetstream::Context,
        prefix: String,
        instance: String,
        capacity: usize,
        fallback_after: Duration,
        fallback: Bridge,
        host: Arc<dyn Host>,
        metrics: ClusterMetrics,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let run = Run {
            js,
            prefix,
            fallback_after,
            fallback,
            host,
            metrics,
        };
        tracker.spawn(run.serve(rx, tracker.clone(), stop));
        Self { tx, instance }
    }

    /// Queues a handoff, waiting for room.
    pub async fn submit(&self, request: HandoffRequest) -> Result<(), SubmitError> {
        self.tx
            .send(self.envelope(request))
            .await
            .map_err(|e| SubmitError::Closed(Box::new(e.0.request)))
    }

    fn envelope(&self, request: HandoffRequest) -> HandoffEnvelope {
        HandoffEnvelope {
            request,
            decided_at_ms: unix_ms(),
            instance: self.instance.clone(),
        }
    }

    /// Queues a handoff without waiting; full: it comes back for the call to keep.
    pub fn try_submit(&self, request: HandoffRequest) -> Result<(), SubmitError> {
        self.tx
            .try_send(self.envelope(request))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(e) => SubmitError::Full(Box::new(e.request)),
                mpsc::error::TrySendError::Closed(e) => SubmitError::Closed(Box::new(e.request)),
            })
    }
}

struct Run {
    js: jetstream::Context,
    prefix: String,
    fallback_after: Duration,
    fallback: Bridge,
    host: Arc<dyn Host>,
    metrics: ClusterMetrics,
}

impl Run {
    async fn serve(
        self,
        mut rx: mpsc::Receiver<HandoffEnvelope>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let run = Arc::new(self);
        let permits = Arc::new(Semaphore::new(PUBLISHES_IN_FLIGHT));
        loop {
            let env = tokio::select! {
                biased;
                e = rx.recv() => e,
                // Still drain what the calls queued: each is a decided handoff.
                () = stop.cancelled() => { rx.close(); rx.recv().await }
            };
            let Some(env) = env else { return };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let run = Arc::clone(&run);
            tracker.spawn(async move {
                run.publish(env).await;
                drop(permit);
            });
        }
    }

    async fn publish(&self, env: HandoffEnvelope) {
        let Some(handoff_id) = env.request.handoff_id().map(str::to_owned) else {
            return;
        };
        let Ok(body) = serde_json::to_vec(&env) else {
            return;
        };
        let subject = format!(
            "{}.handoffs.{}",
            self.prefix,
            super::ownership::escape_id(&env.request.event.call_id)
        );
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let attempt = async {
                // While disconnected the client would keep the publish and send it on
                // reconnect, after the handoff may have gone to the local outbox: it would
                // then be delivered twice. So nothing is handed to the client until it is
                // connected (a publish cut off mid-flight can still be stored late; its
                // redelivery carries the same Idempotency-Key).
                if self.js.client().connection_state() != async_nats::connection::State::Connected {
                    return Err("NATS disconnected".to_owned());
                }
                let ack = self
                    .js
                    .send_publish(
                        subject.clone(),
                        PublishMessage::build()
                            .payload(body.clone().into())
                            .message_id(&handoff_id),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(ACK_TIMEOUT, attempt).await {
                Ok(Ok(ack)) => {
                    self.metrics.handoffs_published.inc();
                    tracing::debug!(%handoff_id, seq = ack.sequence, duplicate = ack.duplicate, "handoff stored in JetStream");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%handoff_id, "handoff not stored in JetStream yet: {e}")
                }
                Err(_) => {
                    tracing::warn!(%handoff_id, "JetStream did not acknowledge the handoff in time")
                }
            }
            if started.elapsed() >= self.fallback_after {
                self.metrics.handoffs_fallback.inc();
                tracing::error!(%handoff_id, "JetStream unreachable; delivering from the local outbox");
                if self.fallback.submit(env.request.clone()).await.is_err() {
                    tracing::error!(%handoff_id, "local bridge closed; the handoff is in the event log only");
                }
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        self.host.emit(env.request.event);
    }
}
