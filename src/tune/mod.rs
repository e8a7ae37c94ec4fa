//! Offline evaluation and calibration of the tone detector (`warmline tune`).
//!
//! Every recording is scored the way a live call is: its PCM (through the telephone channel by
//! default) goes hop by hop through [`TrackAnalyzer`] and the window features of
//! [`ToneScorer`]. When rows name a speaker, the analyser is first primed with that speaker's
//! other calm material (see [`prime_pool`]), so the caller baseline is established from the
//! speaker's own normal voice before the clip is heard, as in a call that starts calmly.
//!
//! Training and validation are speaker-disjoint (see [`speaker_folds`]); the threshold is the
//! out-of-fold operating point; the model written is fitted on all rows.
//!
//! This file owns the run's settings, errors and clips; the work is in rooms of one purpose:
//! `extract` (clips streamed into calls and windows, in parallel), `train` (folds, fitting,
//! nested training and evaluation), `report` (what a run reports and how it is summarised),
//! `calls` (the 24-call check through the live pipeline, clean and on phone lines).

pub mod augment;
mod calls;
pub mod dataset;
mod extract;
pub mod logistic;
pub mod plot;
pub mod prior;
mod report;
pub mod roc;
pub mod select;
pub mod stream;
mod train;

use crate::detect::tone::ModelError;
use crate::pipeline::PipelineSettings;
pub use calls::{CallOutcome, CallTally, evaluate_calls, evaluate_calls_on, sustained_peak};
use dataset::{Audio, LabelRow, RowProblem};
pub use extract::extract_all;
pub use report::{AucFigure, ScoredClip, TuneReport};
use std::path::PathBuf;
pub use stream::{ClipCall, ClipWindows};
pub use train::{evaluate, fit_model, speaker_folds, train, train_on_windows};

/// Why a tune run could not proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A labels or index file is unusable as a whole.
    #[error("{}: {detail}", path.display())]
    Labels {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Nothing left to evaluate.
    #[error("nothing usable: {0}")]
    NothingUsable(String),
    /// A model file problem.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The analyser refused the settings or the audio's rate.
    #[error("{at}: {source}")]
    Dsp {
        /// The recording.
        at: String,
        /// Why.
        source: crate::dsp::DspError,
    },
    /// Fitting failed.
    #[error("fitting failed: {0}")]
    Fit(String),
    /// A call could not be replayed through the live pipeline.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// Degrade audio through the telephone channel first.
    pub telephone: bool,
    /// The engine's settings (DSP, detector), as `serve` and `replay` would use them; each
    /// candidate model is swapped into them to score clips.
    pub live: PipelineSettings,
    /// Folds (default: number of speakers, at most 6).
    pub folds: Option<usize>,
    /// FPR cap of the operating-point rule.
    pub max_fpr: f64,
    /// Tone window, ms.
    pub window_ms: u32,
    /// Media time after which a frame leaves the tone window, ms.
    pub max_age_ms: u32,
    /// Features the model may use (names from `FEATURE_NAMES`); empty means all. Leaving out
    /// the level features suits recordings whose gain was normalised clip by clip.
    pub features: Vec<String>,
    /// Speech needed in the window before scoring, ms.
    pub min_speech_ms: u32,
    /// Recommended sustain written into the model, ms.
    pub sustain_ms: u32,
    /// L2 penalty of the logistic fit.
    pub l2: f64,
    /// Training takes every n-th scored window of a clip.
    pub train_stride: usize,
    /// Extra training copies of every clip's call, each through its own random phone line
    /// ([`augment::Line::random`], seeded by clip and copy). Held-out scores stay on the
    /// clean calls.
    pub augment: usize,
    /// Also fit the population prior (the score before a caller's baseline is ready).
    pub prior: bool,
    /// Worker threads for feature extraction.
    pub threads: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self {
            telephone: true,
            live: PipelineSettings::default(),
            folds: None,
            max_fpr: 0.05,
            window_ms: 2000,
            max_age_ms: 6000,
            features: Vec::new(),
            min_speech_ms: 500,
            sustain_ms: 500,
            l2: 0.1,
            train_stride: 5,
            augment: 0,
            prior: false,
            threads: 2,
            progress: false,
        }
    }
}

/// One recording's audio, ready to stream.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Its row.
    pub row: LabelRow,
    /// Its audio (after the channel).
    pub audio: Audio,
}

/// Loads every row's audio; rows that fail are returned as problems.
pub fn load_clips(rows: Vec<LabelRow>, telephone: bool) -> (Vec<Clip>, Vec<RowProblem>) {
    let mut clips = Vec::new();
    let mut problems = Vec::new();
    for row in rows {
        let audio = dataset::read_wav(&row.path).and_then(|a| {
            if a.samples.is_empty() {
                Err(format!("empty WAV {}", row.path.display()))
            } else if telephone {
                dataset::telephone_channel(&a)
            } else {
                Ok(a)
            }
        });
        match audio {
            Ok(audio) => clips.push(Clip { row, audio }),
            Err(detail) => problems.push(RowProblem {
                at: row.at(),
                detail,
            }),
        }
    }
    (clips, problems)
}
