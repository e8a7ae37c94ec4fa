//! The per-track analyser: DC blocking, VAD, the pitch tracker's look-ahead, noise floor and
//! running peak, syllable nuclei, the sliding-window statistics and the speaker baseline,
//! turning 8 kHz samples into one [`Frame`] per hop. The frame types and settings are in
//! [`super`]; the per-frame maths lives in the sibling modules (`pitch`, `energy`, `mfcc`,
//! `rate`, `features`, `baseline`).

use super::baseline::BaselineTracker;
use super::energy::{SpectralLevels, energy_dbfs, power_db};
use super::features::SlidingWindow;
use super::pitch::{
    self, Candidates, DECISION_LAG, PitchParams, PitchTracker, WINDOW_LEN, WindowAnalysis,
};
use super::rate::{NucleusPicker, NucleusRules};
use super::resample::ToAnalysisRate;
use super::vad::VoiceDetector;
use super::{ANALYSIS_RATE_HZ, Baseline, DspConfig, DspError, Frame, MFCC_LEN, Relative, mfcc};

/// Frames below this level are never speech and never voiced, dBFS. -70 rather than -60:
/// acted corpora and quiet lines carry calm speech near -48 dBFS RMS, and 12 dB less gain put
/// half of it under -60, so such a caller never got a baseline (issue #18, `gain` line). G.711
/// mu-law's smallest step is near -78 dBFS, so digital silence still stays below; the
/// tracked noise floor (`SPEECH_OVER_NOISE_DB`) is what keeps line noise out.
const SILENCE_DB: f32 = -70.0;
/// A speech frame must be this far above the tracked noise floor, dB.
const SPEECH_OVER_NOISE_DB: f32 = 6.0;
/// How fast the noise floor may rise while the level stays above it, dB per frame.
const NOISE_FLOOR_RISE_DB: f32 = 0.02;
/// How fast the running peak level decays, dB per frame.
const PEAK_DECAY_DB: f32 = 0.01;
/// Nuclei must reach this far below the running peak level, dB.
const NUCLEUS_BELOW_PEAK_DB: f32 = 25.0;
/// Frames more than this below the running peak lean unvoiced, dB (relative silence).
const QUIET_BELOW_PEAK_DB: f32 = 30.0;
/// Samples per VAD decision (20 ms at 8 kHz).
const VAD_FRAME_LEN: usize = 160;
/// DC blocker pole (6 Hz corner at 8 kHz).
const DC_POLE: f32 = 0.995;

/// One frame waiting for its pitch decision.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    frame: Frame,
    window_db: f32,
}

/// The FFT input/output and lag buffers of one hop's analysis. Every field is written before it
/// is read within a hop and nothing in them outlives the hop, so one set per thread serves
/// every track analysed there: with thousands of calls per core, per-call copies (~12 KiB per
/// track) would be fetched from memory on every hop, while one set stays in cache.
struct HopBuffers {
    window: WindowAnalysis,
    mel: mfcc::MelCepstrum,
}

thread_local! {
    static HOP_BUFFERS: std::cell::RefCell<HopBuffers> = std::cell::RefCell::new(HopBuffers {
        window: WindowAnalysis::new(),
        mel: mfcc::MelCepstrum::new(),
    });
}

/// Analyses one track.
#[derive(Debug)]
pub struct TrackAnalyzer {
    resampler: ToAnalysisRate,
    core: Core,
    sample_rate_hz: u32,
    samples_in: u64,
}

#[derive(Debug)]
struct Core {
    hop_samples: usize,
    hop_ms: u32,
    /// Analysis samples before the hop in the window.
    lead: usize,
    buf: Vec<f32>,
    dc_x: f32,
    dc_y: f32,
    vad: VoiceDetector,
    vad_frame: Vec<i16>,
    last_vad: bool,
    levels: SpectralLevels,
    tracker: PitchTracker,
    cands: Candidates,
    prev_periodic: bool,
    voicing_threshold: f32,
    noise_compensation: f32,
    pending: [Pending; DECISION_LAG + 1],
    frames_in: u64,
    frames_out: u64,
    noise_floor_db: Option<f32>,
    peak_db: f32,
    nuclei: NucleusPicker,
    nuclei_total: u64,
    stats: SlidingWindow,
    baseline: BaselineTracker,
    /// While set, speech does not enter the baseline (see [`TrackAnalyzer::hold_baseline`]).
    baseline_held: bool,
    /// Speech frames kept out of the baseline so far.
    held_frames: usize,
}

