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

pub mod augment;
pub mod dataset;
pub mod logistic;
pub mod plot;
pub mod prior;
pub mod roc;
pub mod select;
pub mod stream;

use crate::detect::tone::{
    FEATURE_NAMES, MODEL_VERSION, ModelError, N_FEATURES, OperatingPoint, Provenance, ToneModel,
    feature_index,
};
use crate::pipeline::PipelineSettings;
use dataset::{Audio, LabelRow, RowProblem};
use roc::RocPoint;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
pub use stream::{ClipCall, ClipWindows};

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

/// A model that only fixes the window, for feature extraction.
fn window_model(opts: &TuneOptions) -> ToneModel {
    ToneModel {
        version: MODEL_VERSION,
        features: vec![FEATURE_NAMES[0].to_owned()],
        means: vec![0.0],
        stds: vec![1.0],
        weights: vec![0.0],
        bias: 0.0,
        threshold: 0.5,
        window_ms: opts.window_ms,
        max_age_ms: opts.max_age_ms,
        min_speech_ms: opts.min_speech_ms,
        sustain_ms: opts.sustain_ms,
        operating_point: OperatingPoint::default(),
        provenance: Provenance::default(),
        prior: None,
    }
}

/// Every clip's call and its windows, on `opts.threads` threads (results in clip order).
pub fn extract_all(
    clips: &[Clip],
    opts: &TuneOptions,
) -> Result<(Vec<ClipCall>, Vec<ClipWindows>), TuneError> {
    let window = Arc::new(window_model(opts));
    let prior_window = Arc::new(prior::prior_window_model(&window));
    let bar = progress_bar(clips.len() as u64, opts.progress, "streaming clips");
    let results = parallel_map(clips.len(), opts.threads, &bar, |i| {
        let call = stream::clip_call(clips, i, &opts.live)?;
        let mut windows = stream::clip_windows(&call, &opts.live, &window)?;
        let rate = call.sample_rate_hz;
        let alone = &clips[i].audio.samples;
        if opts.prior {
            windows.prior = prior::prior_windows(alone, rate, &opts.live, &prior_window)?;
        }
        for copy in 0..opts.augment {
            let seed = ((i as u64) << 16) | copy as u64;
            let line = augment::Line::random(seed);
            let noisy = ClipCall {
                pcm: line.apply(&call.pcm, rate, seed),
                ..call.clone()
            };
            let w = stream::clip_windows(&noisy, &opts.live, &window)?;
            windows.augmented.extend(w.windows);
            if opts.prior {
                let noisy = line.apply(alone, rate, seed);
                let w = prior::prior_windows(&noisy, rate, &opts.live, &prior_window)?;
                windows.prior_augmented.extend(w);
            }
        }
        Ok((call, windows))
    });
    bar.finish_and_clear();
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().unzip())
}

/// Scores every clip's call through the engine, clip `i` with `models[fold_of(i)]`, and checks
/// each score against the batch windows' (they must agree: same analyser, same scorer).
fn engine_scores(
    calls: &[ClipCall],
    windows: &[ClipWindows],
    models: &[Arc<ToneModel>],
    fold_of: &(dyn Fn(usize) -> usize + Sync),
    opts: &TuneOptions,
) -> Result<Vec<f64>, TuneError> {
    let bar = progress_bar(calls.len() as u64, opts.progress, "replaying clips");
    let results = parallel_map(calls.len(), opts.threads, &bar, |i| {
        let model = &models[fold_of(i)];
        let live = PipelineSettings {
            model: model.clone(),
            ..opts.live.clone()
        };
        let score = stream::live_clip_score(&calls[i], &live)?;
        let batch = windows[i].score(model);
        if score.to_bits() != batch.to_bits() {
            return Err(TuneError::Fit(format!(
                "clip {i}: the engine scored {score} but the batch windows {batch}; the two \
                 paths have drifted apart"
            )));
        }
        Ok(score)
    });
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// Runs `f(0..len)` on up to `threads` worker threads, in index order; a worker that panics
/// (a bug) turns its items into errors instead of taking the run down.
fn parallel_map<R: Send>(
    len: usize,
    threads: usize,
    bar: &indicatif::ProgressBar,
    f: impl Fn(usize) -> Result<R, TuneError> + Sync,
) -> Vec<Result<R, TuneError>> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<R, TuneError>>> = Vec::new();
    results.resize_with(len, || None);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.clamp(1, 16))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= len {
                            break;
                        }
                        mine.push((i, f(i)));
                        bar.inc(1);
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            if let Ok(mine) = h.join() {
                for (i, r) in mine {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TuneError::Fit("a worker thread panicked".into()))))
        .collect()
}

