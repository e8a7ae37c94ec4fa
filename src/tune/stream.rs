//! Every clip as a call: the speaker's own calm material, then the clip, streamed as one call
//! through the engine `replay` and `serve` run ([`crate::replay::replay_pcm`] →
//! [`crate::pipeline::CallPipeline`]). A clip's score is what `warmline replay` of that call
//! shows: the highest caller `tone_score` among the `prosody` events inside the clip.
//!
//! Training needs the window features of every hop, for many candidate models, so they are
//! also collected in one batch pass ([`clip_windows`]) that runs the very analyser and
//! [`ToneScorer`] the engine runs, over the same samples in the same 20 ms chunks, and notes
//! which hop each `prosody` report samples. [`ClipWindows::score`] is therefore the engine's
//! score without re-running the DSP; `tune` checks the two agree on every held-out clip and a
//! unit test pins it to the bit.

use super::{Clip, TuneError};
use crate::detect::tone::{N_FEATURES, ToneModel, ToneScorer};
use crate::event::{EventKind, Track};
use crate::pipeline::PipelineSettings;
use std::sync::Arc;

/// The report interval of `prosody` events (what the clip score samples), ms.
const REPORT_MS: u64 = crate::detect::prosody::INTERVAL_MS;

/// One clip's call: baseline material of the same speaker, then the clip.
#[derive(Debug, Clone)]
pub struct ClipCall {
    /// The call's PCM (mono, the caller).
    pub pcm: Vec<i16>,
    /// Its rate, Hz.
    pub sample_rate_hz: u32,
    /// Where the clip starts in the call, ms of media time.
    pub clip_start_ms: u64,
}

/// The clips (other than `skip`) that prime the baseline of `clips[skip]`'s speaker, in path
/// order: the speaker's rows marked `baseline = 1`, else their `neutral`/`calm`/`0` rows.
/// Empty without a speaker.
pub fn prime_pool(clips: &[Clip], skip: usize) -> Vec<usize> {
    let Some(speaker) = clips[skip].row.speaker.as_deref() else {
        return Vec::new();
    };
    let mut pool: Vec<usize> = (0..clips.len())
        .filter(|&i| i != skip)
        .filter(|&i| clips[i].row.speaker.as_deref() == Some(speaker))
        .filter(|&i| clips[i].row.is_baseline_material())
        .filter(|&i| clips[i].audio.sample_rate_hz == clips[skip].audio.sample_rate_hz)
        .collect();
    pool.sort_by(|&a, &b| clips[a].row.path.cmp(&clips[b].row.path));
    pool
}

/// Builds the call of `clips[i]`: the speaker's baseline material ([`prime_pool`], cycled at
/// most four times) up to the clip where the analyser's baseline is established, then the clip.
pub fn clip_call(clips: &[Clip], i: usize, live: &PipelineSettings) -> Result<ClipCall, TuneError> {
    let clip = &clips[i];
    let rate = clip.audio.sample_rate_hz;
    let mut analyzer = live.track_analyzer(rate).map_err(|source| TuneError::Dsp {
        at: clip.row.at(),
        source,
    })?;
    let pool = prime_pool(clips, i);
    let mut pcm = Vec::new();
    let mut frames = Vec::new();
    // Repeating calm material leaves its statistics unchanged, so a short pool is cycled.
    for &j in pool.iter().cycle().take(pool.len() * 4) {
        if analyzer.baseline().is_some() {
            break;
        }
        let samples = &clips[j].audio.samples;
        for chunk in samples.chunks((rate as usize / 50).max(1)) {
            frames.clear();
            analyzer.push(chunk, &mut frames);
        }
        pcm.extend_from_slice(samples);
    }
    let clip_start_ms = pcm.len() as u64 * 1000 / u64::from(rate.max(1));
    pcm.extend_from_slice(&clip.audio.samples);
    Ok(ClipCall {
        pcm,
        sample_rate_hz: rate,
        clip_start_ms,
    })
}

/// The window features of one clip's call, as the live scorer sees them.
#[derive(Debug, Clone, Default)]
pub struct ClipWindows {
    /// Hop length, ms.
    pub hop_ms: u32,
    /// Per hop of the clip: the window features, or `None` before the window holds enough
    /// speech (training material).
    pub windows: Vec<Option<[f32; N_FEATURES]>>,
    /// The window behind each caller `prosody` report inside the clip (`None`: the score
    /// reported is 0).
    pub reports: Vec<Option<[f32; N_FEATURES]>>,
    /// Whether the speaker baseline was established when the clip began.
    pub primed: bool,
    /// Training windows of the same clip heard through augmented phone lines (empty unless
    /// `tune --augment`).
    pub augmented: Vec<Option<[f32; N_FEATURES]>>,
    /// Pre-baseline windows of the clip heard alone (training material of the population
    /// prior; empty unless `tune --prior`).
    pub prior: Vec<Option<[f32; N_FEATURES]>>,
    /// The same through the augmented lines.
    pub prior_augmented: Vec<Option<[f32; N_FEATURES]>>,
}