impl TrackAnalyzer {
    /// An analyser for PCM at `sample_rate_hz`.
    pub fn new(sample_rate_hz: u32, cfg: &DspConfig) -> Result<Self, DspError> {
        if cfg.hop_ms != 10 && cfg.hop_ms != 20 {
            return Err(DspError::UnsupportedHop { hop_ms: cfg.hop_ms });
        }
        let resampler = ToAnalysisRate::new(sample_rate_hz)?;
        let hop_samples = (ANALYSIS_RATE_HZ * cfg.hop_ms / 1000) as usize;
        let hop_s = cfg.hop_ms as f32 / 1000.0;
        let lead = (WINDOW_LEN - hop_samples) / 2;
        let mut buf = Vec::with_capacity(WINDOW_LEN);
        // The first window reaches back before t = 0: pretend silence was there.
        buf.resize(lead, 0.0);
        let pitch_params = PitchParams {
            voicing_threshold: cfg.voicing_threshold,
            jump_cost: cfg.octave_jump_cost,
            vuv_cost: cfg.voicing_flip_cost,
            octave_bonus: cfg.octave_bonus,
        };
        let window_frames = ((cfg.window_s.clamp(0.5, 60.0) / hop_s).round() as usize).max(1);
        Ok(Self {
            resampler,
            sample_rate_hz,
            samples_in: 0,
            core: Core {
                hop_samples,
                hop_ms: cfg.hop_ms,
                lead,
                buf,
                dc_x: 0.0,
                dc_y: 0.0,
                vad: VoiceDetector::new(),
                vad_frame: vec![0; VAD_FRAME_LEN],
                last_vad: false,
                levels: SpectralLevels::new(pitch::FFT_LEN, WINDOW_LEN),
                tracker: PitchTracker::new(pitch_params),
                cands: Candidates::default(),
                prev_periodic: false,
                voicing_threshold: pitch_params.voicing_threshold,
                noise_compensation: cfg.noise_compensation.max(1.0),
                pending: [Pending::default(); DECISION_LAG + 1],
                frames_in: 0,
                frames_out: 0,
                noise_floor_db: None,
                peak_db: SILENCE_DB,
                nuclei: NucleusPicker::new(NucleusRules {
                    prominence_db: cfg.nucleus_prominence_db,
                    min_gap_frames: u64::from(cfg.nucleus_min_gap_ms / cfg.hop_ms),
                }),
                nuclei_total: 0,
                stats: SlidingWindow::new(window_frames, hop_s),
                baseline: BaselineTracker::new(cfg.baseline_speech_s, hop_s),
                baseline_held: false,
                held_frames: 0,
            },
        })
    }

    /// Feeds samples; appends one [`Frame`] per completed hop to `out`.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<Frame>) {
        self.samples_in += samples.len() as u64;
        let core = &mut self.core;
        self.resampler
            .process(samples, |x| core.push_samples(x, out));
    }

    /// Ends the stream: emits the frames still waiting for look-ahead (one per whole hop of
    /// audio pushed so far) by feeding silence. The analyser should not be fed afterwards.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        let analysis_samples =
            self.samples_in * u64::from(ANALYSIS_RATE_HZ) / u64::from(self.sample_rate_hz);
        let expected = analysis_samples / self.core.hop_samples as u64;
        let zeros = [0i16; 480];
        let chunk = (self.sample_rate_hz / 100) as usize;
        let start = out.len();
        // Bounded: the window, look-ahead and resampler delay are well under 20 hops.
        for _ in 0..40 {
            if self.core.frames_out >= expected {
                break;
            }
            let core = &mut self.core;
            self.resampler
                .process(&zeros[..chunk.min(zeros.len())], |x| {
                    core.push_samples(x, out)
                });
        }
        let extra = self.core.frames_out.saturating_sub(expected) as usize;
        let keep = out.len().saturating_sub(extra).max(start);
        out.truncate(keep);
    }

    /// The speaker's baseline, once established.
    pub fn baseline(&self) -> Option<Baseline> {
        self.core.baseline.complete().copied()
    }

    /// Keeps the frames analysed from now on out of the speaker's baseline (or lets them in
    /// again): a caller who already sounds angry must not have that voice frozen as their
    /// normal. Once the baseline is complete this changes nothing.
    pub fn hold_baseline(&mut self, hold: bool) {
        self.core.baseline_held = hold;
    }

    /// Syllable nuclei found so far (frames already emitted).
    pub fn syllable_count(&self) -> u64 {
        self.core.nuclei_total
    }
}

