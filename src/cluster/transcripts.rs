//! Transcript lines for a call held elsewhere: the receiving instance publishes them on
//! `warmline.calls.{id}.transcript` (header `Nats-Msg-Id` for dedup); the owner subscribes to
//! that subject for each call it holds and feeds the lines into the call in arrival order,
//! which is each sender's `t_ms` order (NATS keeps one publisher's order); a line carrying its
//! own `t_ms` is placed by the pipeline.

use super::Host;
use crate::detect::TranscriptLine;
use futures_util::StreamExt as _;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// Message ids remembered per call to drop duplicates.
const DEDUP_WINDOW: usize = 64;
/// Longest a forward may wait for the client's buffer.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The subject of `call_id`'s forwarded lines.
pub fn subject(prefix: &str, call_id: &str) -> String {
    format!(
        "{prefix}.calls.{}.transcript",
        super::ownership::escape_id(call_id)
    )
}

/// Forwarding (any instance) and receiving (owners).
#[derive(Debug)]
pub struct Transcripts {
    client: async_nats::Client,
    prefix: String,
    instance: String,
    seq: AtomicU64,
    subscriptions: Mutex<HashMap<String, AbortHandle>>,
}

impl Transcripts {
    /// On `client`, with subjects under `prefix`, message ids named after `instance`.
    pub fn new(client: async_nats::Client, prefix: String, instance: String) -> Self {
        Self {
            client,
            prefix,
            instance,
            seq: AtomicU64::new(0),
            subscriptions: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `line` for the owner of `call_id`.
    pub async fn forward(&self, call_id: &str, line: &TranscriptLine) -> Result<(), String> {
        let body = serde_json::to_vec(line).map_err(|e| e.to_string())?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{}-{n}", self.instance).as_str());
        let publish =
            self.client
                .publish_with_headers(subject(&self.prefix, call_id), headers, body.into());
        match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("NATS publish buffer full".into()),
        }
    }

    /// Starts feeding forwarded lines into the local call `call_id`.
    pub async fn receive(
        &self,
        call_id: &str,
        host: Arc<dyn Host>,
        on_line: impl Fn() + Send + 'static,
    ) {
        // With NATS away the client's buffer may be full: the call must not wait for it.
        let subscribe = self.client.subscribe(subject(&self.prefix, call_id));
        let sub = match tokio::time::timeout(PUBLISH_TIMEOUT, subscribe).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(%call_id, "cannot subscribe to forwarded transcripts: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(%call_id, "NATS busy; forwarded transcripts will not reach this call");
                return;
            }
        };
        let id = call_id.to_owned();
        let task = tokio::spawn(async move {
            let mut sub = sub;
            let mut seen: VecDeque<String> = VecDeque::with_capacity(DEDUP_WINDOW);
            while let Some(msg) = sub.next().await {
                if let Some(mid) = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
                    let mid = mid.as_str().to_owned();
                    if seen.contains(&mid) {
                        continue;
                    }
                    if seen.len() == DEDUP_WINDOW {
                        seen.pop_front();
                    }
                    seen.push_back(mid);
                }
                let Ok(line) = serde_json::from_slice::<TranscriptLine>(&msg.payload) else {
                    tracing::warn!(call_id = %id, "forwarded transcript line unreadable; dropped");
                    continue;
                };
                let Some(tx) = host.transcript_sender(&id) else {
                    return;
                };
                if tx.try_send(line).is_ok() {
                    on_line();
                } else {
                    tracing::warn!(call_id = %id, "transcript queue full; forwarded line dropped");
                }
            }
        });
        if let Ok(mut m) = self.subscriptions.lock()
            && let Some(old) = m.insert(call_id.to_owned(), task.abort_handle())
        {
            old.abort();
        }
    }

    /// Stops receiving for `call_id` (dropping the subscription unsubscribes).
    pub fn stop(&self, call_id: &str) {
        if let Ok(mut m) = self.subscriptions.lock()
            && let Some(h) = m.remove(call_id)
        {
            h.abort();
        }
    }
}

/// Shared handle.
pub type SharedTranscripts = Arc<Transcripts>;