fn progress_bar(len: u64, show: bool, msg: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}

/// Fold of each clip: speakers sorted by name and dealt round-robin into `k` folds, so no
/// speaker is ever on both sides. Clips without a speaker are their own group (by path).
pub fn speaker_folds(groups: &[String], k: usize) -> Vec<usize> {
    let mut names: Vec<&String> = groups.iter().collect();
    names.sort();
    names.dedup();
    let k = k.max(1);
    groups
        .iter()
        .map(|g| names.binary_search(&g).unwrap_or(0) % k)
        .collect()
}

/// The grouping key of a clip for folds.
fn group_of(clip: &Clip) -> String {
    clip.row
        .speaker
        .clone()
        .unwrap_or_else(|| format!("file:{}", clip.row.path.display()))
}

/// Fits a model on the given clips' windows.
pub fn fit_model(
    windows: &[&ClipWindows],
    labels: &[bool],
    opts: &TuneOptions,
) -> Result<ToneModel, TuneError> {
    let n_pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let n_neg = (labels.len() as f64 - n_pos).max(1.0);
    let mut used = Vec::new();
    for name in &opts.features {
        let k = feature_index(name).ok_or_else(|| {
            TuneError::Fit(format!(
                "unknown feature {name:?} (known: {})",
                FEATURE_NAMES.join(", ")
            ))
        })?;
        if !used.contains(&k) {
            used.push(k);
        }
    }
    if used.is_empty() {
        used = (0..N_FEATURES).collect();
    }
    let mut rows = Vec::new();
    let mut ys = Vec::new();
    let mut ws = Vec::new();
    for (cw, &y) in windows.iter().zip(labels) {
        let ready: Vec<&[f32; N_FEATURES]> = cw
            .windows
            .iter()
            .chain(&cw.augmented)
            .flatten()
            .step_by(opts.train_stride.max(1))
            .collect();
        if ready.is_empty() {
            continue;
        }
        // Each clip weighs the same, and both classes weigh the same in total.
        let w = if y { 0.5 / n_pos } else { 0.5 / n_neg } / ready.len() as f64;
        for x in ready {
            rows.push(used.iter().map(|&k| f64::from(x[k])).collect::<Vec<f64>>());
            ys.push(y);
            ws.push(w);
        }
    }
    let fit = logistic::fit(&rows, &ys, &ws, opts.l2)
        .ok_or_else(|| TuneError::Fit("need scored windows of both classes".into()))?;
    let mut model = window_model(opts);
    model.features = used.iter().map(|&k| FEATURE_NAMES[k].to_owned()).collect();
    model.means = fit.means.iter().map(|v| *v as f32).collect();
    model.stds = fit.stds.iter().map(|v| *v as f32).collect();
    model.weights = fit.weights.iter().map(|v| *v as f32).collect();
    model.bias = fit.bias as f32;
    Ok(model)
}

