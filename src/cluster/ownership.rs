//! Call ownership in the JetStream KV bucket `calls`: key = call id, value = [`Owner`]. The
//! instance holding a call's media WebSocket creates the key (create fails when it exists, so
//! two instances can never both own a call), refreshes it while the call lives (the bucket's
//! max age is the TTL: a crashed owner's calls vanish after `call_ttl_ms`) and deletes it at
//! the end.

use super::ClusterError;
use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest a KV round trip may hold up a call's start or a transcript post.
pub(super) const KV_TIMEOUT: Duration = Duration::from_secs(2);

/// The value stored under a call id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// Instance holding the media stream.
    pub instance: String,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Provider name.
    #[serde(default)]
    pub provider: String,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This instance owns the call now.
    Owned,
    /// Another instance does.
    Taken(String),
    /// NATS did not answer: the call goes on locally and the refresher registers it later.
    Unknown(String),
}

/// A call id as a KV key and subject token: NATS allows neither `.`, `*`, `>` nor spaces in a
/// token, so anything outside `[A-Za-z0-9_-]` is written `=XX` (hex of each UTF-8 byte).
pub fn escape_id(call_id: &str) -> String {
    let mut s = String::with_capacity(call_id.len());
    for b in call_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("={b:02X}"));
        }
    }
    s
}

/// Inverse of [`escape_id`]; `None` for a key this module did not write.
pub fn unescape_id(key: &str) -> Option<String> {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            let hex = key.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The ownership bucket.
#[derive(Debug, Clone)]
pub struct Ownership {
    kv: kv::Store,
    instance: String,
}

impl Ownership {
    /// Opens (creating if needed) the bucket with `ttl` as its max age.
    pub async fn open(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        ttl: Duration,
        instance: String,
    ) -> Result<Self, ClusterError> {
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: bucket.to_owned(),
                    description: "warmline call ownership".into(),
                    history: 1,
                    max_age: ttl,
                    ..Default::default()
                })
                .await
                .map_err(|e| ClusterError::Setup(format!("KV bucket {bucket}: {e}")))?,
        };
        Ok(Self { kv, instance })
    }

    /// The underlying store (fleet view).
    pub fn store(&self) -> &kv::Store {
        &self.kv
    }

    fn value(&self, provider: &str, started_at: &str) -> bytes::Bytes {
        let o = Owner {
            instance: self.instance.clone(),
            started_at: started_at.to_owned(),
            provider: provider.to_owned(),
        };
        serde_json::to_vec(&o).unwrap_or_default().into()
    }

    /// Claims `call_id` for this instance.
    pub async fn claim(&self, call_id: &str, provider: &str, started_at: &str) -> Claim {
        let key = escape_id(call_id);
        let create = self.kv.create(&key, self.value(provider, started_at));
        match tokio::time::timeout(KV_TIMEOUT, create).await {
            Ok(Ok(_)) => Claim::Owned,
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.owner(call_id).await {
                    Ok(Some(o)) if o.instance == self.instance => Claim::Owned,
                    Ok(Some(o)) => Claim::Taken(o.instance),
                    // Gone between the two calls: a harmless race; take it.
                    Ok(None) => Claim::Owned,
                    Err(e) => Claim::Unknown(e),
                }
            }
            Ok(Err(e)) => Claim::Unknown(e.to_string()),
            Err(_) => Claim::Unknown("NATS did not answer in time".into()),
        }
    }

    /// Who owns `call_id`, if anybody.
    pub async fn owner(&self, call_id: &str) -> Result<Option<Owner>, String> {
        match tokio::time::timeout(KV_TIMEOUT, self.kv.get(escape_id(call_id))).await {
            Ok(Ok(Some(v))) => Ok(serde_json::from_slice(&v).ok()),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("NATS did not answer in time".into()),
        }
    }

    /// Rewrites the key so its age restarts (and re-creates it after an outage).
    pub async fn refresh(&self, call_id: &str, provider: &str, started_at: &str) {
        let put = self
            .kv
            .put(escape_id(call_id), self.value(provider, started_at));
        match tokio::time::timeout(KV_TIMEOUT, put).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(%call_id, "ownership refresh failed: {e}"),
            Err(_) => tracing::debug!(%call_id, "ownership refresh timed out"),
        }
    }

    /// Gives `call_id` up.
    pub async fn release(&self, call_id: &str) {
        let del = self.kv.delete(escape_id(call_id));
        if !matches!(tokio::time::timeout(KV_TIMEOUT, del).await, Ok(Ok(()))) {
            // The key ages out after the TTL anyway.
            tracing::debug!(%call_id, "ownership release failed; the key expires on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_keys_and_subject_tokens() {
        for id in ["CA123abc", "a.b*c>d e", "ünïcode/=", ""] {
            let k = escape_id(id);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b))
            );
            assert_eq!(unescape_id(&k).as_deref(), Some(id));
        }
        assert_eq!(escape_id("a.b"), "a=2Eb");
        assert_eq!(unescape_id("a=zz"), None);
    }
}
