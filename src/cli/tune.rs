//! `warmline tune`: evaluate the tone detector on labelled recordings, pick a threshold, write a
//! model file, plot the ROC curve, and check time-to-escalation on whole calls.
//!
//! Bad rows (empty/unknown label, missing, corrupt or empty WAV) are printed to stderr with
//! their file and line and skipped; the run fails (non-zero exit) only when nothing usable is
//! left, i.e. no recordings of one of the classes. The human report goes to stdout; the last
//! stdout line is one JSON object.

use crate::detect::tone::ToneModel;
use crate::tune::dataset::{self, Negatives};
use crate::tune::{self, CallOutcome, CallTally, TuneOptions, TuneReport, plot};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// Which negatives `--emotion-index` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NegativesArg {
    /// Every emotion other than anger.
    All,
    /// Only neutral and calm.
    NeutralCalm,
}

/// Arguments of `warmline tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Labels CSV: header with `path,label` and optional `speaker` (and `baseline` = 1 to mark a
    /// speaker's calm reference material); paths relative to the CSV's folder.
    #[arg(long, value_name = "FILE.csv")]
    pub labels: Option<PathBuf>,
    /// Use the shared data set's `emotion/index.csv` instead of a labels CSV (anger positive).
    #[arg(long, value_name = "INDEX.csv", conflicts_with = "labels")]
    pub emotion_index: Option<PathBuf>,
    /// With `--emotion-index`: only this corpus (`ravdess`, `emodb`).
    #[arg(long, requires = "emotion_index")]
    pub corpus: Option<String>,
    /// With `--emotion-index`: which emotions are the negatives.
    #[arg(long, value_enum, default_value = "all")]
    pub negatives: NegativesArg,
    /// Write the rows used as a labels CSV (to repeat the run with `--labels`).
    #[arg(long, value_name = "FILE.csv")]
    pub write_labels: Option<PathBuf>,
    /// Evaluate this model file instead of training one.
    #[arg(long, value_name = "FILE.json")]
    pub model: Option<PathBuf>,
    /// Write the trained model here.
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Write the ROC curve here as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also stream whole calls (`calls/index.csv`: `wav`, `kind`, `anger_onset_ms`) and report
    /// when the sustain rule first fires in each.
    #[arg(long, value_name = "INDEX.csv")]
    pub calls: Option<PathBuf>,
    /// With `--calls`: also replay every call through these phone-line conditions
    /// (comma-separated: clean, gain, agc_fast, agc_slow, gate, noise10, alaw, loss3, random)
    /// and print one line of live handoffs per condition.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME,...",
        requires = "calls"
    )]
    pub line_conditions: Vec<String>,
    /// Speaker-disjoint folds (default: number of speakers, at most 6).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Operating point: highest out-of-fold TPR with FPR at most this.
    #[arg(long, default_value_t = 0.05)]
    pub max_fpr: f64,
    /// Degrade audio through the telephone channel (8 kHz, 300-3400 Hz, mu-law) first.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub telephone: bool,
    /// Tone window: the caller's most recent speech the features are taken over, ms.
    #[arg(long, default_value_t = 2000)]
    pub window_ms: u32,
    /// Only these window features (comma-separated; default all), e.g. to leave out the level
    /// features when the recordings were gain-normalised one by one.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub features: Vec<String>,
    /// Media time after which a frame leaves the tone window (so a long silence clears it), ms.
    #[arg(long, default_value_t = 6000)]
    pub max_age_ms: u32,
    /// Speech the window must hold before it is scored, ms.
    #[arg(long, default_value_t = 500)]
    pub min_speech_ms: u32,
    /// Sustain: the score must stay at or above the threshold this long (written to the model
    /// and used for the calls check), ms.
    #[arg(long, default_value_t = 500)]
    pub sustain_ms: u32,
    /// TOML configuration: the DSP and detector settings clips and calls are replayed with
    /// (as `serve` and `replay` would use them).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Train on this many extra copies of every clip, each through a random phone line (noise,
    /// gain, AGC, gating, band limit, A-law/mu-law, packet loss); evaluation stays clean.
    #[arg(long, default_value_t = 0)]
    pub augment: usize,
    /// Also fit the population prior: the score a caller gets before their own baseline is
    /// ready, from window features that need no baseline.
    #[arg(long)]
    pub prior: bool,
    /// L2 penalty of the logistic fit.
    #[arg(long, default_value_t = 0.1)]
    pub l2: f64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `warmline tune`. Rows that cannot be used are named on stderr and skipped; the run goes
