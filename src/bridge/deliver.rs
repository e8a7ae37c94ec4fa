//! The delivery worker: takes handoffs off the queue, persists them, and drives every target of
//! every handoff through attempts and backoff until delivered, failed or shut down.
//!
//! One task per handoff (its targets run concurrently, so a webhook outage never delays moving
//! the caller); a semaphore bounds HTTP requests in flight. The outbox file is rewritten after
//! every attempt, under the handoff's lock, so a crash at any point loses at most the knowledge
//! of one in-flight attempt (which is then repeated, deduplicated by `Idempotency-Key`).

use super::HandoffRequest;
use super::config::BridgeConfig;
use super::outbox::{OUTBOX_VERSION, Outbox, OutboxEntry, OutboxError, TargetState};
use super::retry::Backoff;
use super::target::{AttemptOutcome, Prepared, Target, attempt};
use crate::event::{Delivery, Event, EventKind};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long an event send may wait for a slow consumer before the event is dropped (logged).
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything the delivery tasks share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) counters: Arc<super::Counters>,
    pub(super) cfg: BridgeConfig,
    pub(super) client: reqwest::Client,
    pub(super) outbox: Outbox,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) http_permits: Semaphore,
    /// Fired when the shutdown grace is over: tasks stop at their next await.
    pub(super) abort: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Handoff ids with a live delivery task, so a duplicate submission is not delivered twice
    /// concurrently. A std mutex: held only for an insert/remove, never across an await.
    pub(super) in_flight: StdMutex<HashSet<String>>,
}

impl Shared {
    fn backoff(&self) -> Backoff {
        Backoff {
            initial_ms: self.cfg.initial_backoff_ms,
            max_ms: self.cfg.max_backoff_ms,
        }
    }

    fn claim(&self, handoff_id: &str) -> bool {
        match self.in_flight.lock() {
            Ok(mut set) => set.insert(handoff_id.to_owned()),
            Err(poisoned) => poisoned.into_inner().insert(handoff_id.to_owned()),
        }
    }

    fn release(&self, handoff_id: &str) {
        match self.in_flight.lock() {
            Ok(mut set) => set.remove(handoff_id),
            Err(poisoned) => poisoned.into_inner().remove(handoff_id),
        };
    }
}

/// Runs file I/O off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("outbox i/o task failed: {e}")),
    }
}

/// The worker: resumes `pending`, then serves the queue until `stop` (or every handle is gone),
/// then takes what is still queued so nothing accepted is lost.
pub(super) async fn run_worker(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<HandoffRequest>,
    pending: Vec<OutboxEntry>,
    stop: CancellationToken,
) {
    for entry in pending {
        spawn_entry(&shared, entry);
    }
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(req) => accept(&shared, req).await,
                None => break,
            },
        }
    }
    rx.close();
    while let Ok(req) = rx.try_recv() {
        accept(&shared, req).await;
    }
}

/// Persists a new handoff and starts delivering it.
async fn accept(shared: &Arc<Shared>, req: HandoffRequest) {
    let Some(handoff_id) = req.handoff_id().map(str::to_owned) else {
        tracing::warn!(
            call_id = %req.event.call_id,
            "bridge got an event that is not a handoff; dropped"
        );
        return;
    };
    let targets = Target::for_provider(&shared.cfg, &req.provider);
    if targets.is_empty() {
        tracing::debug!(%handoff_id, provider = %req.provider, "no delivery target configured");
        return;
    }
    if shared
        .in_flight
        .lock()
        .map(|s| s.contains(&handoff_id))
        .unwrap_or(false)
    {
        tracing::debug!(%handoff_id, "handoff already being delivered; duplicate ignored");
        return;
    }
    // A resubmitted handoff keeps what an earlier run already achieved.
    let outbox = shared.outbox.clone();
    let id = handoff_id.clone();
    let existing = blocking(move || outbox.read_pending(&id))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(%handoff_id, error = %e, "unreadable outbox entry replaced");
            None
        });
    let mut entry = existing.unwrap_or_else(|| OutboxEntry {
        version: OUTBOX_VERSION,
        handoff_id: handoff_id.clone(),
        request: req,
        targets: BTreeMap::new(),
    });
    for t in targets {
        entry.targets.entry(t.name().to_owned()).or_default();
    }
    let outbox = shared.outbox.clone();
    let snapshot = entry.clone();
    if let Err(e) = blocking(move || outbox.write(&snapshot)).await {
        // Delivering without a file beats not delivering; the loss is restart safety only.
        tracing::error!(%handoff_id, error = %e, "cannot persist handoff; delivering without outbox");
    }
    spawn_entry(shared, entry);
}