/// One scored clip in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredClip {
    /// The recording.
    pub path: String,
    /// Its label.
    pub label: String,
    /// Positive class.
    pub positive: bool,
    /// Speaker.
    pub speaker: Option<String>,
    /// Fold it was held out in (none when evaluating a given model).
    pub fold: Option<usize>,
    /// Its score.
    pub score: f64,
    /// Whether its speaker baseline was ready before it began.
    pub primed: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// Positives scored.
    pub n_pos: usize,
    /// Negatives scored.
    pub n_neg: usize,
    /// AUC over all scored clips.
    pub auc: f64,
    /// 95 % confidence interval of `auc` (DeLong; clips treated as independent, so with few
    /// speakers it is if anything too narrow).
    pub auc_ci95: Option<(f64, f64)>,
    /// AUC of positives against each negative label alone.
    pub auc_by_negative: BTreeMap<String, f64>,
    /// 95 % confidence intervals of `auc_by_negative`.
    pub auc_by_negative_ci95: BTreeMap<String, (f64, f64)>,
    /// AUC of positives against the `neutral` and `calm` negatives, when there are any.
    pub auc_neutral_calm: Option<f64>,
    /// 95 % confidence interval of `auc_neutral_calm`.
    pub auc_neutral_calm_ci95: Option<(f64, f64)>,
    /// AUC within each speaker that has both classes (rows with a `speaker`): a voice the
    /// model reads poorly stands out here, while the pooled AUC also mixes in how differently
    /// speakers score.
    pub auc_by_speaker: BTreeMap<String, f64>,
    /// AUC of the positives of each acted intensity against every negative.
    pub auc_by_intensity: BTreeMap<String, AucFigure>,
    /// Leave-corpus-out AUCs (`train->test`), when the clips come from several corpora.
    pub leave_corpus_out: BTreeMap<String, AucFigure>,
    /// Out-of-fold AUC of the population prior (clips heard without any baseline), when
    /// fitted.
    pub prior_auc: Option<AucFigure>,
    /// What each outer fold's inner cross-validation chose.
    pub chosen: Vec<select::Chosen>,
    /// What the selection on all clips chose for the model written.
    pub final_choice: Option<select::Chosen>,
    /// Reliability diagram of the out-of-fold (calibrated) clip scores.
    pub reliability: Vec<select::ReliabilityBin>,
    /// Expected calibration error of those scores.
    pub ece: f64,
    /// The operating point.
    pub operating_point: RocPoint,
    /// The rule that chose it.
    pub rule: String,
    /// The ROC curve.
    pub curve: Vec<RocPoint>,
    /// Folds used (0 when a given model was evaluated).
    pub folds: usize,
    /// Rows skipped, with reasons.
    #[serde(skip)]
    pub skipped: Vec<RowProblem>,
    /// Clips whose speaker baseline was not ready before they began.
    pub unprimed: usize,
    /// Every scored clip.
    #[serde(skip)]
    pub clips: Vec<ScoredClip>,
    /// The model (trained, or the one evaluated).
    #[serde(skip)]
    pub model: ToneModel,
}

impl TuneReport {
    /// The threshold sweep at fixed thresholds.
    pub fn sweep(&self) -> Vec<RocPoint> {
        let scores: Vec<f64> = self.clips.iter().map(|c| c.score).collect();
        let labels: Vec<bool> = self.clips.iter().map(|c| c.positive).collect();
        (1..20)
            .map(|k| roc::at_threshold(&scores, &labels, f64::from(k) * 0.05))
            .collect()
    }
}

/// What [`summarise`] derives from clip scores.
struct Summary {
    clips: Vec<ScoredClip>,
    auc: f64,
    auc_ci: Option<(f64, f64)>,
    by: BTreeMap<String, f64>,
    by_ci: BTreeMap<String, (f64, f64)>,
    neutral_calm: Option<f64>,
    neutral_calm_ci: Option<(f64, f64)>,
    by_speaker: BTreeMap<String, f64>,
    curve: Vec<RocPoint>,
}

fn summarise(
    clips: &[Clip],
    scores: Vec<f64>,
    folds_of: Option<&[usize]>,
    primed: &[bool],
) -> Summary {
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let scored: Vec<ScoredClip> = clips
        .iter()
        .enumerate()
        .map(|(i, c)| ScoredClip {
            path: c.row.path.display().to_string(),
            label: c.row.label.clone(),
            positive: c.row.positive,
            speaker: c.row.speaker.clone(),
            fold: folds_of.map(|f| f[i]),
            score: scores[i],
            primed: primed[i],
        })
        .collect();
    let auc = roc::auc(&scores, &labels).unwrap_or(f64::NAN);
    let auc_ci = roc::auc_ci95(&scores, &labels);
    let mut by = BTreeMap::new();
    let mut by_ci = BTreeMap::new();
    let negative_labels: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter(|c| !c.row.positive)
        .map(|c| c.row.label.as_str())
        .collect();
    let subset_auc = |keep: &dyn Fn(&Clip) -> bool| {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(&scores)
            .filter(|(c, _)| c.row.positive || keep(c))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        (roc::auc(&s, &l), roc::auc_ci95(&s, &l))
    };
    for neg in negative_labels {
        let (a, ci) = subset_auc(&|c: &Clip| c.row.label == neg);
        if let Some(a) = a {
            by.insert(neg.to_owned(), a);
        }
        if let Some(ci) = ci {
            by_ci.insert(neg.to_owned(), ci);
        }
    }
    let (nc, nc_ci) = subset_auc(&|c: &Clip| matches!(c.row.label.as_str(), "neutral" | "calm"));
    let speakers: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter_map(|c| c.row.speaker.as_deref())
        .collect();
    let mut by_speaker = BTreeMap::new();
    for sp in speakers {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(&scores)
            .filter(|(c, _)| c.row.speaker.as_deref() == Some(sp))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        if let Some(a) = roc::auc(&s, &l) {
            by_speaker.insert(sp.to_owned(), a);
        }
    }
    let curve = roc::roc(&scores, &labels);
    Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    }
}

