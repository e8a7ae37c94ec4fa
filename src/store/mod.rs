//! Features-only call records, handoffs and their feedback in one SQLite file (`[store] path`):
//! provider, duration, a downsampled tone and F0/energy track against the caller's baseline,
//! the decision or its absence with its summary and route, topics, and what humans said about
//! it. Never audio. Bounded by age (`retention_days`) and count (`max_calls`).
//!
//! [`Db`] is synchronous; [`Store`] runs it off the async runtime (`spawn_blocking`, one
//! connection behind a mutex, so writes never interleave).

mod db;
pub mod recorder;

pub use db::{
    CallRecord, Db, Feedback, HandoffRow, LabelRow, ReasonTally, ReviewFilter, ReviewItem,
    TonePoint,
};

use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column did not parse.
    #[error("store: bad JSON column: {0}")]
    Json(#[from] serde_json::Error),
    /// The blocking task did not finish.
    #[error("store: background task failed: {0}")]
    Task(String),
    /// The database was written by a newer warmline.
    #[error("store: schema version {found} is newer than this build's {supported}")]
    Version {
        /// In the file.
        found: i64,
        /// Known here.
        supported: i64,
    },
}

/// Jobs queued for the store's thread before writes are dropped and requests wait.
pub const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// The store shared by the gateway; cheap to clone. One dedicated thread owns the connection
/// and runs jobs in order, so a read queued after a write sees it.
#[derive(Debug, Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating and migrating) the file and starts the store's thread.
    pub fn open(path: &Path, retention_days: u32, max_calls: u64) -> Result<Self, StoreError> {
        let mut db = Db::open(path, retention_days, max_calls)?;
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("warmline-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut db);
                }
            })
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Self { tx })
    }

    /// Runs `f` on the store's thread and waits for its answer.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = otx.send(f(db));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Task("store thread stopped".into()))?;
        orx.await
            .map_err(|_| StoreError::Task("store job dropped".into()))?
    }

    /// Queues a write without waiting; `false` when the queue is full (the write is dropped:
    /// a call never waits for the store).
    pub fn submit(
        &self,
        f: impl FnOnce(&mut Db) -> Result<(), StoreError> + Send + 'static,
    ) -> bool {
        let job: Job = Box::new(move |db| {
            if let Err(e) = f(db) {
                tracing::warn!(error = %e, "store write failed");
            }
        });
        self.tx.try_send(job).is_ok()
    }
}
