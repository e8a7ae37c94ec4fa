//! Prometheus metrics: typed handles registered once at start-up, resolved per call so the
//! per-message path touches only atomics.

use crate::protocol::Provider;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write as _;

/// A provider is a label value by its name.
impl EncodeLabelValue for Provider {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

/// `provider` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// Provider.
    pub provider: Provider,
}

/// Labels of ended calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndedLabels {
    /// Provider.
    pub provider: Provider,
    /// `stop`, `closed`, `idle_timeout`, …
    pub reason: String,
    /// `true` when the call was handed off (containment = ended without).
    pub handoff: String,
}

/// `track` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackLabel {
    /// `caller` or `agent`.
    pub track: String,
}

/// `track` and `kind` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackKindLabels {
    /// `caller` or `agent`.
    pub track: String,
    /// `missing` or `late`.
    pub kind: String,
}

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Error kind.
    pub kind: String,
}

/// Auth rejection labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Provider.
    pub provider: Provider,
    /// `missing` or `invalid`.
    pub reason: String,
}

/// `signal` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    /// Signal name.
    pub signal: String,
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Primary reason (signal name).
    pub reason: String,
}

/// Feedback labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabels {
    /// The handoff's primary reason (signal name).
    pub reason: String,
    /// `true` or `false`.
    pub needed: String,
}

/// Ended calls by topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicOutcomeLabels {
    /// A configured topic, or `none`.
    pub topic: String,
    /// `contained` or `handed_off`.
    pub outcome: String,
}

/// Delivery labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// `webhook`, `twilio`, …
    pub target: String,
    /// `delivered` or `failed`.
    pub outcome: String,
}

/// `target` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// `webhook`, `twilio`, …
    pub target: String,
}

/// A histogram family whose members share one bucket layout.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn delivery_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Labels of `warmline_transfers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    /// `twilio`, `telnyx`, `vonage`, `plivo`.
    pub provider: String,
    /// `connected`, `fallback`, `abandoned` or `failed`.
    pub outcome: String,
}

