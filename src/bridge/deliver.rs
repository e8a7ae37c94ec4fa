//! Delivery: drives every target of every persisted handoff through attempts and backoff until
//! delivered, failed or shut down, and keeps offering held (unpersisted) handoffs to the outbox.
//!
//! One task per handoff (its targets run concurrently, so a webhook outage never delays moving
//! the caller); a semaphore bounds HTTP requests in flight. The outbox file is rewritten after
//! every attempt, under the handoff's lock, so a crash at any point loses at most the knowledge
//! of one in-flight attempt (which is then repeated, deduplicated by `Idempotency-Key`).

use super::config::BridgeConfig;
use super::journal::Journal;
use super::outbox::{Op, OutboxEntry, TargetState};
use super::retry::Backoff;
use super::target::{AttemptOutcome, Prepared, Target, attempt};
use crate::event::{Delivery, Event, EventKind};
use std::collections::HashSet;
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
    pub(super) journal: Journal,
    /// The directory (its lock is released at shutdown).
    pub(super) outbox: super::outbox::Outbox,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) http_permits: Semaphore,
    /// Fired when the shutdown grace is over: tasks stop at their next await.
    pub(super) abort: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Handoff ids with a live delivery task, so a duplicate submission is not delivered twice
    /// concurrently. A std mutex: held only for an insert/remove, never across an await.
    pub(super) in_flight: StdMutex<HashSet<String>>,
    /// Handoffs being delivered whose first write failed; offered to the outbox again until it
    /// takes them. A std mutex: never held across an await.
    pub(super) held: StdMutex<Vec<Arc<Mutex<OutboxEntry>>>>,
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

    pub(super) fn is_in_flight(&self, handoff_id: &str) -> bool {
        match self.in_flight.lock() {
            Ok(set) => set.contains(handoff_id),
            Err(poisoned) => poisoned.into_inner().contains(handoff_id),
        }
    }

    pub(super) fn hold(&self, state: Arc<Mutex<OutboxEntry>>) {
        let mut held = match self.held.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        held.push(state);
        self.counters.held.set(held.len() as i64);
    }

    fn release(&self, handoff_id: &str) {
        match self.in_flight.lock() {
            Ok(mut set) => set.remove(handoff_id),
            Err(poisoned) => poisoned.into_inner().remove(handoff_id),
        };
    }
}

/// Starts delivering a persisted (or held) entry; `None` when it is already being delivered.
pub(super) fn spawn_entry(
    shared: &Arc<Shared>,
    entry: OutboxEntry,
) -> Option<Arc<Mutex<OutboxEntry>>> {
    if !shared.claim(&entry.handoff_id) {
        return None;
    }
    let state = Arc::new(Mutex::new(entry));
    shared
        .tracker
        .spawn(deliver_entry(Arc::clone(shared), Arc::clone(&state)));
    Some(state)
}

/// Offers held handoffs to the outbox again every [`super::HELD_RETRY`] until each is written
/// (or its delivery finished, so there is nothing left to keep).
pub(super) async fn retry_held(shared: Arc<Shared>, abort: CancellationToken) {
    let mut tick = tokio::time::interval(super::HELD_RETRY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = abort.cancelled() => return,
            _ = tick.tick() => {}
        }
        let held: Vec<Arc<Mutex<OutboxEntry>>> = match shared.held.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if held.is_empty() {
            continue;
        }
        let mut done = Vec::new();
        for state in held {
            // Under the entry's lock, as every state write is, so no older snapshot lands later.
            let entry = state.lock().await;
            let written = !entry.is_pending()
                || !shared.is_in_flight(&entry.handoff_id)
                || shared
                    .journal
                    .commit_within(Op::Write(entry.clone()), super::PERSIST_WAIT)
                    .await
                    .is_ok();
            drop(entry);
            if written {
                done.push(state);
            }
        }
        let mut h = match shared.held.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Anything held meanwhile stays for the next round.
        h.retain(|s| !done.iter().any(|d| Arc::ptr_eq(d, s)));
        shared.counters.held.set(h.len() as i64);
    }
}

/// Delivers one handoff to all its pending targets, then files it as done or failed.
async fn deliver_entry(shared: Arc<Shared>, state: Arc<Mutex<OutboxEntry>>) {
    let entry = state.lock().await.clone();
    let handoff_id = entry.handoff_id.clone();
    let body = match serde_json::to_vec(&entry.request.event) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(%handoff_id, error = %e, "cannot serialise handoff event");
            shared.release(&handoff_id);
            return;
        }
    };
    let (agent, reason) = match &entry.request.event.kind {
        crate::event::EventKind::Handoff(h) => {
            (h.route.as_ref().map(|r| r.target.clone()), short_reason(h))
        }
        _ => (None, String::new()),
    };
    let prepared = Arc::new(Prepared {
        handoff_id: handoff_id.clone(),
        call_id: entry.request.event.call_id.clone(),
        body,
        agent,
        reason,
    });
    let t_ms = entry.request.event.t_ms;
    let names: Vec<String> = entry
        .targets
        .iter()
        .filter(|(_, s)| s.is_pending())
        .map(|(n, _)| n.clone())
        .collect();
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
        let op = if entry.has_failed() {
            Op::Fail(entry)
        } else {
            Op::Remove(entry.handoff_id)
        };
        if let Err(e) = shared.journal.commit(op).await {
            tracing::warn!(%handoff_id, error = %e, "cannot file finished handoff");
        }
    }
    // Else: aborted by shutdown; the file stays pending and the next start resumes it.
    shared.release(&handoff_id);
}

/// The strongest signal's name (`human_request`, `tone`, …), `pre_call` for a handoff decided
/// before the conversation, else `handoff`.
fn short_reason(h: &crate::event::Handoff) -> String {
    match h.reasons.first() {
        Some(r) => r.signal.name().to_owned(),
        None if h.pre_call => "pre_call".to_owned(),
        None => "handoff".to_owned(),
    }
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
    if let Err(e) = shared.journal.commit(Op::Write(entry.clone())).await {
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
