//! The calls check: each call of a calls `index.csv` replayed exactly as `warmline replay`
//! does (clean or through a named phone-line condition), the live handoff it makes and when
//! the tone alone first held the threshold, tallied per condition.

use super::extract::{parallel_map, progress_bar};
use super::{TuneError, augment, dataset, roc};
use crate::detect::tone::ToneModel;
use crate::pipeline::PipelineSettings;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The highest value `scores` stays at or above for `hold_ms` (a sliding-window minimum,
/// maximised): what a "score ≥ threshold for `hold_ms`" rule needs the threshold to be under.
pub fn sustained_peak(scores: &[f32], hop_ms: u32, hold_ms: u32) -> f32 {
    let span = (hold_ms / hop_ms.max(1)) as usize + 1;
    if scores.len() < span {
        return 0.0;
    }
    let mut best = f32::NEG_INFINITY;
    let mut deque: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    for (i, &s) in scores.iter().enumerate() {
        while deque.back().is_some_and(|&j| scores[j] >= s) {
            deque.pop_back();
        }
        deque.push_back(i);
        if deque.front().is_some_and(|&j| j + span <= i) {
            deque.pop_front();
        }
        if i + 1 >= span
            && let Some(&j) = deque.front()
        {
            best = best.max(scores[j]);
        }
    }
    best.max(0.0)
}

/// One call of the calls check.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    /// The WAV.
    pub wav: String,
    /// `escalating` or `calm`.
    pub kind: String,
    /// Where anger starts, ms (escalating calls).
    pub anger_onset_ms: Option<u64>,
    /// When the sustain rule first fired, ms.
    pub first_cross_ms: Option<u64>,
    /// Highest score held for the sustain time anywhere in the call.
    pub peak_sustained: f32,
    /// Highest score held for the sustain time before the anger onset (the whole call if calm).
    pub peak_sustained_before_onset: f32,
    /// When the live pipeline handed the call off, ms: the same call replayed exactly as
    /// `warmline replay` runs it (default detector and policy settings, this model, the
    /// transcript sidecar when there is one), so what a deployment would do.
    pub handoff_ms: Option<u64>,
}

impl CallOutcome {
    /// Firing delay after the anger onset, ms (negative = fired early).
    pub fn delay_ms(&self) -> Option<i64> {
        Some(self.first_cross_ms? as i64 - self.anger_onset_ms? as i64)
    }

    /// Live handoff delay after the anger onset, ms (negative = handed off early).
    pub fn handoff_delay_ms(&self) -> Option<i64> {
        Some(self.handoff_ms? as i64 - self.anger_onset_ms? as i64)
    }
}

/// Escalating and calm calls counted for one way of deciding (the tone alone, or the live
/// pipeline's handoff).
pub struct CallTally {
    /// Delays after the anger onset, sorted, ms.
    pub delays: Vec<i64>,
    /// Escalating calls decided before the onset.
    pub early: usize,
    /// Escalating calls never decided.
    pub missed: usize,
    /// Calm calls decided.
    pub false_calm: usize,
    /// Calm calls.
    pub n_calm: usize,
}

impl CallTally {
    /// `decided` gives a call's decision time and its delay after the onset.
    pub fn new(
        calls: &[CallOutcome],
        decided: impl Fn(&CallOutcome) -> (Option<u64>, Option<i64>),
    ) -> Self {
        let mut t = CallTally {
            delays: Vec::new(),
            early: 0,
            missed: 0,
            false_calm: 0,
            n_calm: 0,
        };
        for c in calls {
            let (at, delay) = decided(c);
            match (c.anger_onset_ms, delay) {
                (Some(_), None) => t.missed += 1,
                (Some(_), Some(d)) => {
                    t.early += usize::from(d < 0);
                    t.delays.push(d);
                }
                (None, _) => {
                    t.n_calm += 1;
                    t.false_calm += usize::from(at.is_some());
                }
            }
        }
        t.delays.sort_unstable();
        t
    }

    /// Median delay (the mean of the middle two for an even count), ms.
    pub fn median(&self) -> Option<i64> {
        let (d, n) = (&self.delays, self.delays.len());
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(d[n / 2]),
            _ => Some((d[n / 2 - 1] + d[n / 2]) / 2),
        }
    }

    /// 95 % interval of the calm calls' false-decision rate.
    pub fn false_rate_ci(&self) -> Option<(f64, f64)> {
        roc::rate_ci95(self.false_calm, self.n_calm)
    }

    /// One report line, e.g. `calls, live handoffs: 12 escalating handed off (...)`.
    pub fn line(&self, label: &str, verb: &str) -> String {
        format!(
            "calls, {label}: {} escalating {verb} ({} early, {} missed), median delay {} ms, max {} ms; {} of {} calm calls {verb}{}",
            self.delays.len(),
            self.early,
            self.missed,
            self.median().map_or("-".into(), |v| v.to_string()),
            self.delays.last().map_or("-".into(), |v| v.to_string()),
            self.false_calm,
            self.n_calm,
            self.false_rate_ci()
                .map_or(String::new(), |(lo, hi)| format!(
                    " (false-handoff rate 95% CI {:.0}-{:.0} %)",
                    100.0 * lo,
                    100.0 * hi
                ))
        )
    }
}

/// Replays each call of a calls `index.csv` (`wav,…,kind,anger_onset_ms`) exactly as
/// `warmline replay` does, with `live`'s settings and `model`: the handoff a deployment would
/// make, and (from the same run's caller trace, sampled every 100 ms at 20 ms hops) when the
/// tone alone first stayed at or above the threshold for `sustain_ms`.
pub fn evaluate_calls(
    index: &Path,
    model: &ToneModel,
    live: &PipelineSettings,
    sustain_ms: u32,
    threads: usize,
    progress: bool,
) -> Result<Vec<CallOutcome>, TuneError> {
    evaluate_calls_on(index, model, live, sustain_ms, threads, progress, "clean")
}

