//! Group commit for the outbox: one writer thread takes every change that is waiting (new
//! handoffs, delivery state, removals), makes them durable together — one append and one
//! `fdatasync` of the batch log ([`super::wal`]), then the per-handoff files written without
//! fsync — and then acknowledges each submitter. Under a burst the batch grows, so the cost per
//! handoff falls instead of the queue growing; a lone handoff is durable after one sync.
//!
//! The writer is a plain thread: fsync blocks, and a thread of its own keeps it off the async
//! workers without a `spawn_blocking` per write.

use super::outbox::{Op, Outbox, OutboxError};
use super::wal::BatchLog;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most changes applied in one batch; a longer queue is taken in several batches.
const MAX_BATCH: usize = 4096;

/// A change could not be made durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The filesystem refused it.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// No room in the queue and no answer within the wait.
    #[error("outbox writer did not take the change within {0:?}")]
    Timeout(Duration),
    /// The writer has stopped.
    #[error("outbox writer stopped")]
    Closed,
}

/// What operators need to know about the outbox's writes.
#[derive(Debug, Default)]
pub struct WriteHealth {
    /// The last batch failed (cleared by the next batch that succeeds).
    failing: AtomicBool,
    /// Changes that failed, ever (`warmline_outbox_write_errors_total`).
    errors: Counter,
    /// `commit` found the queue full and had to wait for room.
    queue_full: AtomicU64,
    /// The last failure's text.
    last_error: StdMutex<Option<String>>,
}

impl WriteHealth {
    /// Writes are currently failing.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Failed changes since start.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }

    /// The counter behind [`Self::errors`], for the metrics registry.
    pub fn errors_counter(&self) -> Counter {
        self.errors.clone()
    }

    /// Times a commit found the queue full.
    pub fn queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
    }

    /// Text of the last failure.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }

    fn record(&self, results: &[Result<(), OutboxError>]) {
        let failed: Vec<&OutboxError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(first) = failed.first() {
            self.errors.inc_by(failed.len() as u64);
            if let Ok(mut g) = self.last_error.lock() {
                *g = Some(first.to_string());
            }
            if !self.failing.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %first, "outbox writes failing; handoffs are kept in memory and retried");
            }
        } else if !results.is_empty() && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("outbox writes succeed again");
        }
    }
}

struct Job {
    op: Op,
    ack: oneshot::Sender<Result<(), OutboxError>>,
}

/// Handle to the writer; cheap to clone. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    health: Arc<WriteHealth>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("capacity", &self.tx.max_capacity())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Starts the writer thread over `outbox` (whose batch log [`super::wal::recover`] has
    /// replayed) with room for `capacity` waiting changes.
    pub fn start(outbox: Outbox, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let health = Arc::new(WriteHealth::default());
        let h = Arc::clone(&health);
        let log = BatchLog::open(&outbox).map_err(std::io::Error::other)?;
        std::thread::Builder::new()
            .name("warmline-outbox".into())
            .spawn(move || run(&outbox, log, rx, &h))?;
        Ok(Self { tx, health })
    }

    /// The writer's health.
    pub fn health(&self) -> &Arc<WriteHealth> {
        &self.health
    }

    /// Commits `op`, waiting for room in the queue and for the batch's fsyncs.
    pub async fn commit(&self, op: Op) -> Result<(), CommitError> {
        let (ack, done) = oneshot::channel();
        match self.tx.try_send(Job { op, ack }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(CommitError::Closed),
            Err(mpsc::error::TrySendError::Full(job)) => {
                let n = self.health.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
                // The counter keeps the exact number, the log the 1st, 2nd, 4th, … occurrence.
                if n.is_power_of_two() {
                    tracing::warn!(
                        queue_full_total = n,
                        capacity = self.tx.max_capacity(),
                        "outbox queue full; waiting for the writer"
                    );
                }
                self.tx.send(job).await.map_err(|_| CommitError::Closed)?;
            }
        }
        done.await
            .map_err(|_| CommitError::Closed)?
            .map_err(Into::into)
    }

    /// [`Self::commit`], giving up after `wait` (the change may still land later).
    pub async fn commit_within(&self, op: Op, wait: Duration) -> Result<(), CommitError> {
        tokio::time::timeout(wait, self.commit(op))
            .await
            .map_err(|_| CommitError::Timeout(wait))?
    }
}