/// on with the rest and writes its outputs, then exits 1 so a script notices.
pub fn run(args: &TuneArgs) -> anyhow::Result<std::process::ExitCode> {
    // Every report line goes through one locked stdout with `writeln!`: a reader that goes
    // away (`warmline tune … | head`) surfaces as a BrokenPipe error, which the binary ends
    // quietly (`cli::exit`), instead of `println!` panicking.
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut skipped_rows = 0usize;
    let cfg = super::load_config(args.config.as_deref())?;
    let live = super::pipeline_settings(&cfg)?;
    let opts = TuneOptions {
        telephone: args.telephone,
        live: live.clone(),
        folds: args.folds,
        max_fpr: args.max_fpr,
        window_ms: args.window_ms,
        max_age_ms: args.max_age_ms,
        features: args.features.clone(),
        min_speech_ms: args.min_speech_ms,
        sustain_ms: args.sustain_ms,
        l2: args.l2,
        augment: args.augment,
        prior: args.prior,
        train_stride: 5,
        threads: args.threads.max(1),
        progress: !args.quiet,
    };
    let given = match &args.model {
        Some(p) => Some(ToneModel::load(p)?),
        None => None,
    };
    let mut json = serde_json::Map::new();
    let mut model = given.clone();

    let rows = if let Some(labels) = &args.labels {
        Some(dataset::read_labels(labels)?)
    } else if let Some(index) = &args.emotion_index {
        let neg = match args.negatives {
            NegativesArg::All => Negatives::All,
            NegativesArg::NeutralCalm => Negatives::NeutralCalm,
        };
        Some(dataset::read_emotion_index(
            index,
            args.corpus.as_deref(),
            neg,
        )?)
    } else {
        None
    };
    if rows.is_none() && args.calls.is_none() {
        anyhow::bail!("nothing to do: give --labels, --emotion-index or --calls");
    }

    if let Some((rows, mut problems)) = rows {
        if let Some(p) = &args.write_labels {
            dataset::write_labels(p, &rows)?;
        }
        let (clips, bad) = tune::load_clips(rows, opts.telephone);
        problems.extend(bad);
        for p in &problems {
            eprintln!("skipped {p}");
        }
        skipped_rows = problems.len();
        let report = match &given {
            Some(m) => tune::evaluate(&clips, problems, m, &opts)?,
            None => tune::train(&clips, problems, &opts)?,
        };
        let mut trained = report.model.clone();
        if given.is_none() {
            trained.sustain_ms = args.sustain_ms;
            trained.provenance.command = command_line();
            trained.provenance.data = data_description(args);
            trained.provenance.notes = notes(args, &report);
        }
        print_report(&mut out, args, &report)?;
        if let (Some(path), None) = (&args.out, &given) {
            let text = serde_json::to_string_pretty(&trained)?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing model {}", path.display()))?;
            writeln!(out, "model written to {}", path.display())?;
        }
        if let Some(path) = &args.plot {
            let title = if given.is_some() {
                "tone model ROC (evaluation)"
            } else {
                "tone model ROC (speaker-disjoint out-of-fold)"
            };
            let svg = plot::roc_svg(
                title,
                &[(
                    match report.auc_ci95 {
                        Some((lo, hi)) => {
                            format!("AUC {:.3} (95% CI {lo:.3}-{hi:.3})", report.auc)
                        }
                        None => format!("AUC {:.3}", report.auc),
                    },
                    report.curve.clone(),
                )],
                Some(report.operating_point),
            )
            .map_err(anyhow::Error::msg)?;
            std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
            writeln!(out, "ROC plot written to {}", path.display())?;
            let rel_path = path.with_extension("reliability.svg");
            let svg = plot::reliability_svg(
                &format!("tone score calibration (ECE {:.3})", report.ece),
                &report.reliability,
            )
            .map_err(anyhow::Error::msg)?;
            std::fs::write(&rel_path, svg)
                .with_context(|| format!("writing {}", rel_path.display()))?;
            writeln!(out, "reliability diagram written to {}", rel_path.display())?;
        }
        json.insert("auc".into(), num(report.auc));
        let pair = |c: Option<(f64, f64)>| {
            c.map_or(serde_json::Value::Null, |(lo, hi)| {
                serde_json::Value::Array(vec![num(lo), num(hi)])
            })
        };
        json.insert("auc_ci95".into(), pair(report.auc_ci95));
        json.insert(
            "auc_neutral_calm_ci95".into(),
            pair(report.auc_neutral_calm_ci95),
        );
        json.insert("threshold".into(), num(report.operating_point.threshold));
        json.insert("tpr".into(), num(report.operating_point.tpr));
        json.insert("fpr".into(), num(report.operating_point.fpr));
        json.insert("precision".into(), num(report.operating_point.precision));
        json.insert("n_pos".into(), report.n_pos.into());
        json.insert("n_neg".into(), report.n_neg.into());
        json.insert(
            "auc_neutral_calm".into(),
            report.auc_neutral_calm.map_or(serde_json::Value::Null, num),
        );
        json.insert(
            "auc_by_negative".into(),
            serde_json::to_value(&report.auc_by_negative)?,
        );
        json.insert(
            "auc_by_speaker".into(),
            serde_json::to_value(&report.auc_by_speaker)?,
        );
        json.insert("folds".into(), report.folds.into());
        json.insert(
            "auc_by_intensity".into(),
            serde_json::to_value(&report.auc_by_intensity)?,
        );
        json.insert(
            "leave_corpus_out".into(),
            serde_json::to_value(&report.leave_corpus_out)?,
        );
        json.insert("prior_auc".into(), serde_json::to_value(report.prior_auc)?);
        json.insert("ece".into(), num(report.ece));
        json.insert("chosen".into(), serde_json::to_value(&report.chosen)?);
        json.insert("skipped".into(), report.skipped.len().into());
        json.insert("unprimed".into(), report.unprimed.into());
        model = Some(trained);
    }

    if let Some(index) = &args.calls {
        let m = model.clone().unwrap_or_else(ToneModel::bundled);
        let sustain = if given.is_some() {
            m.sustain_ms
        } else {
            args.sustain_ms
        };
        let calls = tune::evaluate_calls(index, &m, &live, sustain, opts.threads, opts.progress)?;
        let summary = calls_summary(&mut out, &calls, m.threshold, sustain)?;
        json.insert("calls".into(), summary);
        let mut by_line = serde_json::Map::new();
        for condition in &args.line_conditions {
            let calls = tune::evaluate_calls_on(
                index,
                &m,
                &live,
                sustain,
                opts.threads,
                opts.progress,
                condition,
            )?;
            let live = CallTally::new(&calls, |c| (c.handoff_ms, c.handoff_delay_ms()));
            writeln!(
                out,
                "{}",
                live.line(&format!("line {condition}, live handoffs"), "handed off")
            )?;
            by_line.insert(
                condition.clone(),
                serde_json::Value::Object(live.json("handed_off")),
            );
        }
        if !by_line.is_empty() {
            json.insert("calls_by_line".into(), serde_json::Value::Object(by_line));
        }
        if !json.contains_key("threshold") {
            json.insert("threshold".into(), num(f64::from(m.threshold)));
        }
    }
    writeln!(out, "{}", serde_json::Value::Object(json))?;
    if skipped_rows > 0 {
        eprintln!("warmline: {skipped_rows} row(s) skipped (named above); exit status 1");
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64((v * 1e6).round() / 1e6)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("tune") {
        args.insert(0, "tune".into());
    }
    format!("warmline {}", args.join(" "))
}

fn data_description(args: &TuneArgs) -> String {
    match (&args.labels, &args.emotion_index) {
        (Some(l), _) => format!("labels {}", l.display()),
        (None, Some(i)) => format!(
            "emotion index {} corpus {} negatives {:?}",
            i.display(),
            args.corpus.as_deref().unwrap_or("all"),
            args.negatives
        ),
        _ => String::new(),
    }
}

fn notes(args: &TuneArgs, report: &TuneReport) -> Vec<String> {
    vec![
        format!(
            "channel: {}",
            if args.telephone {
                "telephone (8 kHz, 300-3400 Hz band-pass, G.711 mu-law round trip)"
            } else {
                "as recorded"
            }
        ),
        "baseline: each clip replayed as one call through the live engine after the same \
         speaker's other neutral/calm clips (path order) up to where the DSP baseline is ready"
            .into(),
        format!("clip score: {}", report.rule),
        format!(
            "augmentation: {}",
            if args.augment == 0 {
                "none (clean clips only)".to_owned()
            } else {
                format!(
                    "each clip's call also seen through {} random phone lines (tune::augment::Line::random: noise 5-30 dB, gain, AGC, gating, band limit, A-law/mu-law, packet loss) for training; held-out scores on clean calls",
                    args.augment
                )
            }
        ),
        format!(
            "{} positive / {} negative clips, {} skipped rows, {} clips without a ready baseline",
            report.n_pos,
            report.n_neg,
            report.skipped.len(),
            report.unprimed
        ),
    ]
}

fn print_report(out: &mut impl Write, args: &TuneArgs, r: &TuneReport) -> std::io::Result<()> {
    let speakers: std::collections::BTreeSet<_> = r
        .clips
        .iter()
        .filter_map(|c| c.speaker.as_deref())
        .collect();
    writeln!(
        out,
        "warmline tune: {} positive, {} negative recordings, {} speakers, {}, {}",
        r.n_pos,
        r.n_neg,
        speakers.len(),
        if r.folds > 0 {
            format!("{} speaker-disjoint folds (out-of-fold scores)", r.folds)
        } else {
            format!(
                "evaluating {}",
                args.model
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        },
        if args.telephone {
            "telephone channel"
        } else {
            "audio as recorded"
        }
    )?;
    let ci = |c: Option<&(f64, f64)>| {
        c.map_or(String::new(), |(lo, hi)| {
            format!("  (95% CI {lo:.3}-{hi:.3})")
        })
    };
    writeln!(out, "AUC: {:.4}{}", r.auc, ci(r.auc_ci95.as_ref()))?;
    if let Some(a) = r.auc_neutral_calm {
        writeln!(
            out,
            "AUC vs neutral+calm only: {a:.4}{}",
            ci(r.auc_neutral_calm_ci95.as_ref())
        )?;
    }
    for (label, a) in &r.auc_by_negative {
        writeln!(
            out,
            "  vs {label:<10} {a:.4}{}",
            ci(r.auc_by_negative_ci95.get(label))
        )?;
    }
    if !r.auc_by_speaker.is_empty() {
        let worst = r
            .auc_by_speaker
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(s, a)| format!("; lowest {s} {a:.3}"))
            .unwrap_or_default();
        let mean = r.auc_by_speaker.values().sum::<f64>() / r.auc_by_speaker.len() as f64;
        writeln!(
            out,
            "AUC within each speaker: mean {mean:.3} over {} speakers{worst}",
            r.auc_by_speaker.len()
        )?;
        for (sp, a) in &r.auc_by_speaker {
            writeln!(out, "  {sp:<14} {a:.3}")?;
        }
    }
    for (level, f) in &r.auc_by_intensity {
        writeln!(
            out,
            "AUC, {level} intensity positives vs every negative: {:.4}{} ({} vs {})",
            f.auc,
            ci(f.ci95.as_ref()),
            f.n_pos,
            f.n_neg
        )?;
    }
    for (name, f) in &r.leave_corpus_out {
        writeln!(
            out,
            "leave-corpus-out {name}: AUC {:.4}{} ({} positive, {} negative)",
            f.auc,
            ci(f.ci95.as_ref()),
            f.n_pos,
            f.n_neg
        )?;
    }
    if let Some(f) = &r.prior_auc {
        writeln!(
            out,
            "population prior (clips heard without any baseline), out-of-fold: AUC {:.4}{}",
            f.auc,
            ci(f.ci95.as_ref())
        )?;
    }
    if !r.chosen.is_empty() {
        let l2: Vec<String> = r.chosen.iter().map(|c| format!("{}", c.l2)).collect();
        writeln!(out, "L2 chosen inside each outer fold: {}", l2.join(", "))?;
    }
    if let Some(c) = &r.final_choice {
        writeln!(
            out,
            "model written: L2 {} (inner AUC {:.4}), Platt a {:.3} c {:.3}, threshold {:.4}",
            c.l2, c.inner_auc, c.platt_a, c.platt_c, c.threshold
        )?;
    }
    writeln!(
        out,
        "calibration (out-of-fold clip scores): expected calibration error {:.3}",
        r.ece
    )?;
    for b in &r.reliability {
        writeln!(
            out,
            "  predicted {:.3}  observed {:.3}  ({} clips)",
            b.predicted, b.observed, b.n
        )?;
    }
    if r.auc_ci95.is_some() {
        writeln!(
            out,
            "  (DeLong intervals treat clips as independent; clips share speakers, so the real \
             uncertainty is wider)"
        )?;
    }
    let op = &r.operating_point;
    writeln!(
        out,
        "operating point ({}): threshold {:.4}, TPR/recall {:.3}, FPR {:.3}, precision {:.3} ({} TP, {} FP)",
        r.rule, op.threshold, op.tpr, op.fpr, op.precision, op.tp, op.fp
    )?;
    writeln!(
        out,
        "threshold sweep:\n  threshold   TPR    FPR    precision"
    )?;
    for p in r.sweep() {
        writeln!(
            out,
            "  {:>9.2}  {:>5.3}  {:>5.3}  {:>9.3}",
            p.threshold, p.tpr, p.fpr, p.precision
        )?;
    }
    if !r.skipped.is_empty() {
        writeln!(out, "skipped rows: {} (listed on stderr)", r.skipped.len())?;
    }
    if r.unprimed > 0 {
        writeln!(
            out,
            "clips scored without a ready speaker baseline (score 0): {}",
            r.unprimed
        )?;
    }
    Ok(())
}

fn calls_summary(
    out: &mut impl Write,
    calls: &[CallOutcome],
    threshold: f32,
    sustain_ms: u32,
) -> std::io::Result<serde_json::Value> {
    writeln!(
        out,
        "calls: tone alone = score >= {threshold:.4} held {sustain_ms} ms; live = handoff by the full pipeline as `warmline replay` runs it\n  call                                   kind        onset_ms  fired_ms  delay_ms  peak_held  peak_before_onset  live_handoff_ms  live_delay_ms"
    )?;
    for c in calls {
        let name = std::path::Path::new(&c.wav)
            .file_name()
            .map_or(c.wav.clone(), |n| n.to_string_lossy().into_owned());
        writeln!(
            out,
            "  {:<38} {:<11} {:>8} {:>9} {:>9} {:>10.3} {:>18.3} {:>16} {:>14}",
            name,
            c.kind,
            c.anger_onset_ms.map_or("-".into(), |v| v.to_string()),
            c.first_cross_ms.map_or("-".into(), |v| v.to_string()),
            c.delay_ms().map_or("-".into(), |v| v.to_string()),
            c.peak_sustained,
            c.peak_sustained_before_onset,
            c.handoff_ms.map_or("-".into(), |v| v.to_string()),
            c.handoff_delay_ms().map_or("-".into(), |v| v.to_string()),
        )?;
    }
    let tone = CallTally::new(calls, |c| (c.first_cross_ms, c.delay_ms()));
    writeln!(out, "{}", tone.line("tone alone", "fired"))?;
    let live = CallTally::new(calls, |c| (c.handoff_ms, c.handoff_delay_ms()));
    writeln!(out, "{}", live.line("live handoffs", "handed off"))?;
    let mut json = tone.json("fired");
    json.insert("sustain_ms".into(), sustain_ms.into());
    json.insert(
        "live".into(),
        serde_json::Value::Object(live.json("handed_off")),
    );
    Ok(serde_json::Value::Object(json))
}

impl CallTallyJson for CallTally {
    fn json(&self, word: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(format!("escalating_{word}"), self.delays.len().into());
        m.insert("escalating_missed".into(), self.missed.into());
        m.insert("escalating_early".into(), self.early.into());
        m.insert(format!("calm_{word}"), self.false_calm.into());
        m.insert("calm_calls".into(), self.n_calm.into());
        m.insert(
            "false_handoff_rate_ci95".into(),
            self.false_rate_ci()
                .map_or(serde_json::Value::Null, |(lo, hi)| {
                    serde_json::Value::Array(vec![num(lo), num(hi)])
                }),
        );
        m.insert("median_delay_ms".into(), self.median().into());
        m.insert("max_delay_ms".into(), self.delays.last().copied().into());
        m
    }
}

/// A tally as report JSON.
trait CallTallyJson {
    fn json(&self, word: &str) -> serde_json::Map<String, serde_json::Value>;
}