/// [`evaluate_calls`] with every call's caller audio first sent through the named line
/// condition ([`augment::Line::named`], seeded by the call's position and the condition, so
/// each call meets its own noise and losses, the same ones on every run).
pub fn evaluate_calls_on(
    index: &Path,
    model: &ToneModel,
    live: &PipelineSettings,
    sustain_ms: u32,
    threads: usize,
    progress: bool,
    condition: &str,
) -> Result<Vec<CallOutcome>, TuneError> {
    let condition_seed = condition.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if augment::Line::named(condition, 0).is_none() {
        return Err(TuneError::NothingUsable(format!(
            "unknown line condition {condition:?} (known: {})",
            augment::CONDITIONS.join(", ")
        )));
    }
    let text = std::fs::read_to_string(index).map_err(|source| TuneError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = lines
        .next()
        .map(|(_, h)| dataset::split_csv_line(h))
        .unwrap_or_default();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| TuneError::Labels {
                path: index.to_path_buf(),
                detail: format!("no {name:?} column"),
            })
    };
    let (c_wav, c_kind, c_onset) = (col("wav")?, col("kind")?, col("anger_onset_ms")?);
    let root = index
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let mut calls = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = dataset::split_csv_line(line);
        let get = |c: usize| f.get(c).map(|s| s.trim()).unwrap_or("");
        let onset = match get(c_onset) {
            "" => None,
            v => Some(v.parse::<u64>().map_err(|_| TuneError::Labels {
                path: index.to_path_buf(),
                detail: format!("line {}: bad anger_onset_ms {v:?}", n + 1),
            })?),
        };
        calls.push((root.join(get(c_wav)), get(c_kind).to_owned(), onset));
    }
    let model = Arc::new(model.clone());
    let live = Arc::new(PipelineSettings {
        model: model.clone(),
        ..live.clone()
    });
    let bar = progress_bar(calls.len() as u64, progress, "streaming calls");
    let results = parallel_map(calls.len(), threads, &bar, |i| {
        let (wav, kind, onset) = &calls[i];
        let seed = condition_seed.wrapping_add(i as u64);
        let line = augment::Line::named(condition, seed).unwrap_or_default();
        let report = if line.steps.is_empty() {
            crate::replay::replay_file(wav, None, None, &live, true)?
        } else {
            replay_on_line(wav, &line, seed, &live)?
        };
        let mut outcome = tone_alone(&report.trace, kind, *onset, model.threshold, sustain_ms);
        outcome.wav = wav.display().to_string();
        outcome.handoff_ms = report.events.iter().find_map(|e| match e.kind {
            crate::event::EventKind::Handoff(_) => Some(e.t_ms),
            _ => None,
        });
        Ok(outcome)
    });
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// Replays a WAV call (and its transcript sidecar) as `warmline replay` would, after sending
/// each channel through `line`.
pub(super) fn replay_on_line(
    wav: &Path,
    line: &augment::Line,
    seed: u64,
    live: &PipelineSettings,
) -> Result<crate::replay::CallReport, TuneError> {
    let (rate, channels) = crate::replay::read_wav(wav)?;
    let channels: Vec<Vec<i16>> = channels.iter().map(|c| line.apply(c, rate, seed)).collect();
    let lines = match crate::replay::sidecar_transcript(wav) {
        Some(t) => crate::replay::read_transcript(&t)?,
        None => Vec::new(),
    };
    let name = wav.file_stem().and_then(|s| s.to_str()).unwrap_or("call");
    crate::replay::replay_pcm(name, rate, &channels, lines, live, true).map_err(|source| {
        TuneError::Dsp {
            at: wav.display().to_string(),
            source,
        }
    })
}

/// The tone-alone rule on a replayed call's caller trace: the first time the score has stayed
/// at or above `threshold` for `sustain_ms`, and the highest level held that long.
pub(super) fn tone_alone(
    trace: &[crate::pipeline::TracePoint],
    kind: &str,
    onset: Option<u64>,
    threshold: f32,
    sustain_ms: u32,
) -> CallOutcome {
    let step_ms = match trace {
        [a, b, ..] => (b.t_ms - a.t_ms).max(1) as u32,
        _ => 100,
    };
    let scores: Vec<f32> = trace.iter().map(|p| p.tone).collect();
    let before: Vec<f32> = trace
        .iter()
        .filter(|p| onset.is_none_or(|o| p.t_ms < o))
        .map(|p| p.tone)
        .collect();
    let mut run_start = None;
    let mut first_cross = None;
    for p in trace {
        if p.tone >= threshold {
            let start = *run_start.get_or_insert(p.t_ms);
            if first_cross.is_none() && p.t_ms - start >= u64::from(sustain_ms) {
                first_cross = Some(p.t_ms);
            }
        } else {
            run_start = None;
        }
    }
    CallOutcome {
        wav: String::new(),
        kind: kind.to_owned(),
        anger_onset_ms: onset,
        first_cross_ms: first_cross,
        peak_sustained: sustained_peak(&scores, step_ms, sustain_ms),
        peak_sustained_before_onset: sustained_peak(&before, step_ms, sustain_ms),
        handoff_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_peak_is_the_level_held_long_enough() {
        let s = [0.1, 0.9, 0.2, 0.7, 0.8, 0.75, 0.3];
        assert_eq!(sustained_peak(&s, 10, 0), 0.9);
        assert_eq!(sustained_peak(&s, 10, 20), 0.7);
        assert_eq!(sustained_peak(&s, 10, 10), 0.75);
        assert_eq!(sustained_peak(&s, 10, 1000), 0.0);
    }
}