fn run(outbox: &Outbox, mut log: BatchLog, mut rx: mpsc::Receiver<Job>, health: &WriteHealth) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // The ops move out for the batch; the acks stay with their jobs.
        ops.extend(
            jobs.iter_mut()
                .map(|j| std::mem::replace(&mut j.op, Op::Remove(String::new()))),
        );
        let results = commit_batch(outbox, &mut log, &ops);
        health.record(&results);
        for (job, r) in jobs.drain(..).zip(results) {
            // A submitter that gave up waiting is fine: the change is durable either way.
            let _ = job.ack.send(r);
        }
        ops.clear();
        if log.checkpoint_due()
            && let Err(e) = log.checkpoint(outbox)
        {
            tracing::warn!(error = %e, "outbox checkpoint failed; the batch log keeps the changes");
        }
    }
    // Stopping: leave the files durable and the log empty when the disk allows.
    if let Err(e) = log.checkpoint(outbox) {
        tracing::warn!(error = %e, "outbox checkpoint at stop failed; the next start replays the log");
    }
}

/// One batch: durable once the log holds it, then visible as files. A change counts as done
/// only when both worked, so a directory that cannot be written is reported (and the bridge
/// holds the handoff) even though the log would replay it.
fn commit_batch(outbox: &Outbox, log: &mut BatchLog, ops: &[Op]) -> Vec<Result<(), OutboxError>> {
    if let Err(e) = log.append(ops) {
        return ops.iter().map(|_| Err(e.duplicate())).collect();
    }
    outbox.apply_batch_unsynced(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::HandoffRequest;
    use crate::bridge::outbox::{OUTBOX_VERSION, OutboxEntry};
    use crate::event::{Event, EventKind, Handoff, Summary};
    use std::collections::BTreeMap;

    fn entry(id: &str) -> OutboxEntry {
        OutboxEntry {
            version: OUTBOX_VERSION,
            handoff_id: id.into(),
            request: HandoffRequest {
                event: Event {
                    call_id: "CA1".into(),
                    t_ms: 1,
                    kind: EventKind::Handoff(Handoff {
                        handoff_id: id.into(),
                        reasons: vec![],
                        score: 0.9,
                        summary: Summary::default(),
                        provider: None,
                        route: None,
                        pre_call: false,
                    }),
                },
                provider: crate::protocol::Provider::Twilio,
            },
            targets: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn concurrent_commits_are_all_durable_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::start(Outbox::open(dir.path()).unwrap(), 64).unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..300 {
            let j = j.clone();
            set.spawn(async move { j.commit(Op::Write(entry(&format!("h-{i}")))).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        let n = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count();
        assert_eq!(n, 300);
        assert!(!j.health().is_failing());
    }

    #[tokio::test]
    async fn failures_are_reported_to_the_submitter_and_in_health_until_writes_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ob");
        let j = Journal::start(Outbox::open(&path).unwrap(), 8).unwrap();
        // The directory vanishes under the gateway (a lost mount): writes fail.
        std::fs::rename(&path, dir.path().join("gone")).unwrap();
        std::fs::write(&path, b"a file, not a directory").unwrap();
        let err = j.commit(Op::Write(entry("h-1"))).await.unwrap_err();
        assert!(matches!(err, CommitError::Outbox(_)), "{err}");
        assert!(j.health().is_failing());
        assert_eq!(j.health().errors(), 1);
        assert!(j.health().last_error().is_some());
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(dir.path().join("gone"), &path).unwrap();
        j.commit(Op::Write(entry("h-1"))).await.unwrap();
        assert!(!j.health().is_failing());
    }
}
