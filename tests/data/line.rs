//! The 24 development calls through what phone lines do to a voice (issue #18): each call's
//! caller audio sent through a named condition of `warmline::tune::augment` (seeded per call),
//! then replayed exactly as `warmline replay` runs it (bundled model, default settings but a
//! caller loop only weighing in, see [`tone_settings`]; transcript sidecar). Prints one line per condition: escalating calls handed off after the
//! onset, median and max delay, calm calls handed off.
//!
//! `WARMLINE_DATA=../shared/data cargo test --release --test data line -- --nocapture`

use crate::common::{data_dir, tone_settings};
use warmline::detect::tone::ToneModel;
use warmline::tune::{self, CallTally};

/// Live handoffs of the 24 calls under `condition`.
fn tally(condition: &str) -> CallTally {
    let model = ToneModel::bundled();
    let calls = tune::evaluate_calls_on(
        &data_dir().join("calls/index.csv"),
        &model,
        &tone_settings(),
        model.sustain_ms,
        2,
        false,
        condition,
    )
    .unwrap();
    assert_eq!(calls.len(), 24);
    for c in &calls {
        eprintln!(
            "  {condition:<9} {:<28} onset {:>6} handoff {:>6} peak held {:.3} (before onset {:.3})",
            std::path::Path::new(&c.wav)
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
            c.anger_onset_ms.map_or("-".into(), |v| v.to_string()),
            c.handoff_ms.map_or("-".into(), |v| v.to_string()),
            c.peak_sustained,
            c.peak_sustained_before_onset
        );
    }
    let t = CallTally::new(&calls, |c| (c.handoff_ms, c.handoff_delay_ms()));
    eprintln!("{}", t.line(&format!("line {condition}"), "handed off"));
    t
}

/// Caught after the onset (handed off, not early).
fn caught(t: &CallTally) -> usize {
    t.delays.iter().filter(|d| **d > 0).count()
}

#[test]
fn calls_through_phone_line_conditions() {
    // (condition, at least this many of 12 caught after onset, at most this many of 12 calm
    // calls handed off). Bounds sit at the level measured with the bundled model (see
    // BENCHMARKS.md, "phone line"), so a regression fails; #18's target is 12 and 0 everywhere.
    // Measured (bundled model, DSP speech floor at -70 dBFS since branch tone3): clean 12/1,
    // gain 12/2, agc_fast 4/0, agc_slow 11/0, gate 12/0, noise10 12/1, alaw 12/1, loss3 12/1.
    // With the -60 dBFS floor: 12/1, 10/2, 4/0, 11/1, 11/0, 12/1, 12/1, 12/1 (the gain row's
    // -12 dB calls lost their baseline); the model before augmentation: 12/0, 11/2, 1/0,
    // 10/3 (one early), 7/0, 9/3, 12/0, 12/0.
    let bounds: [(&str, usize, usize); 8] = [
        ("clean", 12, 1),
        ("gain", 12, 2),
        ("agc_fast", 4, 0),
        ("agc_slow", 11, 0),
        ("gate", 12, 0),
        ("noise10", 12, 1),
        ("alaw", 12, 1),
        ("loss3", 12, 1),
    ];
    let mut failures = Vec::new();
    for (condition, min_caught, max_calm) in bounds {
        let t = tally(condition);
        if caught(&t) < min_caught || t.false_calm > max_calm {
            failures.push(format!(
                "{condition}: {} caught (bound {min_caught}), {} calm handed off (bound {max_calm})",
                caught(&t),
                t.false_calm
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
