//! Conversation dynamics from both tracks' voice activity: the caller talking over the agent
//! (overtalk episodes, short backchannels like "mhm" excluded) and long dead air (silence).
//!
//! The two tracks' frames arrive interleaved but not in lockstep, so each track's VAD is written
//! into a fixed ring of 10 ms slots and a cursor processes a slot once both tracks have reached
//! it. A track running more than the ring ahead forces the cursor on, counting the other track
//! as quiet. Everything is allocated in [`Dynamics::new`].

use crate::event::Track;
use std::collections::VecDeque;

/// One slot of media time, ms.
pub const SLOT_MS: u64 = 10;
/// Slots kept per track (≈ 41 s).
const RING_SLOTS: usize = 4096;
/// Overtalk episodes remembered.
const MAX_EPISODES: usize = 64;

/// Dynamics settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicsParams {
    /// A track stays "speaking" this long after its last VAD frame (bridges gaps between words).
    pub hangover_ms: u64,
    /// Overlap an interruption must last to count; shorter overlaps are backchannels.
    pub overtalk_min_ms: u64,
    /// Episodes are counted over this window, ms.
    pub overtalk_window_ms: u64,
}

/// Levels after one processed slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Levels {
    /// End of the slot, media ms.
    pub t_ms: u64,
    /// Overtalk episodes within the window.
    pub overtalk_episodes: u32,
    /// Start of the oldest episode in the window.
    pub overtalk_from_ms: u64,
    /// Seconds of counted overlap in the window.
    pub overlap_s: f64,
    /// Dead air so far, ms (0 while someone speaks or before anyone has).
    pub silence_ms: u64,
    /// When the dead air began.
    pub silence_from_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    start_ms: u64,
    end_ms: u64,
}

/// Overtalk and silence tracking for one call.
#[derive(Debug)]
pub struct Dynamics {
    params: DynamicsParams,
    ring: [Vec<bool>; 2],
    filled: [Option<u64>; 2],
    cursor: Option<u64>,
    last_vad: [Option<u64>; 2],
    on: [bool; 2],
    seg_start: [u64; 2],
    overlap_start: Option<u64>,
    overlap_counted: bool,
    episodes: VecDeque<Episode>,
    total_episodes: u32,
    last_speech: Option<u64>,
    levels: Levels,
}

impl Dynamics {
    /// Tracking with `params`.
    pub fn new(params: DynamicsParams) -> Self {
        Self {
            params,
            ring: [vec![false; RING_SLOTS], vec![false; RING_SLOTS]],
            filled: [None; 2],
            cursor: None,
            last_vad: [None; 2],
            on: [false; 2],
            seg_start: [0; 2],
            overlap_start: None,
            overlap_counted: false,
            episodes: VecDeque::with_capacity(MAX_EPISODES),
            total_episodes: 0,
            last_speech: None,
            levels: Levels::default(),
        }
    }

    /// Overtalk episodes counted over the whole call.
    pub fn total_overtalk(&self) -> u32 {
        self.total_episodes
    }

    /// Latest levels.
    pub fn levels(&self) -> Levels {
        self.levels
    }

    /// Feeds one frame's VAD; calls `on_slot` for every slot that became complete.
    pub fn push(&mut self, track: Track, t_ms: u64, vad: bool, mut on_slot: impl FnMut(&Levels)) {
        let k = track.index();
        let slot = t_ms / SLOT_MS;
        let from = match self.filled[k] {
            Some(f) if slot <= f => return,
            Some(f) => (f + 1).max(slot.saturating_sub(RING_SLOTS as u64 - 1)),
            None => slot,
        };
        let other = 1 - k;
        // Never overwrite a slot the cursor has not processed: force it on first.
        while let Some(c) = self.cursor {
            if slot < c + RING_SLOTS as u64 {
                break;
            }
            self.process_next(&mut on_slot);
        }
        for s in from..=slot {
            self.ring[k][(s % RING_SLOTS as u64) as usize] = vad;
        }
        self.filled[k] = Some(slot);
        if self.cursor.is_none()
            && let (Some(a), Some(b)) = (self.filled[k], self.filled[other])
        {
            // Both tracks exist from here on; start where both have data.
            let oldest_kept = a.max(b).saturating_sub(RING_SLOTS as u64 - 1);
            self.cursor = Some(from.max(oldest_kept).min(a.min(b)));
        }
        while let (Some(c), Some(a), Some(b)) = (self.cursor, self.filled[0], self.filled[1]) {
            if c > a.min(b) {
                break;
            }
            self.process_next(&mut on_slot);
        }
    }

