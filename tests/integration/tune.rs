//! `warmline tune` end to end on generated voices: labelled clips in, a model that `replay`
//! loads, an ROC plot, and bad rows named with their file and line.

use std::path::Path;
use std::process::Command;
use warmline::detect::tone::ToneModel;
use warmline::synth::{Segment, speech};

fn warmline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warmline"))
}

fn write_wav(path: &Path, samples: &[i16], rate_hz: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

/// Four speakers at different pitches, each with three calm clips and two agitated ones, at
/// 16 kHz (so the telephone channel resamples them). Returns the labels CSV text.
fn corpus(dir: &Path) -> String {
    let mut csv = String::from("path,label,speaker\n");
    for (s, f0) in [110.0f32, 135.0, 190.0, 230.0].iter().enumerate() {
        for k in 0..5u64 {
            let (seg, label) = if k < 3 {
                (Segment::calm(4.0, *f0), "neutral")
            } else {
                (Segment::agitated(3.0, *f0), "angry")
            };
            let name = format!("s{s}_{k}.wav");
            let audio = speech(&[seg], 16_000, 1000 * s as u64 + k);
            write_wav(&dir.join(&name), &audio, 16_000);
            csv.push_str(&format!("{name},{label},spk{s}\n"));
        }
    }
    csv
}

fn summary(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn tune_trains_a_loadable_model_with_a_plot_and_names_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = corpus(dir.path());
    csv.push_str("missing.wav,angry,spk0\n"); // line 22
    csv.push_str("s0_0.wav,0.7,spk0\n"); // line 23: a score, not a label
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, &csv).unwrap();
    let model = dir.path().join("m.json");
    let roc = dir.path().join("roc.svg");
    let run = || {
        warmline()
            .args(["tune", "--quiet", "--labels"])
            .arg(&labels)
            .arg("--out")
            .arg(&model)
            .arg("--plot")
            .arg(&roc)
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    // Bad rows are named with file and line; the run goes on, then exits 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("labels.csv:22") && err.contains("missing.wav"),
        "{err}"
    );
    assert!(
        err.contains("labels.csv:23") && err.contains("unknown label"),
        "{err}"
    );
    let s = summary(&out.stdout);
    assert_eq!(
        (s["n_pos"].as_u64(), s["n_neg"].as_u64()),
        (Some(8), Some(12))
    );
    assert_eq!(s["skipped"].as_u64(), Some(2));
    assert_eq!(
        s["unprimed"].as_u64(),
        Some(0),
        "each speaker's calm clips primed the baseline"
    );
    // Agitated synthetic voices are louder, higher and brighter than each speaker's own calm
    // clips: speaker-disjoint folds must separate them.
    let auc = s["auc"].as_f64().unwrap();
    assert!(auc >= 0.9, "AUC {auc}");
    // The AUC comes with its 95 % interval, which holds it (and is wide on 20 clips).
    let ci: Vec<f64> = s["auc_ci95"]
        .as_array()
        .expect("auc_ci95 is reported")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        ci.len() == 2 && ci[0] <= auc && auc <= ci[1] && ci[1] <= 1.0,
        "{ci:?} around {auc}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("95% CI"), "{text}");
    // Each of the four speakers has both classes, so each gets its own AUC.
    let by_speaker = s["auc_by_speaker"].as_object().expect("auc_by_speaker");
    let names: Vec<&str> = by_speaker.keys().map(String::as_str).collect();
    assert_eq!(names, ["spk0", "spk1", "spk2", "spk3"]);
    assert!(
        by_speaker
            .values()
            .all(|a| a.as_f64().is_some_and(|a| (0.0..=1.0).contains(&a))),
        "{by_speaker:?}"
    );

    let m = ToneModel::load(&model).unwrap();
    assert!(m.threshold > 0.0 && m.threshold < 1.0);
    assert_eq!(m.provenance.folds, 4);
    let svg = std::fs::read_to_string(&roc).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the ROC plot is valid XML");
    let texts: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(texts.contains("AUC"), "legend names the AUC: {texts}");
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("polyline") || n.has_tag_name("path")),
        "the curve is drawn"
    );

    // Deterministic: a second run writes the same model.
    let first = std::fs::read(&model).unwrap();
    run();
    assert_eq!(std::fs::read(&model).unwrap(), first);

    // `replay` loads it through the config.
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        format!("[detector]\nmodel = {:?}\n", model.display().to_string()),
    )
    .unwrap();
    let out = warmline()
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg(dir.path().join("s0_3.wav"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_closed_pipe_ends_tune_quietly() {
    // `warmline tune … | head` with a reader that is already gone: every report line meets a
    // closed pipe, which must end the run with status 0 and nothing on stderr (println! would
    // panic with "failed printing to stdout: Broken pipe").
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, corpus(dir.path())).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.json");
    let mut cmd = warmline();
    cmd.args(["tune", "--quiet", "--labels"])
        .arg(&labels)
        .arg("--model")
        .arg(&model);
    crate::common::assert_quiet_when_stdout_closes(cmd);
}
