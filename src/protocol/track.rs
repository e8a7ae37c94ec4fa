//! The two sides of a call, as every provider's track names map onto them.

use serde::{Deserialize, Serialize};

/// Which side of the call a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// The caller (provider "inbound").
    Caller,
    /// The AI agent or far leg (provider "outbound").
    Agent,
}

impl Track {
    /// Both tracks, caller first.
    pub const ALL: [Track; 2] = [Track::Caller, Track::Agent];

    /// Index into per-track arrays.
    pub fn index(self) -> usize {
        match self {
            Track::Caller => 0,
            Track::Agent => 1,
        }
    }

    /// `caller` or `agent`.
    pub fn name(self) -> &'static str {
        match self {
            Track::Caller => "caller",
            Track::Agent => "agent",
        }
    }
}
