//! Handoff delivery: a signed webhook and the providers' transfer APIs, with retries, backoff
//! and a persisted outbox so that a decided handoff is never lost, even across restarts.
//!
//! Runs as its own task fed by a bounded queue; the audio path only ever `try_submit`s, which
//! never blocks: when the queue is full the request comes back ([`SubmitError::Full`]) for the
//! caller to keep and offer again, and [`Bridge::queue_full_count`] moves.
//!
//! Guarantees: a handoff taken off the queue is written to `outbox_dir` before its first attempt
//! and after every attempt. Each target (`webhook`, `twilio`, …) is attempted until it answers
//! 2xx, refuses for good (see [`retry::classify_status`]) or `max_attempts` is used up; then a
//! `handoff_delivered`/`handoff_failed` event goes out. A target marked delivered in the file is
//! never called again, also after a restart; an attempt cut short by a crash or by the end of the
//! shutdown grace is repeated, so receivers deduplicate on `Idempotency-Key` (= `handoff_id`).

pub mod config;
mod deliver;
pub mod outbox;
pub mod retry;
pub mod target;
pub mod transfer;
pub mod warm;
pub mod warm_run;
pub mod warm_twilio;
pub mod webhook;

pub use config::{
    BridgeConfig, ConfigError, PlivoConfig, TelnyxConfig, TransferMode, TwilioConfig, VonageConfig,
    WebhookConfig,
};
pub use target::Target;
pub use warm_run::{WarmTask, WarmTransfers};
pub use webhook::{sign, verify};

use crate::event::{Event, EventKind};
use deliver::{Shared, run_worker};
use outbox::{Outbox, OutboxError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest connect phase of an attempt; the rest of `request_timeout_ms` is for the answer.
const CONNECT_TIMEOUT_CAP: Duration = Duration::from_secs(3);

/// A handoff to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRequest {
    /// The `handoff` event (its body is what the webhook receives).
    pub event: Event,
    /// The provider the call came from.
    pub provider: String,
}

impl HandoffRequest {
    /// The handoff id, when `event` is a `handoff` (anything else is not deliverable).
    pub fn handoff_id(&self) -> Option<&str> {
        match &self.event.kind {
            EventKind::Handoff(h) => Some(&h.handoff_id),
            _ => None,
        }
    }
}

/// The bridge could not take a handoff right now.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full; the request comes back so the caller can keep it and retry.
    #[error("bridge queue full")]
    Full(Box<HandoffRequest>),
    /// The bridge has shut down.
    #[error("bridge closed")]
    Closed(Box<HandoffRequest>),
}

/// The bridge cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A `[bridge]` value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The outbox directory cannot be created or read.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The HTTP client cannot be built (TLS set-up).
    #[error("cannot build the bridge http client: {0}")]
    Client(#[source] reqwest::Error),
    /// A start-up task died.
    #[error("bridge start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Running totals of the bridge, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// `try_submit` found the queue full.
    pub queue_full: AtomicU64,
    /// Targets delivered (one handoff to two targets counts two).
    pub delivered: AtomicU64,
    /// Targets failed for good.
    pub failed: AtomicU64,
    /// Attempts that did not succeed but will be retried.
    pub retried: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// `try_submit` found the queue full.
    pub queue_full: u64,
    /// Targets delivered.
    pub delivered: u64,
    /// Targets failed for good.
    pub failed: u64,
    /// Attempts that will be retried.
    pub retried: u64,
}

/// Handle to the delivery task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bridge {
    tx: mpsc::Sender<HandoffRequest>,
    counters: Arc<Counters>,
}

/// The running delivery task; [`BridgeTask::shutdown`] stops it.
#[derive(Debug)]
pub struct BridgeTask {
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    worker: JoinHandle<()>,
}