impl Core {
    fn push_samples(&mut self, mut xs: &[f32], out: &mut Vec<Frame>) {
        while !xs.is_empty() {
            let take = (WINDOW_LEN - self.buf.len()).min(xs.len());
            let (now, rest) = xs.split_at(take);
            xs = rest;
            // DC blocker: a DC offset must not read as energy or bias the VAD. Written into
            // a resized slice: `push` per sample re-checked capacity and stored the length.
            let (mut px, mut py) = (self.dc_x, self.dc_y);
            let start = self.buf.len();
            self.buf.resize(start + now.len(), 0.0);
            for (o, &x) in self.buf[start..].iter_mut().zip(now) {
                let y = x - px + DC_POLE * py;
                px = x;
                py = y;
                *o = y;
            }
            (self.dc_x, self.dc_y) = (px, py);
            if self.buf.len() == WINDOW_LEN {
                self.analyse_window(out);
                self.buf.copy_within(self.hop_samples.., 0);
                self.buf.truncate(WINDOW_LEN - self.hop_samples);
            }
        }
    }

    fn analyse_window(&mut self, out: &mut Vec<Frame>) {
        let hop = &self.buf[self.lead..self.lead + self.hop_samples];
        let energy_db = energy_dbfs(hop);
        // webrtc-vad runs on 20 ms: with 10 ms hops it judges each pair of hops once (half
        // the cost; its decisions are smoothed over tens of ms anyway). The pair's decision
        // also lands on the earlier hop, which is still pending.
        let pair = VAD_FRAME_LEN / self.hop_samples;
        let part = (self.frames_in % pair as u64) as usize;
        let at = part * self.hop_samples;
        for (d, &s) in self.vad_frame[at..at + self.hop_samples]
            .iter_mut()
            .zip(hop)
        {
            *d = (s * 32768.0).clamp(-32768.0, 32767.0) as i16;
        }
        if part + 1 == pair {
            self.last_vad = self.vad.is_speech(&self.vad_frame);
            if pair == 2 && self.frames_in > 0 {
                let prev = ((self.frames_in - 1) % self.pending.len() as u64) as usize;
                self.pending[prev].frame.vad = self.last_vad;
            }
        }
        let vad = self.last_vad;
        let (window_db, levels, nf, loud, mfcc) = HOP_BUFFERS.with_borrow_mut(|b| {
            let window_db = power_db(b.window.load(&self.buf));
            let levels = self.levels.measure(b.window.power());
            let (nf, loud) = self.track_levels(energy_db, window_db);
            // Pitch only where there can be a voice: skipping quiet non-speech frames saves
            // the inverse FFT and the lag search. A frame following a periodic one is always
            // searched, so a sustained voice the VAD dislikes (or that the noise floor crept
            // up to) stays tracked.
            if window_db > SILENCE_DB
                && (vad || window_db > nf + SPEECH_OVER_NOISE_DB || self.prev_periodic)
            {
                b.window.candidates(&mut self.cands);
            } else {
                self.cands.n = 0;
            }
            // Only speech frames use it (tone window, baseline), and `speech` needs `loud`.
            let mfcc = if loud {
                b.mel.measure(&self.buf)
            } else {
                [0.0; MFCC_LEN]
            };
            (window_db, levels, nf, loud, mfcc)
        });
        self.prev_periodic = self.cands.nccf[..self.cands.n]
            .iter()
            .any(|&r| r > self.voicing_threshold);
        // Undo the NCCF loss from stationary noise (see `DspConfig::noise_compensation`);
        // the two powers are only worth computing when there is a candidate to scale.
        if self.cands.n > 0 {
            let noise = 10f32.powf(nf / 10.0);
            let signal = (10f32.powf(window_db / 10.0) - noise).max(1e-12);
            let comp = (1.0 + noise / signal).min(self.noise_compensation);
            for r in &mut self.cands.nccf[..self.cands.n] {
                *r = (*r * comp).min(1.0);
            }
        }
        let quiet = ((self.peak_db - QUIET_BELOW_PEAK_DB - window_db) / 10.0).clamp(0.0, 1.0);
        let decided = self.tracker.push(&self.cands, quiet);

        let t_ms = self.frames_in * u64::from(self.hop_ms);
        let slot = (self.frames_in % self.pending.len() as u64) as usize;
        self.pending[slot] = Pending {
            frame: Frame {
                t_ms,
                vad,
                speech: loud,
                energy_db,
                loudness_db: levels.loudness_db,
                tilt_db: levels.tilt_db,
                cepstrum: levels.cepstrum,
                mfcc,
                ..Frame::default()
            },
            window_db,
        };
        self.frames_in += 1;
        if let Some(f0_hz) = decided {
            let slot = (self.frames_out % self.pending.len() as u64) as usize;
            let p = self.pending[slot];
            out.push(self.finalise(p, f0_hz));
        }
    }