fn spawn_entry(shared: &Arc<Shared>, entry: OutboxEntry) {
    if !shared.claim(&entry.handoff_id) {
        return;
    }
    let shared2 = Arc::clone(shared);
    shared.tracker.spawn(deliver_entry(shared2, entry));
}

/// Delivers one handoff to all its pending targets, then files it as done or failed.
async fn deliver_entry(shared: Arc<Shared>, entry: OutboxEntry) {
    let handoff_id = entry.handoff_id.clone();
    let body = match serde_json::to_vec(&entry.request.event) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(%handoff_id, error = %e, "cannot serialise handoff event");
            shared.release(&handoff_id);
            return;
        }
    };
    let agent = match &entry.request.event.kind {
        crate::event::EventKind::Handoff(h) => h.route.as_ref().map(|r| r.target.clone()),
        _ => None,
    };
    let prepared = Arc::new(Prepared {
        handoff_id: handoff_id.clone(),
        call_id: entry.request.event.call_id.clone(),
        body,
        agent,
    });
    let t_ms = entry.request.event.t_ms;
    let names: Vec<String> = entry
        .targets
        .iter()
        .filter(|(_, s)| s.is_pending())
        .map(|(n, _)| n.clone())
        .collect();
    let state = Arc::new(Mutex::new(entry));
    let runs = names.into_iter().map(|name| {
        deliver_target(
            Arc::clone(&shared),
            Arc::clone(&state),
            Arc::clone(&prepared),
            t_ms,
            name,
        )
    });
    futures_util::future::join_all(runs).await;

    let entry = state.lock().await.clone();
    if !entry.is_pending() {
        let outbox = shared.outbox.clone();
        let failed = entry.has_failed();
        let res = if failed {
            blocking(move || outbox.move_to_failed(&entry)).await
        } else {
            blocking(move || outbox.remove(&entry.handoff_id)).await
        };
        if let Err(e) = res {
            tracing::warn!(%handoff_id, error = %e, "cannot file finished handoff");
        }
    }
    // Else: aborted by shutdown; the file stays pending and the next start resumes it.
    shared.release(&handoff_id);
}

