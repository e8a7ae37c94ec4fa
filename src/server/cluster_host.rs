//! What the fleet ([`crate::cluster`]) may ask of this gateway: its calls (to keep them
//! registered and to publish their scores), its transcript queues and its event stream.

use super::{AppState, Inner};
use crate::detect::TranscriptLine;
use crate::event::Event;
use tokio::sync::mpsc;

/// The cluster's view of the gateway; weak, so the cluster never keeps the gateway alive.
pub(super) struct ClusterHost(pub(super) std::sync::Weak<Inner>);

impl crate::cluster::Host for ClusterHost {
    fn transcript_sender(&self, call_id: &str) -> Option<mpsc::Sender<TranscriptLine>> {
        AppState {
            inner: self.0.upgrade()?,
        }
        .transcript_sender(call_id)
        .map(|(tx, _)| tx)
    }

    fn local_calls(&self) -> Vec<(String, String, String)> {
        let Some(inner) = self.0.upgrade() else {
            return Vec::new();
        };
        let Ok(m) = inner.calls.lock() else {
            return Vec::new();
        };
        m.iter()
            .map(|(id, e)| {
                let at = humantime::format_rfc3339_millis(e.view.started_at).to_string();
                (id.clone(), e.view.provider.name().to_owned(), at)
            })
            .collect()
    }

    fn open_calls(&self) -> usize {
        self.0.upgrade().map_or(0, |i| {
            usize::try_from(i.metrics.active_calls.get()).unwrap_or(0)
        })
    }

    fn emit(&self, event: Event) {
        if let Some(inner) = self.0.upgrade() {
            AppState { inner }.publish(&mut vec![event]);
        }
    }

    fn call_summaries(&self) -> Vec<crate::cluster::events::CallSummary> {
        let Some(inner) = self.0.upgrade() else {
            return Vec::new();
        };
        let Ok(m) = inner.calls.lock() else {
            return Vec::new();
        };
        m.iter()
            .map(|(id, e)| crate::cluster::events::CallSummary {
                call_id: id.clone(),
                t_ms: e.view.t_ms,
                scores: e
                    .view
                    .scores
                    .iter()
                    .map(|(k, v)| (k.name().to_owned(), *v))
                    .collect(),
                handoff: e
                    .view
                    .handoff
                    .as_ref()
                    .and_then(|h| serde_json::to_value(h).ok()),
            })
            .collect()
    }
}
