//! The fleet view: every instance watches the ownership bucket and keeps a local map of who
//! holds which call, so `GET /v1/calls` and owner look-ups cost no round trip. Expired keys
//! leave no delete marker in the watch, so entries older than the TTL are ignored here.

use super::ownership::{Owner, unescape_id};
use async_nats::jetstream::kv::{Operation, Store};
use futures_util::StreamExt as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Who holds which call, as last seen.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    map: Arc<RwLock<HashMap<String, (Owner, Instant)>>>,
}

impl Fleet {
    /// Follows `store` until `stop`, re-watching after errors (NATS outages).
    pub async fn follow(self, store: Store, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let mut watch = match store.watch_all().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::debug!("fleet watch: {e}");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    n = watch.next() => n,
                };
                let Some(Ok(entry)) = next else { break };
                let Some(id) = unescape_id(&entry.key) else {
                    continue;
                };
                self.apply(id, entry.operation, &entry.value);
            }
        }
    }

    fn apply(&self, call_id: String, op: Operation, value: &[u8]) {
        let Ok(mut m) = self.map.write() else { return };
        match op {
            Operation::Put => match serde_json::from_slice::<Owner>(value) {
                Ok(o) => {
                    m.insert(call_id, (o, Instant::now()));
                }
                Err(_) => {
                    m.remove(&call_id);
                }
            },
            Operation::Delete | Operation::Purge => {
                m.remove(&call_id);
            }
        }
    }

    /// The owner of `call_id` as last seen within `ttl`.
    pub fn owner(&self, call_id: &str, ttl: Duration) -> Option<Owner> {
        let m = self.map.read().ok()?;
        m.get(call_id)
            .filter(|(_, seen)| seen.elapsed() < ttl)
            .map(|(o, _)| o.clone())
    }

    /// Calls held by instances other than `me`, seen within `ttl`; drops older entries.
    pub fn others(&self, me: &str, ttl: Duration) -> Vec<(String, Owner)> {
        let Ok(mut m) = self.map.write() else {
            return Vec::new();
        };
        m.retain(|_, (_, seen)| seen.elapsed() < ttl);
        let mut v: Vec<(String, Owner)> = m
            .iter()
            .filter(|(_, (o, _))| o.instance != me)
            .map(|(id, (o, _))| (id.clone(), o.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(i: &str) -> Vec<u8> {
        serde_json::to_vec(&Owner {
            instance: i.into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            provider: "twilio".into(),
        })
        .unwrap()
    }

    #[test]
    fn puts_and_deletes_shape_the_view_and_old_entries_age_out() {
        let f = Fleet::default();
        let ttl = Duration::from_secs(60);
        f.apply("a".into(), Operation::Put, &owner("gw-1"));
        f.apply("b".into(), Operation::Put, &owner("gw-2"));
        f.apply("c".into(), Operation::Put, &owner("gw-2"));
        f.apply("c".into(), Operation::Delete, b"");
        f.apply("d".into(), Operation::Put, b"not json");
        let others: Vec<String> = f.others("gw-1", ttl).into_iter().map(|x| x.0).collect();
        assert_eq!(others, ["b"]);
        assert_eq!(f.owner("a", ttl).unwrap().instance, "gw-1");
        assert!(f.owner("a", Duration::ZERO).is_none());
        assert!(f.others("gw-1", Duration::ZERO).is_empty());
    }
}