/// Trains with speaker-disjoint cross-validation: out-of-fold scores for the report and the
/// threshold, then one model on everything.
pub fn train(
    clips: &[Clip],
    skipped: Vec<RowProblem>,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let (calls, windows) = extract_all(clips, opts)?;
    train_on_windows(clips, &calls, &windows, skipped, opts)
}

/// [`train`] on already extracted calls and windows: speaker-disjoint outer folds, each
/// fold's model selected, calibrated and thresholded inside its training side only
/// ([`select::fit_nested`]), every held-out clip replayed through the engine with its fold's
/// model; then the same selection on all clips for the model written.
pub fn train_on_windows(
    clips: &[Clip],
    calls: &[ClipCall],
    windows: &[ClipWindows],
    skipped: Vec<RowProblem>,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let groups: Vec<String> = clips.iter().map(group_of).collect();
    let mut distinct = groups.clone();
    distinct.sort();
    distinct.dedup();
    let k = opts
        .folds
        .unwrap_or(distinct.len().min(6))
        .clamp(2, distinct.len().max(2));
    let fold = speaker_folds(&groups, k);
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let mut fold_models = Vec::with_capacity(k);
    let mut chosen = Vec::with_capacity(k);
    for f in 0..k {
        let train_idx: Vec<usize> = (0..clips.len()).filter(|&i| fold[i] != f).collect();
        let (model, choice) = select::fit_nested(&train_idx, windows, &labels, &groups, opts)?;
        fold_models.push(Arc::new(model));
        chosen.push(choice);
    }
    // Every held-out clip is replayed through the engine with its fold's model.
    let scores = engine_scores(calls, windows, &fold_models, &|i| fold[i], opts)?;
    // Each clip decided at its own fold's threshold: an operating point no held-out clip chose.
    let called: Vec<bool> = (0..clips.len())
        .map(|i| scores[i] >= chosen[fold[i]].threshold)
        .collect();
    let all: Vec<usize> = (0..clips.len()).collect();
    let (mut model, final_choice) = select::fit_nested(&all, windows, &labels, &groups, opts)?;
    let primed: Vec<bool> = windows.iter().map(|w| w.primed).collect();
    let (reliability, ece) = select::reliability(&scores, &labels);
    let by_intensity = by_intensity(clips, &scores);
    let leave_corpus_out = leave_corpus_out(clips, calls, windows, &groups, opts)?;
    let mut prior_auc = None;
    if opts.prior {
        let mut o = opts.clone();
        o.l2 = final_choice.l2;
        prior_auc = Some(prior::out_of_fold_auc(windows, &labels, &fold, k, &o)?);
        model.prior = Some(prior::fit_prior(&all, windows, &labels, &o)?);
    }
    let Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    } = summarise(clips, scores, Some(&fold), &primed);
    let rule = format!(
        "nested: L2, Platt calibration and threshold (highest inner out-of-fold TPR with FPR <= \
         {}) chosen inside each training side; clip score = highest caller tone_score `replay` \
         reports inside the clip, streamed after the speaker's calm material",
        opts.max_fpr
    );
    let op = nested_point(&labels, &called, final_choice.threshold);
    model.operating_point = OperatingPoint {
        rule: rule.clone(),
        tpr: op.tpr,
        fpr: op.fpr,
    };
    model.provenance.folds = k;
    model.provenance.auc.insert("out_of_fold".into(), auc);
    if let Some((lo, hi)) = auc_ci {
        model
            .provenance
            .auc
            .insert("out_of_fold_ci95_low".into(), lo);
        model
            .provenance
            .auc
            .insert("out_of_fold_ci95_high".into(), hi);
    }
    if let Some(a) = nc {
        model.provenance.auc.insert("vs_neutral_calm".into(), a);
    }
    for (name, t) in &leave_corpus_out {
        model.provenance.auc.insert(format!("corpus {name}"), t.auc);
    }
    let (n_pos, n_neg) = roc::counts(&labels);
    Ok(TuneReport {
        n_pos,
        n_neg,
        auc,
        auc_ci95: auc_ci,
        auc_by_negative: by,
        auc_by_negative_ci95: by_ci,
        auc_neutral_calm: nc,
        auc_neutral_calm_ci95: nc_ci,
        auc_by_speaker: by_speaker,
        auc_by_intensity: by_intensity,
        leave_corpus_out,
        prior_auc,
        chosen,
        final_choice: Some(final_choice),
        reliability,
        ece,
        operating_point: op,
        rule,
        curve,
        folds: k,
        skipped,
        unprimed: primed.iter().filter(|p| !**p).count(),
        clips: scored,
        model,
    })
}

