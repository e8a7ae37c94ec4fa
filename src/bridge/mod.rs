//! Handoff delivery: a signed webhook and the providers' transfer APIs, with retries, backoff
//! and a persisted outbox so that a decided handoff is never lost, even across restarts.
//!
//! Guarantees: [`Bridge::submit`] returns once the handoff is fsynced in `outbox_dir` (group
//! commit: see [`journal`]); the gateway announces a handoff only after that, so a handoff anyone
//! has seen survives a `kill -9`. If the outbox cannot take it within [`PERSIST_WAIT`] the
//! handoff is delivered from memory, counted as held (`/healthz` degraded) and written as soon
//! as the outbox recovers: never dropped. The state is rewritten after every attempt. Each target (`webhook`, `twilio`, …) is attempted until it answers
//! 2xx, refuses for good (see [`retry::classify_status`]) or `max_attempts` is used up; then a
//! `handoff_delivered`/`handoff_failed` event goes out. A target marked delivered in the file is
//! never called again, also after a restart; an attempt cut short by a crash or by the end of the
//! shutdown grace is repeated, so receivers deduplicate on `Idempotency-Key` (= `handoff_id`).

pub mod ari;
pub mod config;
mod deliver;
pub mod journal;
pub mod outbox;
pub mod retry;
pub mod target;
pub mod transfer;
pub mod wal;
pub mod warm;
pub mod warm_plivo;
pub mod warm_run;
pub mod warm_telnyx;
pub mod warm_twilio;
pub mod warm_vonage;
pub mod webhook;

pub use config::{
    AriMode, AsteriskConfig, BridgeConfig, ConfigError, PlivoConfig, TelnyxConfig, TransferMode,
    TwilioConfig, VonageConfig, WebhookConfig,
};
pub use target::Target;
pub use warm_run::{WarmTask, WarmTransfers};
pub use webhook::{sign, verify};

use crate::event::{Event, EventKind};
use deliver::{Shared, retry_held, spawn_entry};
use journal::Journal;
use outbox::{OUTBOX_VERSION, Op, Outbox, OutboxEntry, OutboxError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
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
    pub provider: crate::protocol::Provider,
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

/// The bridge could not take a handoff.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A bounded queue in front of the bridge (the fleet's publisher) is full; the request
    /// comes back so the caller can keep it and retry.
    #[error("handoff queue full")]
    Full(Box<HandoffRequest>),
    /// The bridge has shut down.
    #[error("bridge closed")]
    Closed(Box<HandoffRequest>),
}

/// What [`Bridge::submit`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// In the outbox (fsynced) and being delivered.
    Persisted,
    /// The outbox could not take it within [`PERSIST_WAIT`]: it is being delivered from memory,
    /// counted in [`BridgeHealth::held`] (`/healthz` degraded) and written as soon as the outbox
    /// accepts writes again.
    Held,
    /// No delivery target is configured (or it is not a handoff): nothing to keep.
    NothingToDeliver,
}

/// Longest a submitter waits for its handoff to be durable before the bridge keeps it in memory.
/// Normally a batch takes a few milliseconds; this bounds how long a dead disk can stall a call.
pub const PERSIST_WAIT: Duration = Duration::from_secs(2);

/// How often held handoffs are offered to the outbox again.
const HELD_RETRY: Duration = Duration::from_millis(500);

/// The bridge cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A `[bridge]` value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The outbox directory cannot be created, written, read or locked.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The HTTP client cannot be built (TLS set-up).
    #[error("cannot build the bridge http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The outbox writer thread cannot be started.
    #[error("cannot start the outbox writer: {0}")]
    Writer(#[source] std::io::Error),
    /// A start-up task died.
    #[error("bridge start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Running totals of the bridge, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Targets delivered (one handoff to two targets counts two).
    pub delivered: AtomicU64,
    /// Targets failed for good.
    pub failed: AtomicU64,
    /// Attempts that did not succeed but will be retried.
    pub retried: AtomicU64,
    /// Handoffs delivered from memory because the outbox could not take them (gauge).
    pub held: Gauge,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// A submission found the outbox queue full and waited.
    pub queue_full: u64,
    /// Targets delivered.
    pub delivered: u64,
    /// Targets failed for good.
    pub failed: u64,
    /// Attempts that will be retried.
    pub retried: u64,
    /// Outbox changes that could not be written.
    pub write_errors: u64,
}

/// Whether the bridge can keep its promise right now, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeHealth {
    /// The last outbox write failed.
    pub write_failing: bool,
    /// Outbox writes that failed since start.
    pub write_errors: u64,
    /// Handoffs only in memory because the outbox could not take them.
    pub held: u64,
    /// The last write error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl BridgeHealth {
    /// A handoff decided now might not survive a crash.
    pub fn is_degraded(&self) -> bool {
        self.write_failing || self.held > 0
    }
}

/// Handle to the bridge; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bridge {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// The running delivery tasks; [`BridgeTask::shutdown`] stops them.
#[derive(Debug)]
pub struct BridgeTask {
    stop: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
    held_task: JoinHandle<()>,
    outbox: Outbox,
}