impl ClipWindows {
    /// The clip's score under `model`: the highest `tone_score` the engine reports inside the
    /// clip (0 when no report falls inside it).
    pub fn score(&self, model: &ToneModel) -> f64 {
        let linear = model.linear();
        self.reports
            .iter()
            .map(|w| report_value(w.as_ref().map_or(0.0, |x| linear.score(x))))
            .fold(0.0, f64::max)
    }
}

/// A tone score as a `prosody` event carries it.
fn report_value(score: f32) -> f64 {
    crate::detect::prosody::round3(f64::from(score))
}

/// Streams `call` through the engine's analyser and tone scorer (`window` fixes the window;
/// the features do not depend on a model's weights), collecting the window of every hop of the
/// clip and of every `prosody` report inside it.
pub fn clip_windows(
    call: &ClipCall,
    live: &PipelineSettings,
    window: &Arc<ToneModel>,
) -> Result<ClipWindows, TuneError> {
    let rate = call.sample_rate_hz;
    let mut analyzer = live.track_analyzer(rate).map_err(|source| TuneError::Dsp {
        at: "clip call".into(),
        source,
    })?;
    let mut scorer = ToneScorer::new(window.clone());
    let mut out = ClipWindows {
        hop_ms: live.dsp.hop_ms,
        windows: Vec::with_capacity(call.pcm.len() / 160 + 1),
        reports: Vec::new(),
        primed: false,
        augmented: Vec::new(),
        prior: Vec::new(),
        prior_augmented: Vec::new(),
    };
    let mut seen_clip = false;
    // What the engine's scorer last reported (`None`: 0) and where the report interval began
    // (see `detect::prosody::ProsodyAcc`: a report is due at the first frame one interval
    // after the interval's first frame, and carries the previous frame's score).
    let mut state: Option<[f32; N_FEATURES]> = None;
    let mut interval_start: Option<u64> = None;
    let mut frames = Vec::with_capacity(8);
    let mut run = |frames: &[crate::dsp::Frame], out: &mut ClipWindows| {
        for f in frames {
            let in_clip = f.t_ms >= call.clip_start_ms;
            if in_clip && !seen_clip {
                seen_clip = true;
                out.primed = f.rel.baseline_ready;
            }
            // The report is due before this frame is added and carries the previous frame's
            // score, which is `state` until this frame updates it.
            if interval_start.is_some_and(|s| f.t_ms >= s + REPORT_MS) {
                if f.t_ms > call.clip_start_ms {
                    out.reports.push(state);
                }
                interval_start = None;
            }
            interval_start.get_or_insert(f.t_ms);
            if scorer.update(f) {
                state = scorer.features();
            }
            if in_clip {
                out.windows.push(scorer.features());
            }
        }
    };
    for chunk in call.pcm.chunks((rate as usize / 50).max(1)) {
        frames.clear();
        analyzer.push(chunk, &mut frames);
        run(&frames, &mut out);
    }
    frames.clear();
    analyzer.finish(&mut frames);
    run(&frames, &mut out);
    // The report at the end of the call carries the last frame's score.
    if interval_start.is_some() {
        out.reports.push(state);
    }
    Ok(out)
}

/// The clip's score from a replayed call's events: the highest caller `tone_score` of the
/// `prosody` events after `clip_start_ms`.
pub fn clip_score(events: &[crate::event::Event], clip_start_ms: u64) -> f64 {
    events
        .iter()
        .filter(|e| e.t_ms > clip_start_ms)
        .filter_map(|e| match &e.kind {
            EventKind::Prosody(p) if p.track == Track::Caller => Some(p.tone_score),
            _ => None,
        })
        .fold(0.0, f64::max)
}