/// TPR/FPR of per-clip decisions, reported at `threshold` (the written model's).
fn nested_point(labels: &[bool], called: &[bool], threshold: f64) -> RocPoint {
    let (n_pos, n_neg) = roc::counts(labels);
    let tp = labels
        .iter()
        .zip(called)
        .filter(|(l, c)| **l && **c)
        .count();
    let fp = labels
        .iter()
        .zip(called)
        .filter(|(l, c)| !**l && **c)
        .count();
    RocPoint {
        threshold,
        tpr: tp as f64 / n_pos.max(1) as f64,
        fpr: fp as f64 / n_neg.max(1) as f64,
        precision: if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            1.0
        },
        tp,
        fp,
    }
}

/// AUC (with its interval) of the positives of each intensity against every negative.
fn by_intensity(clips: &[Clip], scores: &[f64]) -> BTreeMap<String, AucFigure> {
    let levels: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter(|c| c.row.positive)
        .filter_map(|c| c.row.intensity.as_deref())
        .collect();
    let mut out = BTreeMap::new();
    for level in levels {
        let (s, l): (Vec<f64>, Vec<bool>) = clips
            .iter()
            .zip(scores)
            .filter(|(c, _)| !c.row.positive || c.row.intensity.as_deref() == Some(level))
            .map(|(c, s)| (*s, c.row.positive))
            .unzip();
        if let Some(auc) = roc::auc(&s, &l) {
            let (n_pos, n_neg) = roc::counts(&l);
            out.insert(
                level.to_owned(),
                AucFigure {
                    auc,
                    ci95: roc::auc_ci95(&s, &l),
                    n_pos,
                    n_neg,
                },
            );
        }
    }
    out
}

/// For each corpus with both classes while the others together have both: a model selected
/// on the other corpora (nested, as always) scoring this one through the engine. Keys read
/// `train->test`.
fn leave_corpus_out(
    clips: &[Clip],
    calls: &[ClipCall],
    windows: &[ClipWindows],
    groups: &[String],
    opts: &TuneOptions,
) -> Result<BTreeMap<String, AucFigure>, TuneError> {
    let corpora: std::collections::BTreeSet<&str> = clips
        .iter()
        .filter_map(|c| c.row.corpus.as_deref())
        .collect();
    let mut out = BTreeMap::new();
    if corpora.len() < 2 {
        return Ok(out);
    }
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    for test in &corpora {
        let is_test = |i: usize| clips[i].row.corpus.as_deref() == Some(*test);
        let train: Vec<usize> = (0..clips.len()).filter(|&i| !is_test(i)).collect();
        let held: Vec<usize> = (0..clips.len()).filter(|&i| is_test(i)).collect();
        let both = |idx: &[usize]| {
            let p = idx.iter().filter(|&&i| labels[i]).count();
            p > 0 && p < idx.len()
        };
        if !both(&train) || !both(&held) {
            continue;
        }
        let (model, _) = select::fit_nested(&train, windows, &labels, groups, opts)?;
        let held_calls: Vec<ClipCall> = held.iter().map(|&i| calls[i].clone()).collect();
        let held_windows: Vec<ClipWindows> = held.iter().map(|&i| windows[i].clone()).collect();
        let s = engine_scores(&held_calls, &held_windows, &[Arc::new(model)], &|_| 0, opts)?;
        let l: Vec<bool> = held.iter().map(|&i| labels[i]).collect();
        let train_names: Vec<&str> = corpora.iter().filter(|c| *c != test).copied().collect();
        if let Some(auc) = roc::auc(&s, &l) {
            let (n_pos, n_neg) = roc::counts(&l);
            out.insert(
                format!("{}->{test}", train_names.join("+")),
                AucFigure {
                    auc,
                    ci95: roc::auc_ci95(&s, &l),
                    n_pos,
                    n_neg,
                },
            );
        }
    }
    Ok(out)
}