impl Bridge {
    /// Validates `cfg`, opens and locks the outbox (refusing a directory it cannot write or
    /// another gateway holds), starts its writer and resumes what it holds.
    /// `handoff_delivered`/`handoff_failed` events go to `events`.
    pub async fn start(
        cfg: BridgeConfig,
        events: mpsc::Sender<Event>,
    ) -> Result<(Bridge, BridgeTask), BridgeError> {
        cfg.validate()?;
        let dir = cfg.outbox_dir.clone();
        let (outbox, loaded) = tokio::task::spawn_blocking(move || -> Result<_, OutboxError> {
            let outbox = Outbox::open(dir)?;
            let replayed = wal::recover(&outbox)?;
            if replayed > 0 {
                tracing::info!(changes = replayed, "outbox batch log replayed");
            }
            let loaded = outbox.load_pending()?;
            Ok((outbox, loaded))
        })
        .await??;
        for e in &loaded.corrupt {
            tracing::warn!(error = %e, "outbox file set aside in corrupt/; it will not be delivered");
        }
        if loaded.renamed > 0 {
            tracing::warn!(
                count = loaded.renamed,
                "outbox files named unlike their handoff id were renamed (or removed as duplicates)"
            );
        }
        if !loaded.entries.is_empty() {
            tracing::info!(
                count = loaded.entries.len(),
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

        let journal = Journal::start(outbox.clone(), cfg.queue_capacity.max(1))
            .map_err(BridgeError::Writer)?;
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(Shared {
            counters: Arc::new(Counters::default()),
            http_permits: Semaphore::new(cfg.max_concurrent_requests.max(1)),
            cfg,
            client,
            journal,
            outbox,
            events,
            abort: abort.clone(),
            tracker: tracker.clone(),
            in_flight: StdMutex::new(HashSet::new()),
            held: StdMutex::new(Vec::new()),
        });
        for entry in loaded.entries {
            spawn_entry(&shared, entry);
        }
        let held_task = tokio::spawn(retry_held(Arc::clone(&shared), abort.clone()));
        let bridge = Bridge {
            shared: Arc::clone(&shared),
            stop: stop.clone(),
        };
        Ok((
            bridge,
            BridgeTask {
                stop,
                abort,
                tracker,
                held_task,
                outbox: shared.outbox.clone(),
            },
        ))
    }

    /// Makes a decided handoff durable, then starts delivering it. Returns once the outbox has
    /// fsynced it — normally a few milliseconds, shared with every handoff decided meanwhile
    /// (group commit) — or after [`PERSIST_WAIT`], when it is kept in memory instead
    /// ([`Durability::Held`]): delivered anyway, counted, and written when the outbox recovers.
    /// Never drops a handoff; only a shut-down bridge hands it back.
    pub async fn submit(&self, req: HandoffRequest) -> Result<Durability, SubmitError> {
        if self.stop.is_cancelled() {
            return Err(SubmitError::Closed(Box::new(req)));
        }
        let shared = &self.shared;
        let Some(handoff_id) = req.handoff_id().map(str::to_owned) else {
            tracing::warn!(call_id = %req.event.call_id, "bridge got an event that is not a handoff; ignored");
            return Ok(Durability::NothingToDeliver);
        };
        let targets = Target::for_provider(&shared.cfg, req.provider);
        if targets.is_empty() {
            tracing::debug!(%handoff_id, provider = %req.provider, "no delivery target configured");
            return Ok(Durability::NothingToDeliver);
        }
        if shared.is_in_flight(&handoff_id) {
            tracing::debug!(%handoff_id, "handoff already being delivered; duplicate ignored");
            return Ok(Durability::Persisted);
        }
        let mut entry = OutboxEntry {
            version: OUTBOX_VERSION,
            handoff_id: handoff_id.clone(),
            request: req,
            targets: Default::default(),
        };
        for t in targets {
            entry.targets.entry(t.name().to_owned()).or_default();
        }
        let durability = match shared
            .journal
            .commit_within(Op::Write(entry.clone()), PERSIST_WAIT)
            .await
        {
            Ok(()) => Durability::Persisted,
            Err(e) => {
                tracing::error!(%handoff_id, error = %e, "cannot persist handoff; delivering it from memory and retrying the write");
                Durability::Held
            }
        };
        if let Some(state) = spawn_entry(shared, entry)
            && durability == Durability::Held
        {
            shared.hold(state);
        }
        Ok(durability)
    }

    /// Current totals.
    pub fn stats(&self) -> BridgeStats {
        let c = &self.shared.counters;
        let h = self.shared.journal.health();
        BridgeStats {
            queue_full: h.queue_full(),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            write_errors: h.errors(),
        }
    }

    /// Whether handoffs decided now are durable.
    pub fn health(&self) -> BridgeHealth {
        let h = self.shared.journal.health();
        BridgeHealth {
            write_failing: h.is_failing(),
            write_errors: h.errors(),
            held: u64::try_from(self.shared.counters.held.get()).unwrap_or(0),
            last_error: h.last_error(),
        }
    }

    /// The outbox write-error counter and the held-handoff gauge, for a metrics registry.
    pub fn metric_handles(&self) -> (Counter, Gauge) {
        (
            self.shared.journal.health().errors_counter(),
            self.shared.counters.held.clone(),
        )
    }
}

impl BridgeTask {
    /// Stops taking new work (further submissions get [`SubmitError::Closed`]) and keeps
    /// delivering what was accepted until `grace` is over, then stops the rest at their
    /// next await. Whatever is not delivered stays pending in the outbox for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let BridgeTask {
            stop,
            abort,
            tracker,
            held_task,
            outbox,
        } = self;
        stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
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
        held_task.abort();
        // Another gateway (or this one restarted in-process) may now take the directory.
        outbox.release_lock();
    }
}
