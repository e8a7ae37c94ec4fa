//! The tone model on the shared data: speaker-disjoint emotion AUCs on RAVDESS through the
//! telephone channel (the procedure that produced `models/default.json`) and time-to-escalation
//! of the bundled model on the synthetic calls.

use crate::common::{data_dir, tone_settings};
use warmline::detect::tone::ToneModel;
use warmline::tune::dataset::{Negatives, read_emotion_index};
use warmline::tune::{self, TuneOptions};

fn clips(corpus: &str) -> Vec<tune::Clip> {
    let index = data_dir().join("emotion/index.csv");
    let (rows, problems) = read_emotion_index(&index, Some(corpus), Negatives::All).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let (clips, problems) = tune::load_clips(rows, true);
    assert!(problems.is_empty(), "{problems:?}");
    clips
}

#[test]
fn ravdess_anger_separates_speaker_disjoint_on_the_telephone_channel() {
    let clips = clips("ravdess");
    let bundled = ToneModel::bundled();
    let opts = TuneOptions {
        window_ms: bundled.window_ms,
        min_speech_ms: bundled.min_speech_ms,
        max_age_ms: bundled.max_age_ms,
        ..TuneOptions::default()
    };
    let report = tune::train(&clips, Vec::new(), &opts).unwrap();
    eprintln!(
        "RAVDESS out-of-fold: AUC {:.4}, vs neutral/calm {:?}, {} folds, by negative {:?}",
        report.auc, report.auc_neutral_calm, report.folds, report.auc_by_negative
    );
    assert_eq!(report.folds, 6);
    assert_eq!((report.n_pos, report.n_neg), (96, 180));
    assert_eq!(report.unprimed, 0, "every clip had its speaker baseline");
    // Every clip is now scored as the live pipeline scores it (streamed after the speaker's
    // calm material, highest caller tone_score inside the clip; nested L2/Platt/threshold).
    // Measured 0.869 / 0.953 under that protocol since the DSP's speech floor went from -60 to
    // -70 dBFS (branch tone3; 0.836 / 0.915 before it, 0.909 / 0.985 under the old per-clip
    // window, which the live path never ran). The bounds guard against regression; #18's
    // targets (0.93 / 0.98) are not reached.
    assert!(
        report.auc >= 0.85,
        "anger vs every other emotion: AUC {}",
        report.auc
    );
    let nc = report.auc_neutral_calm.unwrap();
    assert!(nc >= 0.93, "anger vs neutral/calm: AUC {nc}");
    // Speaker-disjoint: no fold holds a speaker that another fold also holds.
    for a in &report.clips {
        for b in &report.clips {
            if a.speaker == b.speaker {
                assert_eq!(a.fold, b.fold);
            }
        }
    }
}

#[test]
fn bundled_model_fires_on_every_escalating_call_after_onset() {
    let model = ToneModel::bundled();
    let calls = tune::evaluate_calls(
        &data_dir().join("calls/index.csv"),
        &model,
        &tone_settings(),
        model.sustain_ms,
        2,
        false,
    )
    .unwrap();
    assert_eq!(calls.len(), 24);
    let mut delays = Vec::new();
    let mut calm_fired = 0;
    for c in &calls {
        eprintln!(
            "{} {}: onset {:?} fired {:?} peak held {:.3} (before onset {:.3})",
            c.wav,
            c.kind,
            c.anger_onset_ms,
            c.first_cross_ms,
            c.peak_sustained,
            c.peak_sustained_before_onset
        );
        match c.anger_onset_ms {
            None => calm_fired += usize::from(c.first_cross_ms.is_some()),
            Some(_) => {
                let d = c
                    .delay_ms()
                    .unwrap_or_else(|| panic!("escalating call {} never fired", c.wav));
                assert!(d > 0, "{} fired {} ms before the anger onset", c.wav, -d);
                delays.push(d);
            }
        }
    }
    delays.sort_unstable();
    assert_eq!(delays.len(), 12);
    // Measured with the bundled model (issue #18: augmented training, nested threshold 0.699):
    // median 8.3 s (upper), max 18.3 s, one calm call fires (ravdess_12_calm; the previous
    // model had none, with a zero margin, and failed under AGC, gating and noise). The max was
    // 12.0 s before the DSP's speech floor went from -60 to -70 dBFS (branch tone3): one call,
    // ravdess_01_escalating, is slower; quiet lines now get a baseline (tests/data/line.rs).
    // Targets (median <= 3 s, max <= 8 s, no calm) are not met; these bounds guard against
    // regressions only.
    assert!(delays[6] <= 8500, "median delay {} ms", delays[6]);
    assert!(delays[11] <= 18_500, "max delay {} ms", delays[11]);
    assert!(calm_fired <= 1, "{calm_fired} calm calls fired");
    // The same run also replays each call through the live pipeline (what `tune --calls`
    // reports as live handoffs): the same verdicts as `warmline replay` (tests/data/calls.rs).
    for c in &calls {
        match (c.anger_onset_ms, c.handoff_delay_ms()) {
            (Some(_), Some(d)) => assert!(d > 0, "{} handed off {} ms early", c.wav, -d),
            (Some(_), None) => panic!("escalating call {} never handed off live", c.wav),
            (None, _) => {}
        }
    }
    let live_calm = calls
        .iter()
        .filter(|c| c.anger_onset_ms.is_none() && c.handoff_ms.is_some())
        .count();
    assert!(live_calm <= 1, "{live_calm} calm calls handed off live");
}