    fn process_next(&mut self, on_slot: &mut impl FnMut(&Levels)) {
        let Some(s) = self.cursor else {
            return;
        };
        self.cursor = Some(s + 1);
        let hang = self.params.hangover_ms / SLOT_MS;
        for k in 0..2 {
            let known = self.filled[k].is_some_and(|f| f >= s);
            let raw = known && self.ring[k][(s % RING_SLOTS as u64) as usize];
            if raw {
                self.last_vad[k] = Some(s);
                self.last_speech = Some(s);
            }
            let on = self.last_vad[k].is_some_and(|l| s - l <= hang);
            if on && !self.on[k] {
                self.seg_start[k] = s;
            }
            self.on[k] = on;
        }
        let t_ms = (s + 1) * SLOT_MS;
        let (caller, agent) = (Track::Caller.index(), Track::Agent.index());
        if self.on[caller] && self.on[agent] {
            let start = *self.overlap_start.get_or_insert(s);
            // The caller interrupting: the agent was already speaking when the caller began.
            let interrupted = self.seg_start[agent] < self.seg_start[caller];
            if !self.overlap_counted
                && interrupted
                && (s + 1 - start) * SLOT_MS >= self.params.overtalk_min_ms
            {
                self.overlap_counted = true;
                self.total_episodes += 1;
                if self.episodes.len() == MAX_EPISODES {
                    self.episodes.pop_front();
                }
                self.episodes.push_back(Episode {
                    start_ms: start * SLOT_MS,
                    end_ms: t_ms,
                });
            } else if self.overlap_counted
                && let Some(e) = self.episodes.back_mut()
            {
                e.end_ms = t_ms;
            }
        } else {
            self.overlap_start = None;
            self.overlap_counted = false;
        }
        while self
            .episodes
            .front()
            .is_some_and(|e| e.end_ms + self.params.overtalk_window_ms < t_ms)
        {
            self.episodes.pop_front();
        }
        let speaking = self.on[caller] || self.on[agent];
        let (silence_ms, silence_from_ms) = match self.last_speech {
            Some(l) if !speaking => ((s - l) * SLOT_MS, (l + 1) * SLOT_MS),
            _ => (0, t_ms),
        };
        self.levels = Levels {
            t_ms,
            overtalk_episodes: self.episodes.len() as u32,
            overtalk_from_ms: self.episodes.front().map_or(t_ms, |e| e.start_ms),
            overlap_s: self
                .episodes
                .iter()
                .map(|e| (e.end_ms - e.start_ms) as f64 / 1000.0)
                .sum(),
            silence_ms,
            silence_from_ms,
        };
        on_slot(&self.levels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: DynamicsParams = DynamicsParams {
        hangover_ms: 150,
        overtalk_min_ms: 800,
        overtalk_window_ms: 30_000,
    };

    /// Speech spans per track, ms; feeds 10 ms frames interleaved in 20 ms chunks.
    fn run(caller: &[(u64, u64)], agent: &[(u64, u64)], until_ms: u64) -> (Dynamics, Vec<Levels>) {
        let mut d = Dynamics::new(P);
        let mut seen = Vec::new();
        let on = |spans: &[(u64, u64)], t: u64| spans.iter().any(|(a, b)| t >= *a && t < *b);
        let mut t = 0;
        while t < until_ms {
            for (track, spans) in [(Track::Caller, caller), (Track::Agent, agent)] {
                for dt in [0, 10] {
                    d.push(track, t + dt, on(spans, t + dt), |l| seen.push(*l));
                }
            }
            t += 20;
        }
        (d, seen)
    }

    #[test]
    fn interruptions_count_and_backchannels_do_not() {
        // Agent speaks 0..10 s; caller says "mhm" (300 ms) twice, then interrupts for 2 s.
        let (d, seen) = run(
            &[(2000, 2300), (4000, 4400), (6000, 8000)],
            &[(0, 10_000)],
            12_000,
        );
        assert_eq!(d.total_overtalk(), 1);
        let first = seen.iter().find(|l| l.overtalk_episodes == 1).unwrap();
        // Counted once the overlap reached 800 ms.
        assert!((6790..=6830).contains(&first.t_ms), "{}", first.t_ms);
        assert_eq!(first.overtalk_from_ms, 6000);
        let last = seen.last().unwrap();
        assert!((last.overlap_s - 2.15).abs() < 0.05, "{}", last.overlap_s);
    }

    #[test]
    fn agent_talking_over_the_caller_is_not_caller_overtalk() {
        let (d, _) = run(&[(0, 5000)], &[(1000, 4000)], 6000);
        assert_eq!(d.total_overtalk(), 0);
    }

    #[test]
    fn episodes_age_out_of_the_window() {
        let (d, seen) = run(&[(1000, 3000)], &[(0, 4000)], 40_000);
        assert_eq!(d.total_overtalk(), 1);
        assert_eq!(seen.last().unwrap().overtalk_episodes, 0);
    }

    #[test]
    fn silence_counts_after_the_call_started() {
        let (_, seen) = run(&[(3000, 4000)], &[(5000, 6000)], 20_000);
        // Nothing before anyone spoke.
        assert!(
            seen.iter()
                .filter(|l| l.t_ms < 3000)
                .all(|l| l.silence_ms == 0)
        );
        let l = seen.last().unwrap();
        assert!(
            (13_900..=14_100).contains(&l.silence_ms),
            "{}",
            l.silence_ms
        );
        assert_eq!(l.silence_from_ms, 6000);
        // Between the two turns: a 1 s gap only.
        let max_gap = seen
            .iter()
            .filter(|l| l.t_ms < 5500)
            .map(|l| l.silence_ms)
            .max()
            .unwrap();
        assert!(max_gap < 1100);
    }

    #[test]
    fn one_track_only_produces_nothing() {
        let mut d = Dynamics::new(P);
        let mut n = 0;
        for i in 0..1000 {
            d.push(Track::Caller, i * 10, i % 2 == 0, |_| n += 1);
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn a_track_far_ahead_forces_the_cursor() {
        let mut d = Dynamics::new(P);
        let mut last = 0;
        d.push(Track::Agent, 0, true, |_| {});
        for i in 0..10_000 {
            d.push(Track::Caller, i * 10, true, |l| last = l.t_ms);
        }
        assert!(last >= 100_000 - RING_SLOTS as u64 * SLOT_MS);
    }
}