impl Bridge {
    /// Validates `cfg`, opens the outbox (resuming what it holds) and starts the delivery
    /// worker. `handoff_delivered`/`handoff_failed` events go to `events`.
    pub async fn start(
        cfg: BridgeConfig,
        events: mpsc::Sender<Event>,
    ) -> Result<(Bridge, BridgeTask), BridgeError> {
        cfg.validate()?;
        let dir = cfg.outbox_dir.clone();
        let (outbox, (pending, bad)) =
            tokio::task::spawn_blocking(move || -> Result<_, OutboxError> {
                let outbox = Outbox::open(dir)?;
                let loaded = outbox.load_pending()?;
                Ok((outbox, loaded))
            })
            .await??;
        for e in &bad {
            tracing::warn!(error = %e, "outbox entry set aside in failed/");
        }
        if !pending.is_empty() {
            tracing::info!(
                count = pending.len(),
                "resuming pending handoffs from the outbox"
            );
        }
        let timeout = cfg.request_timeout();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT_CAP))
            // A redirected POST would become a GET without the body; see retry::classify_status.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warmline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BridgeError::Client)?;

        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            counters: Arc::clone(&counters),
            http_permits: Semaphore::new(cfg.max_concurrent_requests.max(1)),
            cfg,
            client,
            outbox,
            events,
            abort: abort.clone(),
            tracker: tracker.clone(),
            in_flight: StdMutex::new(HashSet::new()),
        });
        let worker = tokio::spawn(run_worker(shared, rx, pending, stop.clone()));
        let bridge = Bridge { tx, counters };
        Ok((
            bridge,
            BridgeTask {
                stop,
                abort,
                tracker,
                worker,
            },
        ))
    }

    /// A bridge whose queue is drained by nobody but the caller (tests, tools).
    pub fn disconnected(capacity: usize) -> (Self, mpsc::Receiver<HandoffRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                counters: Arc::default(),
            },
            rx,
        )
    }

    /// Queues a handoff without waiting. When the queue is full the request comes back in
    /// [`SubmitError::Full`]; the caller keeps it and offers it again later.
    pub fn try_submit(&self, req: HandoffRequest) -> Result<(), SubmitError> {
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => {
                let n = self.counters.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
                // A caller retrying every audio frame would flood the log; the counter keeps
                // the exact number, the log keeps the 1st, 2nd, 4th, 8th, … occurrence.
                if n.is_power_of_two() {
                    tracing::warn!(
                        handoff_id = r.handoff_id().unwrap_or(""),
                        queue_full_total = n,
                        capacity = self.tx.max_capacity(),
                        "bridge queue full; handoff kept by the call for a later retry"
                    );
                }
                SubmitError::Full(Box::new(r))
            }
            mpsc::error::TrySendError::Closed(r) => SubmitError::Closed(Box::new(r)),
        })
    }

    /// Queues a handoff, waiting for room (end of call only).
    pub async fn submit(&self, req: HandoffRequest) -> Result<(), SubmitError> {
        self.tx
            .send(req)
            .await
            .map_err(|e| SubmitError::Closed(Box::new(e.0)))
    }

    /// How many times [`Self::try_submit`] found the queue full.
    pub fn queue_full_count(&self) -> u64 {
        self.counters.queue_full.load(Ordering::Relaxed)
    }

    /// Current totals.
    pub fn stats(&self) -> BridgeStats {
        let c = &self.counters;
        BridgeStats {
            queue_full: c.queue_full.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }
}

impl BridgeTask {
    /// Stops taking new work (further submissions get [`SubmitError::Closed`]), persists and
    /// keeps delivering what was accepted until `grace` is over, then stops the rest at their
    /// next await. Whatever is not delivered stays pending in the outbox for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let BridgeTask {
            stop,
            abort,
            tracker,
            mut worker,
        } = self;
        stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, &mut worker)
            .await
            .is_err()
        {
            // Still draining a long queue: what is not persisted yet is lost with the process
            // anyway, so stop here rather than overrun the grace.
            tracing::warn!("bridge queue not drained within the shutdown grace");
            worker.abort();
        }
        tracker.close();
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            let open = tracker.len();
            abort.cancel();
            tracker.wait().await;
            tracing::info!(
                handoffs = open,
                "shutdown grace over; undelivered handoffs stay in the outbox"
            );
        }
    }
}