/// Attempts one target until it is delivered, fails for good, or the bridge aborts.
async fn deliver_target(
    shared: Arc<Shared>,
    state: Arc<Mutex<OutboxEntry>>,
    p: Arc<Prepared>,
    t_ms: u64,
    name: String,
) {
    let target = Target::from_name(&name).filter(|t| t.is_configured(&shared.cfg));
    let seed = format!("{}/{name}", p.handoff_id);
    loop {
        let (attempts, last_status, last_error) = {
            let s = state.lock().await;
            match s.targets.get(&name) {
                Some(t) if t.is_pending() => (t.attempts, t.last_status, t.last_error.clone()),
                _ => return,
            }
        };
        let Some(target) = target else {
            // Left over from a run with other settings: nobody to deliver to any more.
            let error = format!("target `{name}` is not configured");
            finish(&shared, &state, &p, t_ms, &name, |t| {
                t.failed = true;
                t.last_error = Some(error);
            })
            .await;
            return;
        };
        if attempts >= shared.cfg.max_attempts {
            // Attempts were used up before a restart; only the verdict was not written yet.
            finish(&shared, &state, &p, t_ms, &name, |t| {
                t.failed = true;
                t.last_status = last_status;
                t.last_error = last_error;
            })
            .await;
            return;
        }

        let outcome = tokio::select! {
            biased;
            () = shared.abort.cancelled() => return,
            o = async {
                // The semaphore is never closed, so this always yields a permit; if it ever
                // did not, going ahead unthrottled is still better than not delivering.
                let _permit = shared.http_permits.acquire().await;
                attempt(&shared.client, &shared.cfg, target, &p).await
            } => o,
        };
        let attempts = attempts + 1;
        let retry_after_s = match &outcome {
            AttemptOutcome::Delivered { status } => {
                tracing::info!(handoff_id = %p.handoff_id, target = %name, attempts, status, "handoff delivered");
                let status = *status;
                finish(&shared, &state, &p, t_ms, &name, |t| {
                    t.attempts = attempts;
                    t.delivered = true;
                    t.last_status = Some(status);
                    t.last_error = None;
                })
                .await;
                return;
            }
            AttemptOutcome::Permanent { status, error } => {
                tracing::warn!(handoff_id = %p.handoff_id, target = %name, attempts, ?status, %error, "handoff refused for good");
                let (status, error) = (*status, error.clone());
                finish(&shared, &state, &p, t_ms, &name, |t| {
                    t.attempts = attempts;
                    t.failed = true;
                    t.last_status = status;
                    t.last_error = Some(error);
                })
                .await;
                return;
            }
            AttemptOutcome::Retry {
                status,
                error,
                retry_after_s,
            } => {
                let exhausted = attempts >= shared.cfg.max_attempts;
                tracing::warn!(handoff_id = %p.handoff_id, target = %name, attempts, ?status, %error, exhausted, "handoff attempt failed");
                let (status, error) = (*status, error.clone());
                let update = move |t: &mut TargetState| {
                    t.attempts = attempts;
                    t.failed = exhausted;
                    t.last_status = status;
                    t.last_error = Some(error);
                };
                if exhausted {
                    finish(&shared, &state, &p, t_ms, &name, update).await;
                    return;
                }
                update_state(&shared, &state, &name, update).await;
                shared
                    .counters
                    .retried
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *retry_after_s
            }
        };
        let wait = shared.backoff().delay(attempts, &seed, retry_after_s);
        tokio::select! {
            biased;
            () = shared.abort.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Applies `f` to the target's state and persists the whole entry.
async fn update_state(
    shared: &Shared,
    state: &Mutex<OutboxEntry>,
    name: &str,
    f: impl FnOnce(&mut TargetState),
) -> TargetState {
    // The lock is held across the write so two targets of one handoff never interleave their
    // temp-file writes or persist an older snapshot over a newer one.
    let mut entry = state.lock().await;
    let t = entry.targets.entry(name.to_owned()).or_default();
    f(t);
    let after = t.clone();
    let outbox = shared.outbox.clone();
    let snapshot = entry.clone();
    if let Err(e) = blocking(move || outbox.write(&snapshot)).await {
        tracing::warn!(handoff_id = %entry.handoff_id, error = %e, "cannot persist delivery state");
    }
    after
}

/// Records a final verdict for a target and emits its `handoff_delivered`/`handoff_failed`.
async fn finish(
    shared: &Shared,
    state: &Mutex<OutboxEntry>,
    p: &Prepared,
    t_ms: u64,
    name: &str,
    f: impl FnOnce(&mut TargetState),
) {
    let after = update_state(shared, state, name, f).await;
    let counter = if after.delivered {
        &shared.counters.delivered
    } else {
        &shared.counters.failed
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let delivery = Delivery {
        handoff_id: p.handoff_id.clone(),
        target: name.to_owned(),
        attempts: after.attempts,
        status: after.last_status,
        error: after.last_error.clone(),
    };
    let kind = if after.delivered {
        EventKind::HandoffDelivered(delivery)
    } else {
        EventKind::HandoffFailed(delivery)
    };
    // The handoff's own media time: delivery happens after the media clock may have stopped.
    let event = Event {
        call_id: p.call_id.clone(),
        t_ms,
        kind,
    };
    match tokio::time::timeout(EVENT_SEND_TIMEOUT, shared.events.send(event)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => tracing::debug!("event consumer gone; delivery event not sent"),
        Err(_) => {
            tracing::warn!(handoff_id = %p.handoff_id, "event consumer too slow; delivery event dropped")
        }
    }
}
