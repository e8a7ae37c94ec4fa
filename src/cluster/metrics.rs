//! The cluster's Prometheus metrics (registered with the gateway's, per instance).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Handles to the cluster metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// 1 while NATS is connected.
    pub connected: Gauge,
    /// Times the NATS connection was lost.
    pub disconnects: Counter,
    /// Handoffs stored in the JetStream stream.
    pub handoffs_published: Counter,
    /// Handoffs that could not reach JetStream in time and went to the local outbox.
    pub handoffs_fallback: Counter,
    /// Handoffs this instance's worker finished (delivered or failed for good) and acked.
    pub handoffs_acked: Counter,
    /// Handoffs this instance's worker holds unacked right now (delivering or retrying).
    pub handoffs_delivering: Gauge,
    /// Decision (on any instance) to the final verdict of this worker.
    pub handoff_latency: Histogram,
    /// Transcript lines forwarded to the owning instance.
    pub transcripts_forwarded: Counter,
    /// Forwarded transcript lines applied by this instance as owner.
    pub transcripts_received: Counter,
    /// Media streams refused because another instance owns the call.
    pub ownership_conflicts: Counter,
    /// Cluster publishes given up (NATS unreachable past their deadline).
    pub publish_failures: Counter,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        Self {
            connected: Gauge::default(),
            disconnects: Counter::default(),
            handoffs_published: Counter::default(),
            handoffs_fallback: Counter::default(),
            handoffs_acked: Counter::default(),
            handoffs_delivering: Gauge::default(),
            handoff_latency: Histogram::new(exponential_buckets(0.002, 1.5, 24)),
            transcripts_forwarded: Counter::default(),
            transcripts_received: Counter::default(),
            ownership_conflicts: Counter::default(),
            publish_failures: Counter::default(),
        }
    }
}

impl ClusterMetrics {
    /// Registers every handle under `cluster_*`.
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("cluster");
        r.register(
            "connected",
            "1 while NATS is connected",
            self.connected.clone(),
        );
        r.register(
            "disconnects",
            "Times the NATS connection was lost",
            self.disconnects.clone(),
        );
        r.register(
            "handoffs_published",
            "Handoffs stored in the JetStream stream",
            self.handoffs_published.clone(),
        );
        r.register(
            "handoffs_fallback",
            "Handoffs that could not reach JetStream in time and went to the local outbox",
            self.handoffs_fallback.clone(),
        );
        r.register(
            "handoffs_acked",
            "Handoffs this worker finished and acked",
            self.handoffs_acked.clone(),
        );
        r.register(
            "handoffs_delivering",
            "Handoffs this worker holds unacked (delivering or retrying)",
            self.handoffs_delivering.clone(),
        );
        r.register_with_unit(
            "handoff_latency",
            "Handoff decision to this worker's final verdict",
            Unit::Seconds,
            self.handoff_latency.clone(),
        );
        r.register(
            "transcripts_forwarded",
            "Transcript lines forwarded to the owning instance",
            self.transcripts_forwarded.clone(),
        );
        r.register(
            "transcripts_received",
            "Forwarded transcript lines applied here as owner",
            self.transcripts_received.clone(),
        );
        r.register(
            "ownership_conflicts",
            "Media streams refused because another instance owns the call",
            self.ownership_conflicts.clone(),
        );
        r.register(
            "publish_failures",
            "Cluster publishes given up with NATS unreachable",
            self.publish_failures.clone(),
        );
    }
}