/// Streams `call` through the engine (`warmline replay`'s own path) with `live`'s model and
/// returns the clip's score. The baseline hold is off: the priming material is calm by
/// construction, and the batch windows must not depend on the model being scored.
pub fn live_clip_score(call: &ClipCall, live: &PipelineSettings) -> Result<f64, TuneError> {
    let live = &PipelineSettings {
        hold_baseline_on_tone: false,
        ..live.clone()
    };
    let report = crate::replay::replay_pcm(
        "clip",
        call.sample_rate_hz,
        std::slice::from_ref(&call.pcm),
        Vec::new(),
        live,
        false,
    )
    .map_err(|source| TuneError::Dsp {
        at: "clip call".into(),
        source,
    })?;
    Ok(clip_score(&report.events, call.clip_start_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Segment, speech};
    use crate::tune::dataset::{Audio, LabelRow};

    fn clip(name: &str, label: &str, segments: &[Segment], seed: u64) -> Clip {
        Clip {
            row: LabelRow {
                source: "test.csv".into(),
                line: 1,
                path: format!("{name}.wav").into(),
                label: label.into(),
                positive: label == "angry",
                speaker: Some("s1".into()),
                baseline: None,
                corpus: None,
                intensity: None,
            },
            audio: Audio {
                samples: speech(segments, 8000, seed),
                sample_rate_hz: 8000,
            },
        }
    }

    fn clips() -> Vec<Clip> {
        let calm = |s| [Segment::calm(3.0, 120.0), Segment::silence(0.5)].repeat(1 + s % 2);
        let mut v: Vec<Clip> = (0..5)
            .map(|s| clip(&format!("calm{s}"), "calm", &calm(s as usize), s))
            .collect();
        v.push(clip(
            "angry",
            "angry",
            &[Segment::silence(0.3), Segment::agitated(3.5, 120.0)],
            9,
        ));
        v
    }

    /// `tune`'s clip score is what `warmline replay` reports for the same call, to the bit.
    #[test]
    fn the_clip_score_is_what_replay_reports_for_the_same_call() {
        let clips = clips();
        let live = PipelineSettings::default();
        let angry = clips.len() - 1;
        let call = clip_call(&clips, angry, &live).unwrap();
        assert!(
            call.clip_start_ms > 8000,
            "primed with {} ms",
            call.clip_start_ms
        );
        let windows = clip_windows(&call, &live, &live.model).unwrap();
        assert!(windows.primed);
        assert!(windows.reports.len() >= 3, "{}", windows.reports.len());

        // The same call written to a WAV and replayed as a user would.
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("call.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        for s in &call.pcm {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        let replayed =
            crate::replay::replay_file(&wav, None, None, &Arc::new(live.clone()), false).unwrap();
        let from_replay = clip_score(&replayed.events, call.clip_start_ms);

        let batch = windows.score(&live.model);
        let engine = live_clip_score(&call, &live).unwrap();
        assert!(from_replay > 0.0, "the agitated clip scores something");
        assert_eq!(from_replay.to_bits(), engine.to_bits());
        assert_eq!(from_replay.to_bits(), batch.to_bits());
        // And for a calm clip of the same speaker, with another model.
        let mut other = (*live.model).clone();
        other.bias -= 1.0;
        let other = PipelineSettings {
            model: Arc::new(other),
            ..live.clone()
        };
        let call = clip_call(&clips, 0, &other).unwrap();
        let windows = clip_windows(&call, &other, &other.model).unwrap();
        assert_eq!(
            live_clip_score(&call, &other).unwrap().to_bits(),
            windows.score(&other.model).to_bits()
        );
    }

    /// Scales a clip so its active speech level is -20 dBFS, as a line AGC or a corpus that
    /// peak-normalised every file (EmoDB) leaves it.
    fn gain_normalised(mut c: Clip) -> Clip {
        let x: Vec<f32> = c
            .audio
            .samples
            .iter()
            .map(|s| f32::from(*s) / 32768.0)
            .collect();
        let level_db = 10.0 * crate::tune::augment::active_power(&x, 8000).log10();
        let g = 10f64.powf((-20.0 - level_db) / 20.0);
        for s in &mut c.audio.samples {
            *s = (f64::from(*s) * g).round().clamp(-32768.0, 32767.0) as i16;
        }
        c
    }

    /// Issue #18: the bundled model must not hinge on loudness. The same speaker's angry and
    /// calm clips, each gain-normalised to the same level (the anger's +dB gone), after their
    /// calm baseline at its natural level: the angry one still scores higher.
    #[test]
    fn a_gain_normalised_angry_clip_still_scores_above_a_gain_normalised_calm_one() {
        let mut v = clips();
        let calm_clip = clip(
            "calm_test",
            "calm",
            &[Segment::silence(0.3), Segment::calm(3.5, 120.0)],
            21,
        );
        v.push(calm_clip);
        let n = v.len();
        let (angry, calm) = (n - 2, n - 1);
        v[angry] = gain_normalised(v[angry].clone());
        v[calm] = gain_normalised(v[calm].clone());
        // The calm test clip must not prime its own speaker's baseline.
        v[calm].row.baseline = Some(false);
        let live = PipelineSettings::default();
        let score = |i: usize| {
            let call = clip_call(&v, i, &live).unwrap();
            live_clip_score(&call, &live).unwrap()
        };
        let (a, c) = (score(angry), score(calm));
        assert!(a > c, "angry {a} vs calm {c} after gain normalisation");
    }

    #[test]
    fn the_prime_is_the_speakers_calm_material_and_never_the_clip() {
        let clips = clips();
        let pool = prime_pool(&clips, 0);
        assert_eq!(pool, vec![1, 2, 3, 4]);
        assert!(prime_pool(&clips, 5).iter().all(|&i| i < 5));
    }
}