/// Labels of `warmline_transfer_fallbacks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// Provider.
    pub provider: String,
    /// `no_answer`, `busy`, `failed` or `timeout`.
    pub reason: String,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Calls with an open media stream.
    pub active_calls: Gauge,
    /// Calls started, by provider.
    pub calls_started: Family<ProviderLabel, Counter>,
    /// Calls ended, by provider, reason and handoff.
    pub calls_ended: Family<EndedLabels, Counter>,
    /// Media frames (chunks) processed, by track.
    pub frames: Family<TrackLabel, Counter>,
    /// Media frames lost, by track and kind.
    pub frames_dropped: Family<TrackKindLabels, Counter>,
    /// Messages whose processing exceeded the late threshold, by track.
    pub frames_late: Family<TrackLabel, Counter>,
    /// Time from a message's arrival to its features and decision being ready.
    pub frame_latency: Histogram,
    /// How far behind the media clock a frame's decision is ready (includes socket and
    /// scheduler queueing, which `frame_latency` cannot see).
    pub frame_lag: Histogram,
    /// Stream errors and protocol violations, by kind.
    pub stream_errors: Family<KindLabel, Counter>,
    /// Refused upgrades, by provider and reason.
    pub auth_rejections: Family<AuthLabels, Counter>,
    /// Upgrades refused because the gateway was at `max_calls`.
    pub admission_rejections: Counter,
    /// Signal threshold crossings, by signal.
    pub signal_crossings: Family<SignalLabel, Counter>,
    /// Handoffs decided, by primary reason.
    pub handoffs: Family<ReasonLabel, Counter>,
    /// Media time from call start to handoff.
    pub handoff_after_start: Histogram,
    /// Media time from the first signal crossing to handoff.
    pub handoff_after_first_crossing: Histogram,
    /// Handoff deliveries finished, by target and outcome.
    pub deliveries: Family<TargetLabels, Counter>,
    /// Delivery attempts made, by target.
    pub delivery_attempts: Family<TargetLabels, Counter>,
    /// Wall time from the handoff decision to its delivery finishing, by target.
    pub handoff_delivery_latency: HistogramFamily<TargetLabel>,
    /// Handoffs that found the bridge queue full (kept by the call and retried).
    pub bridge_queue_full: Counter,
    /// Transcript lines accepted.
    pub transcript_lines: Counter,
    /// Feedback on handoffs, by primary reason and verdict.
    pub handoff_feedback: Family<FeedbackLabels, Counter>,
    /// Share of handoffs with feedback that were needed, by primary reason.
    pub handoff_precision: Family<ReasonLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Ended calls by topic and outcome (a call counts once per topic it raised).
    pub calls_by_topic: Family<TopicOutcomeLabels, Counter>,
    /// Store writes dropped because the store's queue was full.
    pub store_dropped: Counter,
    /// Warm transfers finished, by provider and outcome.
    pub transfers: Family<TransferLabels, Counter>,
    /// Wall time from the handoff decision to a human answering.
    pub time_to_agent: Histogram,
    /// Agent legs that did not answer, by provider and reason.
    pub transfer_fallbacks: Family<FallbackLabels, Counter>,
    /// How long callers who hung up on hold had waited.
    pub hold_abandoned_wait: Histogram,
    /// Open TCP connections (HTTP and upgraded streams).
    pub connections_open: Gauge,
    /// Connections closed on accept because `max_connections` were open.
    pub connections_refused: Counter,
    /// Transcript lines dropped because their call already held its limit of waiting lines.
    pub transcript_lines_dropped: Counter,
    /// Times a stream stopped being read because its media ran ahead of wall-clock time.
    pub media_lead_pauses: Counter,
    /// `warmline_cluster_*` (stay at zero without `[cluster]`).
    pub cluster: crate::cluster::ClusterMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("warmline");
        let m = Self {
            active_calls: Gauge::default(),
            calls_started: Family::default(),
            calls_ended: Family::default(),
            frames: Family::default(),
            frames_dropped: Family::default(),
            frames_late: Family::default(),
            frame_latency: Histogram::new(exponential_buckets(0.000_025, 2.0, 14)),
            // Bounds at 20 ms so "late" is an exact count, not an interpolation.
            frame_lag: Histogram::new([
                0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            stream_errors: Family::default(),
            auth_rejections: Family::default(),
            admission_rejections: Counter::default(),
            signal_crossings: Family::default(),
            handoffs: Family::default(),
            handoff_after_start: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            handoff_after_first_crossing: Histogram::new(exponential_buckets(0.125, 2.0, 12)),
            deliveries: Family::default(),
            delivery_attempts: Family::default(),
            handoff_delivery_latency: Family::new_with_constructor(delivery_latency_histogram),
            bridge_queue_full: Counter::default(),
            transcript_lines: Counter::default(),
            handoff_feedback: Family::default(),
            handoff_precision: Family::default(),
            calls_by_topic: Family::default(),
            store_dropped: Counter::default(),
            transfers: Family::default(),
            time_to_agent: Histogram::new(exponential_buckets(0.5, 2.0, 10)),
            transfer_fallbacks: Family::default(),
            hold_abandoned_wait: Histogram::new(exponential_buckets(0.5, 2.0, 10)),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            transcript_lines_dropped: Counter::default(),
            media_lead_pauses: Counter::default(),
            cluster: crate::cluster::ClusterMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        m.cluster.register(r);
        r.register(
            "active_calls",
            "Calls with an open media stream",
            m.active_calls.clone(),
        );
        r.register(
            "calls_started",
            "Media streams started, by provider",
            m.calls_started.clone(),
        );
        r.register(
            "calls_ended",
            "Media streams ended, by provider, end reason and whether the call was handed off",
            m.calls_ended.clone(),
        );
        r.register(
            "frames",
            "Media frames (chunks) received, by track",
            m.frames.clone(),
        );
        r.register(
            "frames_dropped",
            "Media frames lost (missing = never arrived, late = arrived after its slot), by track",
            m.frames_dropped.clone(),
        );
        r.register(
            "frames_late",
            "Media messages whose processing took longer than 20 ms, by track",
            m.frames_late.clone(),
        );
        r.register_with_unit(
            "frame_processing",
            "Time from a media message's arrival to its features and decision being ready",
            Unit::Seconds,
            m.frame_latency.clone(),
        );
        r.register_with_unit(
            "frame_lag",
            "Time from when a media frame's audio ended by the call's media clock (anchored at \
             the earliest arrival) to its features and decision being ready: processing plus \
             any queueing in the socket or the scheduler",
            Unit::Seconds,
            m.frame_lag.clone(),
        );
        r.register(
            "connections_open",
            "Open TCP connections, HTTP and upgraded media streams together",
            m.connections_open.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed on accept because [server] max_connections were open",
            m.connections_refused.clone(),
        );
        r.register(
            "stream_errors",
            "Stream errors and protocol violations, by kind",
            m.stream_errors.clone(),
        );
        r.register(
            "auth_rejections",
            "Refused media upgrades, by provider and reason",
            m.auth_rejections.clone(),
        );
        r.register(
            "admission_rejections",
            "Media upgrades refused with 503 because max_calls were open",
            m.admission_rejections.clone(),
        );
        r.register(
            "signal_crossings",
            "Signal threshold crossings, by signal",
            m.signal_crossings.clone(),
        );
        r.register(
            "handoffs",
            "Handoffs decided, by primary reason",
            m.handoffs.clone(),
        );
        r.register_with_unit(
            "handoff_after_call_start",
            "Media time from call start to the handoff decision",
            Unit::Seconds,
            m.handoff_after_start.clone(),
        );
        r.register_with_unit(
            "handoff_after_first_crossing",
            "Media time from the call's first signal crossing to the handoff decision",
            Unit::Seconds,
            m.handoff_after_first_crossing.clone(),
        );
        r.register(
            "handoff_deliveries",
            "Handoff deliveries finished, by target and outcome",
            m.deliveries.clone(),
        );
        r.register(
            "handoff_delivery_attempts",
            "Handoff delivery attempts made, by target and final outcome",
            m.delivery_attempts.clone(),
        );
        r.register_with_unit(
            "handoff_delivery",
            "Wall time from the handoff decision to its delivery finishing (delivered or failed), by target",
            Unit::Seconds,
            m.handoff_delivery_latency.clone(),
        );
        r.register(
            "bridge_queue_full",
            "Handoffs that found the delivery queue full (kept by the call and retried)",
            m.bridge_queue_full.clone(),
        );
        r.register(
            "transcript_lines",
            "Transcript lines accepted over HTTP",
            m.transcript_lines.clone(),
        );
        r.register(
            "handoff_feedback",
            "Feedback on handoffs from the humans who took them, by primary reason and needed",
            m.handoff_feedback.clone(),
        );
        r.register(
            "handoff_precision",
            "Handoffs marked needed over handoffs with feedback, by primary reason",
            m.handoff_precision.clone(),
        );
        r.register(
            "calls",
            "Ended calls by topic (none when no topic) and outcome (contained or handed_off)",
            m.calls_by_topic.clone(),
        );
        r.register(
            "store_dropped",
            "Call-record writes dropped because the store's queue was full",
            m.store_dropped.clone(),
        );
        r.register(
            "transfers",
            "Warm transfers finished, by provider and outcome (connected, fallback, abandoned, failed)",
            m.transfers.clone(),
        );
        r.register_with_unit(
            "time_to_agent",
            "Wall time from the handoff decision to a human answering the agent leg",
            Unit::Seconds,
            m.time_to_agent.clone(),
        );
        r.register(
            "transfer_fallbacks",
            "Agent legs that did not answer and moved the transfer on, by provider and reason",
            m.transfer_fallbacks.clone(),
        );
        r.register_with_unit(
            "hold_abandoned_wait",
            "Time callers who hung up on hold had waited since the handoff decision",
            Unit::Seconds,
            m.hold_abandoned_wait.clone(),
        );
        r.register(
            "transcript_lines_dropped",
            "Transcript lines dropped: the call already held server.max_pending_transcript_* \
             lines waiting for its media clock",
            m.transcript_lines_dropped.clone(),
        );
        r.register(
            "media_lead_pauses",
            "Times a stream was not read because its media ran more than \
             server.max_media_lead_s ahead of wall-clock time",
            m.media_lead_pauses.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a `handoff_connected`, `handoff_fallback` or `handoff_abandoned` event.
    pub fn on_transfer_event(&self, kind: &crate::event::EventKind) {
        use crate::event::EventKind;
        let outcome = |provider: &str, outcome: &str| {
            self.transfers
                .get_or_create(&TransferLabels {
                    provider: provider.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc();
        };
        match kind {
            EventKind::HandoffConnected(c) => {
                outcome(&c.provider, "connected");
                self.time_to_agent
                    .observe(c.time_to_agent_ms as f64 / 1000.0);
            }
            EventKind::HandoffFallback(f) => {
                self.transfer_fallbacks
                    .get_or_create(&FallbackLabels {
                        provider: f.provider.clone(),
                        reason: f.reason.clone(),
                    })
                    .inc();
                if matches!(f.to.as_str(), "queue" | "voicemail" | "bot") {
                    outcome(&f.provider, "fallback");
                }
            }
            EventKind::HandoffAbandoned(a) => {
                outcome(&a.provider, "abandoned");
                self.hold_abandoned_wait
                    .observe(a.waited_ms as f64 / 1000.0);
            }
            _ => {}
        }
    }

    /// Registers the bridge's outbox health: failed writes and handoffs held in memory.
    pub fn register_outbox(&mut self, write_errors: Counter, held: Gauge) {
        self.registry.register(
            "outbox_write_errors",
            "Outbox writes (handoff files, delivery state) that failed; /healthz is degraded while they fail",
            write_errors,
        );
        self.registry.register(
            "handoffs_held",
            "Handoffs delivered from memory because the outbox could not take them yet",
            held,
        );
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
