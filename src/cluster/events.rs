//! The fleet's live view of calls held elsewhere: each instance publishes, every
//! `view_interval_ms`, a summary of its calls (latest scores, media time, the handoff once
//! decided) on `{prefix}.events.{instance}`, and follows everyone else's. Core NATS, not
//! JetStream: a view that is a second old is replaced by the next one, so nothing here needs to be
//! stored. Ownership stays with the KV bucket ([`super::fleet`]); a summary is shown only for
//! the instance that the bucket says holds the call.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Calls per published message: keeps every message far below NATS's 1 MB default payload.
pub const CALLS_PER_MESSAGE: usize = 200;

/// Entries the view keeps at most: a misbehaving fleet member cannot make it grow without bound.
pub const MAX_REMOTE_CALLS: usize = 200_000;

/// What the other instances see of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    /// The call.
    pub call_id: String,
    /// Media milliseconds so far.
    pub t_ms: u64,
    /// Latest value of each signal, by signal name.
    pub scores: BTreeMap<String, f64>,
    /// The `handoff` event, once decided (as `/v1/calls` shows it).
    pub handoff: Option<serde_json::Value>,
}

/// One published message: part of one instance's calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewMessage {
    /// The publishing instance.
    pub instance: String,
    /// Its calls (at most [`CALLS_PER_MESSAGE`]).
    pub calls: Vec<CallSummary>,
}

/// The subject an instance publishes its view on. Subject tokens cannot hold `.`, `*`, `>` or
/// white space; a default instance id (hostname-pid) may hold a dot.
pub fn subject(prefix: &str, instance: &str) -> String {
    format!("{prefix}.events.{}", crate::protocol::token_safe(instance))
}

/// The subject that follows every instance's view.
pub fn wildcard(prefix: &str) -> String {
    format!("{prefix}.events.*")
}

/// Splits `calls` into the messages to publish.
pub fn messages(instance: &str, calls: Vec<CallSummary>) -> Vec<ViewMessage> {
    let mut out = Vec::with_capacity(calls.len().div_ceil(CALLS_PER_MESSAGE));
    let mut it = calls.into_iter().peekable();
    while it.peek().is_some() {
        out.push(ViewMessage {
            instance: instance.to_owned(),
            calls: it.by_ref().take(CALLS_PER_MESSAGE).collect(),
        });
    }
    out
}

/// A call's summary as its holder last published it: (instance, summary, when received).
type Seen = (String, CallSummary, Instant);

/// The other instances' calls as last published, keyed by call id.
#[derive(Debug, Clone, Default)]
pub struct RemoteView {
    map: Arc<RwLock<HashMap<String, Seen>>>,
}

impl RemoteView {
    /// Applies one received message (from any instance but `me`); a payload that is not a
    /// view is ignored.
    pub fn apply(&self, me: &str, payload: &[u8], ttl: Duration) {
        let Ok(msg) = serde_json::from_slice::<ViewMessage>(payload) else {
            return;
        };
        if msg.instance == me {
            return;
        }
        let Ok(mut m) = self.map.write() else { return };
        let now = Instant::now();
        if m.len() + msg.calls.len() > MAX_REMOTE_CALLS {
            m.retain(|_, (_, _, seen)| seen.elapsed() < ttl);
        }
        for c in msg.calls {
            if m.len() >= MAX_REMOTE_CALLS && !m.contains_key(&c.call_id) {
                break;
            }
            m.insert(c.call_id.clone(), (msg.instance.clone(), c, now));
        }
    }

    /// The summary `instance` last published for `call_id`, if within `ttl`.
    pub fn get(&self, call_id: &str, instance: &str, ttl: Duration) -> Option<CallSummary> {
        let m = self.map.read().ok()?;
        m.get(call_id)
            .filter(|(i, _, seen)| i == instance && seen.elapsed() < ttl)
            .map(|(_, s, _)| s.clone())
    }

    /// Drops entries older than `ttl` (calls that ended, instances that died).
    pub fn expire(&self, ttl: Duration) {
        if let Ok(mut m) = self.map.write() {
            m.retain(|_, (_, _, seen)| seen.elapsed() < ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, t_ms: u64) -> CallSummary {
        CallSummary {
            call_id: id.into(),
            t_ms,
            scores: BTreeMap::from([("tone".to_owned(), 0.25)]),
            handoff: None,
        }
    }

    #[test]
    fn subjects_are_single_tokens_under_the_prefix() {
        assert_eq!(subject("warmline", "gw-1"), "warmline.events.gw-1");
        assert_eq!(
            subject("warmline", "host.example.com-42"),
            "warmline.events.host_example_com-42"
        );
        assert_eq!(subject("p", "a b*>"), "p.events.a_b__");
        assert_eq!(wildcard("p"), "p.events.*");
    }

    #[test]
    fn large_views_are_split_into_bounded_messages() {
        let calls: Vec<_> = (0..450).map(|i| summary(&format!("c{i}"), i)).collect();
        let msgs = messages("gw", calls);
        assert_eq!(
            msgs.iter().map(|m| m.calls.len()).collect::<Vec<_>>(),
            [200, 200, 50]
        );
        assert!(messages("gw", Vec::new()).is_empty());
    }

    #[test]
    fn the_view_keeps_other_instances_calls_and_only_for_their_holder() {
        let v = RemoteView::default();
        let ttl = Duration::from_secs(60);
        let msg = |inst: &str, calls| {
            serde_json::to_vec(&ViewMessage {
                instance: inst.into(),
                calls,
            })
            .unwrap()
        };
        v.apply("gw-a", &msg("gw-b", vec![summary("x", 100)]), ttl);
        v.apply("gw-a", &msg("gw-a", vec![summary("mine", 1)]), ttl);
        v.apply("gw-a", b"{not a view", ttl);
        assert_eq!(v.get("x", "gw-b", ttl).unwrap().t_ms, 100);
        // The bucket says another instance holds it (the call moved): not shown.
        assert!(v.get("x", "gw-c", ttl).is_none());
        assert!(v.get("mine", "gw-a", ttl).is_none());
        v.apply("gw-a", &msg("gw-b", vec![summary("x", 900)]), ttl);
        assert_eq!(v.get("x", "gw-b", ttl).unwrap().t_ms, 900);
        v.expire(Duration::ZERO);
        assert!(v.get("x", "gw-b", ttl).is_none());
    }

    #[test]
    fn the_view_is_bounded() {
        let v = RemoteView::default();
        let ttl = Duration::from_secs(60);
        let mut n = 0;
        while n < MAX_REMOTE_CALLS + CALLS_PER_MESSAGE {
            let calls = (n..n + CALLS_PER_MESSAGE)
                .map(|i| summary(&format!("c{i}"), 0))
                .collect();
            let m = ViewMessage {
                instance: "gw-b".into(),
                calls,
            };
            v.apply("gw-a", &serde_json::to_vec(&m).unwrap(), ttl);
            n += CALLS_PER_MESSAGE;
        }
        assert_eq!(v.map.read().unwrap().len(), MAX_REMOTE_CALLS);
    }
}
