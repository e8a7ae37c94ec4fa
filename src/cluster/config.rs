//! `[cluster]`: where the fleet's NATS is and how this instance takes part. Absent means a
//! single instance that needs nothing but itself.

use serde::{Deserialize, Serialize};

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server(s), comma separated (`nats://127.0.0.1:4222`).
    pub nats_url: String,
    /// This instance's name in the fleet (default: hostname-pid).
    pub instance_id: Option<String>,
    /// NATS user (or `WARMLINE_CLUSTER_USER`).
    pub user: Option<String>,
    /// NATS password (or `WARMLINE_CLUSTER_PASSWORD`).
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// NATS token (or `WARMLINE_CLUSTER_TOKEN`).
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// First token of every subject (`warmline.calls.{id}.transcript`, `warmline.handoffs.…`).
    pub subject_prefix: String,
    /// KV bucket of call ownership.
    pub calls_bucket: String,
    /// JetStream stream of decided handoffs.
    pub handoff_stream: String,
    /// An owner that stops refreshing its calls loses them after this long (crash, partition).
    pub call_ttl_ms: u64,
    /// A delivery worker that neither acks nor reports progress this long loses the handoff to
    /// another worker.
    pub ack_wait_ms: u64,
    /// Handoffs waiting to reach JetStream (past it, calls keep theirs and retry).
    pub publish_buffer: usize,
    /// A handoff that cannot reach JetStream this long is delivered by this instance's own
    /// outbox instead, so that it is never lost with NATS down.
    pub publish_fallback_ms: u64,
    /// Run a delivery worker inside `serve` (off: only `warmline deliver` delivers).
    pub deliver: bool,
    /// Handoffs one worker delivers at a time.
    pub max_deliveries: usize,
    /// On SIGTERM, how long open calls get to end before they are closed with 1001.
    pub drain_timeout_ms: u64,
    /// How often this instance publishes its calls' scores on `{prefix}.events.{instance}` for
    /// the other instances' `/v1/calls` and dashboards.
    pub view_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            instance_id: None,
            user: None,
            password: None,
            token: None,
            subject_prefix: "warmline".into(),
            calls_bucket: "calls".into(),
            handoff_stream: "WARMLINE_HANDOFFS".into(),
            call_ttl_ms: 30_000,
            ack_wait_ms: 30_000,
            publish_buffer: 1024,
            publish_fallback_ms: 10_000,
            deliver: true,
            max_deliveries: 256,
            drain_timeout_ms: 300_000,
            view_interval_ms: 1000,
        }
    }
}

impl ClusterConfig {
    /// Credentials from `WARMLINE_CLUSTER_*`.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        if let Some(v) = env("WARMLINE_CLUSTER_USER") {
            self.user = Some(v);
        }
        if let Some(v) = env("WARMLINE_CLUSTER_PASSWORD") {
            self.password = Some(v);
        }
        if let Some(v) = env("WARMLINE_CLUSTER_TOKEN") {
            self.token = Some(v);
        }
    }

    /// The instance id, or hostname-pid.
    pub fn instance(&self) -> String {
        match &self.instance_id {
            Some(i) => i.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "warmline".into());
                format!("{host}-{}", std::process::id())
            }
        }
    }

    /// `Err((key, reason))` for a value that cannot work.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let url_ok = self.nats_url.split(',').all(|u| {
            let u = u.trim();
            u.starts_with("nats://") || u.starts_with("tls://") || !u.contains("://")
        });
        if self.nats_url.trim().is_empty() || !url_ok {
            return Err((
                "cluster.nats_url",
                format!("{:?} is not a nats:// URL", self.nats_url),
            ));
        }
        if let Some(i) = &self.instance_id
            && (i.is_empty()
                || !i
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)))
        {
            return Err((
                "cluster.instance_id",
                format!("{i:?} must be non-empty letters, digits, - or _"),
            ));
        }
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        };
        for (key, v) in [
            ("cluster.subject_prefix", &self.subject_prefix),
            ("cluster.calls_bucket", &self.calls_bucket),
            ("cluster.handoff_stream", &self.handoff_stream),
        ] {
            if !token_ok(v) {
                return Err((key, format!("{v:?} must be letters, digits, - or _")));
            }
        }
        for (key, v) in [
            ("cluster.call_ttl_ms", self.call_ttl_ms),
            ("cluster.ack_wait_ms", self.ack_wait_ms),
        ] {
            if v < 1000 {
                return Err((key, format!("{v} ms is too short (at least 1000)")));
            }
        }
        if self.view_interval_ms < 100 {
            return Err((
                "cluster.view_interval_ms",
                format!("{} ms is too short (at least 100)", self.view_interval_ms),
            ));
        }
        if self.publish_buffer == 0 {
            return Err(("cluster.publish_buffer", "must be at least 1".into()));
        }
        if self.max_deliveries == 0 {
            return Err(("cluster.max_deliveries", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        assert!(ClusterConfig::default().validate().is_ok());
        let bad = ClusterConfig {
            nats_url: "http://x".into(),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "cluster.nats_url");
        let bad = ClusterConfig {
            instance_id: Some("gw 1".into()),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "cluster.instance_id");
        let bad = ClusterConfig {
            call_ttl_ms: 10,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "cluster.call_ttl_ms");
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let mut c = ClusterConfig::default();
        c.apply_env(&|k| (k == "WARMLINE_CLUSTER_TOKEN").then(|| "t".to_owned()));
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(c.user.is_none());
    }
}