    /// Updates the noise floor and running peak with this hop's window level; returns the
    /// noise floor and whether the hop is loud enough to be speech.
    fn track_levels(&mut self, energy_db: f32, window_db: f32) -> (f32, bool) {
        let nf = match self.noise_floor_db {
            Some(nf) => (nf + NOISE_FLOOR_RISE_DB).min(window_db),
            None => window_db,
        };
        self.noise_floor_db = Some(nf);
        self.peak_db = (self.peak_db - PEAK_DECAY_DB).max(window_db);
        (nf, energy_db > SILENCE_DB.max(nf + SPEECH_OVER_NOISE_DB))
    }

    fn finalise(&mut self, p: Pending, f0_hz: f32) -> Frame {
        let mut f = p.frame;
        let frame_idx = self.frames_out;
        self.frames_out += 1;
        f.voiced = f0_hz > 0.0;
        f.f0_hz = f0_hz;
        // `speech` held the energy gate until the VAD decision was final.
        f.speech &= f.vad;
        let threshold = (self.peak_db - NUCLEUS_BELOW_PEAK_DB).max(SILENCE_DB);
        f.nucleus = self
            .nuclei
            .push(frame_idx, p.window_db, f.voiced, threshold);
        self.nuclei_total += u64::from(f.nucleus);
        let w = self.stats.push(f.speech, f.nucleus, f0_hz);
        f.rate_sps = w.rate_sps;
        f.f0_range_st = w.f0_range_st;
        f.f0_var_st = w.f0_var_st;
        f.pause_ratio = w.pause_ratio;
        // At most one baseline's worth of speech is held out: a caller the scorer keeps
        // reading as angry still gets a baseline (late) instead of being scored against none
        // for the whole call.
        let held = self.baseline_held && self.held_frames < self.baseline.target_frames();
        self.held_frames += usize::from(held && f.speech);
        if !held {
            self.baseline.push(
                f.speech,
                f0_hz,
                f.energy_db,
                f.loudness_db,
                f.tilt_db,
                f.cepstrum,
                &f.mfcc,
                f.nucleus,
            );
        }
        if let Some(b) = self.baseline.current() {
            f.rel = Relative {
                baseline_ready: self.baseline.complete().is_some(),
                f0_st: if f.voiced && b.f0_hz > 0.0 {
                    12.0 * (f0_hz / b.f0_hz).log2()
                } else {
                    0.0
                },
                energy_db: f.energy_db - b.energy_db,
                loudness_db: f.loudness_db - b.loudness_db,
                tilt_db: f.tilt_db - b.tilt_db,
                rate_ratio: if b.rate_sps > 0.0 {
                    f.rate_sps / b.rate_sps
                } else {
                    0.0
                },
                cepstrum: std::array::from_fn(|c| f.cepstrum[c] - b.cepstrum[c]),
                mfcc_z: std::array::from_fn(|c| (f.mfcc[c] - b.mfcc_mean[c]) / b.mfcc_sd[c]),
            };
        }
        f
    }
}

/// Runs a whole recording through a fresh analyser and returns every frame.
pub fn analyze(
    samples: &[i16],
    sample_rate_hz: u32,
    cfg: &DspConfig,
) -> Result<Vec<Frame>, DspError> {
    let mut a = TrackAnalyzer::new(sample_rate_hz, cfg)?;
    let mut frames = Vec::with_capacity(samples.len() * 100 / sample_rate_hz.max(1) as usize + 1);
    a.push(samples, &mut frames);
    a.finish(&mut frames);
    Ok(frames)
}

/// Syllable nuclei in a whole recording (for speaking-rate evaluation).
pub fn count_syllables(
    samples: &[i16],
    sample_rate_hz: u32,
    cfg: &DspConfig,
) -> Result<usize, DspError> {
    Ok(analyze(samples, sample_rate_hz, cfg)?
        .iter()
        .filter(|f| f.nucleus)
        .count())
}
