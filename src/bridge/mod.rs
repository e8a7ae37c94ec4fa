//! Handoff delivery: a signed webhook and the providers' transfer APIs, with retries, backoff
//! and a persisted outbox so that a decided handoff is never lost, even across restarts.
//!
//! Runs as its own task fed by a bounded queue; the audio path only ever `try_send`s.
//!
//! (Interface settled; delivery is being filled in.)

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// `[bridge]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Pending handoffs survive restarts here.
    pub outbox_dir: PathBuf,
    /// Handoffs queued between the calls and the delivery task.
    pub queue_capacity: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            outbox_dir: PathBuf::from("./warmline-outbox"),
            queue_capacity: 1024,
        }
    }
}

/// A handoff to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRequest {
    /// The `handoff` event (its body is what the webhook receives).
    pub event: Event,
    /// The provider the call came from.
    pub provider: String,
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

/// Handle to the delivery task.
#[derive(Debug, Clone)]
pub struct Bridge {
    tx: mpsc::Sender<HandoffRequest>,
}

impl Bridge {
    /// A bridge whose queue is drained by nobody (placeholder).
    pub fn disconnected(capacity: usize) -> (Self, mpsc::Receiver<HandoffRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// Queues a handoff without waiting.
    pub fn try_submit(&self, req: HandoffRequest) -> Result<(), SubmitError> {
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => SubmitError::Full(Box::new(r)),
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
}

impl BridgeConfig {
    /// Applies `WARMLINE_BRIDGE_*` secrets.
    pub fn apply_env(&mut self, _env: &dyn Fn(&str) -> Option<String>) {}

    /// Checks values; on error returns (key below `bridge.`, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.queue_capacity == 0 {
            return Err(("queue_capacity".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}
