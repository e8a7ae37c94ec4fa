//! One signal's gate: threshold, hysteresis release, minimum duration and hold time turn a
//! stream of `(t_ms, value)` into "active" with rising and falling edges. Pure, per frame,
//! allocation-free.

use super::policy::EPS;

/// How one signal turns values into "active".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateParams {
    /// Value at which the signal starts to count.
    pub threshold: f64,
    /// Value below which an active signal stops counting (≤ threshold: hysteresis).
    pub release: f64,
    /// How long the value must stay at or above `release` (having reached `threshold`) before
    /// the signal counts, ms.
    pub min_duration_ms: u64,
    /// An active signal without new values stops counting this long after its last value at or
    /// above threshold, ms (0 = only a value below `release` ends it).
    pub hold_ms: u64,
    /// Contribution to the score while active.
    pub weight: f64,
}

/// What happened to a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Nothing changed.
    None,
    /// Became active.
    Rose,
    /// Stopped being active.
    Fell,
}

/// One signal's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    params: GateParams,
    pending_since: Option<u64>,
    active: bool,
    since_ms: u64,
    last_above_ms: u64,
    value: f64,
    peak: f64,
}

impl Gate {
    /// A gate with `params`.
    pub fn new(params: GateParams) -> Self {
        Self {
            params,
            pending_since: None,
            active: false,
            since_ms: 0,
            last_above_ms: 0,
            value: 0.0,
            peak: 0.0,
        }
    }

    /// Feeds a value at `t_ms`.
    pub fn level(&mut self, t_ms: u64, value: f64) -> Edge {
        self.value = value;
        let p = self.params;
        if value >= p.threshold - EPS {
            let since = *self.pending_since.get_or_insert(t_ms);
            self.last_above_ms = t_ms;
            if self.active {
                self.peak = self.peak.max(value);
            } else if t_ms.saturating_sub(since) >= p.min_duration_ms {
                self.active = true;
                self.since_ms = since;
                self.peak = value;
                return Edge::Rose;
            }
        } else if value < p.release - EPS {
            self.pending_since = None;
            if self.active {
                self.active = false;
                return Edge::Fell;
            }
        } else if self.active {
            self.peak = self.peak.max(value);
        }
        Edge::None
    }

    /// Makes the signal active now with `value` (an escalation met its own rule).
    pub fn force(&mut self, t_ms: u64, value: f64) {
        self.value = value;
        self.active = true;
        self.pending_since = Some(t_ms);
        self.since_ms = t_ms;
        self.last_above_ms = t_ms;
        self.peak = self.peak.max(value);
    }

    /// Time passes without a new value: ends an active signal whose hold ran out.
    pub fn tick(&mut self, t_ms: u64) -> Edge {
        if self.active
            && self.params.hold_ms > 0
            && t_ms >= self.last_above_ms.saturating_add(self.params.hold_ms)
        {
            self.active = false;
            self.pending_since = None;
            return Edge::Fell;
        }
        Edge::None
    }

    /// Whether the signal counts now.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Latest value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Highest value since it became active.
    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// When the value first reached the threshold in the current episode.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Start of the pending or active episode.
    pub fn pending_since(&self) -> Option<u64> {
        self.pending_since
    }

    /// The settings.
    pub fn params(&self) -> GateParams {
        self.params
    }
}