/// An AUC with its 95 % interval and the counts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AucFigure {
    /// AUC.
    pub auc: f64,
    /// DeLong 95 % interval.
    pub ci95: Option<(f64, f64)>,
    /// Positives.
    pub n_pos: usize,
    /// Negatives.
    pub n_neg: usize,
}

/// Evaluates a given model (no training): its own threshold is the operating point.
pub fn evaluate(
    clips: &[Clip],
    skipped: Vec<RowProblem>,
    model: &ToneModel,
    opts: &TuneOptions,
) -> Result<TuneReport, TuneError> {
    check_classes(clips)?;
    let mut o = opts.clone();
    o.window_ms = model.window_ms;
    o.min_speech_ms = model.min_speech_ms;
    o.max_age_ms = model.max_age_ms;
    let (calls, windows) = extract_all(clips, &o)?;
    let models = [Arc::new(model.clone())];
    let scores = engine_scores(&calls, &windows, &models, &|_| 0, &o)?;
    let labels: Vec<bool> = clips.iter().map(|c| c.row.positive).collect();
    let op = roc::at_threshold(&scores, &labels, f64::from(model.threshold));
    let primed: Vec<bool> = windows.iter().map(|w| w.primed).collect();
    let (reliability, ece) = select::reliability(&scores, &labels);
    let by_int = by_intensity(clips, &scores);
    let Summary {
        clips: scored,
        auc,
        auc_ci,
        by,
        by_ci,
        neutral_calm: nc,
        neutral_calm_ci: nc_ci,
        by_speaker,
        curve,
    } = summarise(clips, scores, None, &primed);
    let (n_pos, n_neg) = roc::counts(&labels);
    Ok(TuneReport {
        n_pos,
        n_neg,
        auc,
        auc_ci95: auc_ci,
        auc_by_negative: by,
        auc_by_negative_ci95: by_ci,
        auc_neutral_calm: nc,
        auc_neutral_calm_ci95: nc_ci,
        auc_by_speaker: by_speaker,
        auc_by_intensity: by_int,
        leave_corpus_out: BTreeMap::new(),
        prior_auc: None,
        chosen: Vec::new(),
        final_choice: None,
        reliability,
        ece,
        operating_point: op,
        rule: "the model's own threshold".into(),
        curve,
        folds: 0,
        skipped,
        unprimed: primed.iter().filter(|p| !**p).count(),
        clips: scored,
        model: model.clone(),
    })
}

fn check_classes(clips: &[Clip]) -> Result<(), TuneError> {
    let pos = clips.iter().filter(|c| c.row.positive).count();
    if pos == 0 || pos == clips.len() {
        return Err(TuneError::NothingUsable(format!(
            "{pos} positive and {} negative recordings; need both",
            clips.len() - pos
        )));
    }
    Ok(())
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
fn replay_on_line(
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
fn tone_alone(
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
    fn folds_are_speaker_disjoint_and_deterministic() {
        let groups: Vec<String> = ["s3", "s1", "s2", "s1", "s4", "s3", "s5", "s2", "s1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let a = speaker_folds(&groups, 3);
        assert_eq!(a, speaker_folds(&groups, 3));
        for i in 0..groups.len() {
            for j in 0..groups.len() {
                if groups[i] == groups[j] {
                    assert_eq!(a[i], a[j], "speaker {} split across folds", groups[i]);
                }
            }
        }
        // Sorted speakers s1..s5 dealt round-robin: s1→0, s2→1, s3→2, s4→0, s5→1.
        assert_eq!(a, vec![2, 0, 1, 0, 0, 2, 1, 1, 0]);
        // Order of rows does not matter.
        let mut rev = groups.clone();
        rev.reverse();
        let mut b = speaker_folds(&rev, 3);
        b.reverse();
        assert_eq!(a, b);
    }

    #[test]
    fn sustained_peak_is_the_level_held_long_enough() {
        let s = [0.1, 0.9, 0.2, 0.7, 0.8, 0.75, 0.3];
        assert_eq!(sustained_peak(&s, 10, 0), 0.9);
        assert_eq!(sustained_peak(&s, 10, 20), 0.7);
        assert_eq!(sustained_peak(&s, 10, 10), 0.75);
        assert_eq!(sustained_peak(&s, 10, 1000), 0.0);
    }
}
