//! `warmline replay` as a user runs it: the real binary over the bundled fixtures, JSON and text
//! output, SVG plots parsed back, and bad inputs reported by file and line while the good ones
//! still run.

use std::path::Path;
use std::process::Command;

fn warmline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warmline"))
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn replay_of_the_bundled_call_prints_contract_events_and_hands_off_once() {
    let out = warmline()
        .args(["replay", &fixture("escalating.wav")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "call_started");
    assert_eq!(events.last().unwrap()["event"], "call_ended");
    assert!(
        events
            .iter()
            .all(|e| e["call_id"] == "escalating" && e["t_ms"].is_u64())
    );
    let handoffs: Vec<_> = events.iter().filter(|e| e["event"] == "handoff").collect();
    assert_eq!(handoffs.len(), 1);
    let h = handoffs[0];
    assert!(h["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    for key in [
        "caller_intent",
        "why_now",
        "transcript_tail",
        "prosody",
        "whisper",
    ] {
        assert!(!h["summary"][key].is_null(), "summary.{key}");
    }
    // The JSONL recording of the same call takes the live path and decides the same.
    let out = warmline()
        .args(["replay", &fixture("escalating.twilio.jsonl")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let h2: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "handoff")
        .expect("handoff from the JSONL recording");
    assert_eq!(h2["t_ms"], h["t_ms"]);
}

#[test]
fn text_timeline_and_svg_plot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("call.svg");
    let out = warmline()
        .args([
            "replay",
            "--format",
            "text",
            "--plot",
            svg.to_str().unwrap(),
            &fixture("escalating.wav"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("call started"), "{text}");
    assert!(text.contains(">>> HANDOFF"), "{text}");
    assert!(text.contains("whisper:"), "{text}");
    let xml = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid SVG XML");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for want in [
        "Caller F0",
        "Caller energy",
        "Caller speaking rate",
        "tone score",
        "threshold",
        "handoff at",
        "F0 (Hz)",
        "time (s)",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(want)),
            "plot lacks {want:?}: {texts:?}"
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
        .count();
    assert!(lines >= 6, "plot has {lines} series elements");
    // Every panel's legend sits right of the 1100 px chart column, off the data.
    let plot_w: f64 = 1100.0;
    for key in [
        "F0 (voiced frames)",
        "caller baseline",
        "speaking rate",
        "signal crossing",
        "handoff at",
    ] {
        let xs: Vec<f64> = doc
            .descendants()
            .filter(|n| {
                n.has_tag_name("text") && n.text().is_some_and(|t| t.trim().starts_with(key))
            })
            .filter_map(|n| n.attribute("x")?.parse().ok())
            .collect();
        assert!(!xs.is_empty(), "legend lacks {key:?}");
        assert!(
            xs.iter().all(|&x| x > plot_w),
            "{key:?} drawn over the chart at x = {xs:?}"
        );
    }
}

#[test]
fn bad_inputs_are_named_and_the_rest_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, "").unwrap();
    let corrupt = dir.path().join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF....WAVEfmt garbage").unwrap();
    let jsonl = dir.path().join("broken.twilio.jsonl");
    let good = std::fs::read_to_string(fixture("escalating.twilio.jsonl")).unwrap();
    let mut lines: Vec<&str> = good.lines().take(100).collect();
    lines.insert(50, "{\"event\":\"media\",");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let out = warmline()
        .args([
            "replay",
            empty.to_str().unwrap(),
            corrupt.to_str().unwrap(),
            jsonl.to_str().unwrap(),
            &fixture("escalating.wav"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty.wav: empty input"), "{err}");
    assert!(
        err.contains("corrupt.wav: not a readable WAV file"),
        "{err}"
    );
    assert!(err.contains("broken.twilio.jsonl:51:"), "{err}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("\"call_id\":\"escalating\""),
        "the good input still ran"
    );
    // A missing file and a config with an unknown key are errors that name them.
    let out = warmline()
        .args(["replay", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.wav"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[detector]\nmodle = 1\n").unwrap();
    let out = warmline()
        .args([
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            &fixture("escalating.wav"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("modle"), "{err}");
}

#[test]
fn features_prints_the_contract_csv() {
    let out = warmline()
        .args(["features", &fixture("escalating.wav")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("t_ms,vad,voiced,f0_hz,energy_db,rate_sps")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1800, "36 s at 20 ms");
    assert_eq!(rows[1][0], "20");
    assert!(
        rows.iter().any(|r| r[2] == "1" && !r[3].is_empty()),
        "some voiced frames with F0"
    );
    assert!(
        rows.iter().all(|r| r[2] == "1" || r[3].is_empty()),
        "f0_hz empty when unvoiced"
    );
    let fine = warmline()
        .args(["features", "--hop-ms", "10", &fixture("escalating.wav")])
        .output()
        .unwrap();
    assert!(fine.status.success());
    let text = String::from_utf8(fine.stdout).unwrap();
    assert_eq!(text.lines().count(), 3601, "header and 36 s at 10 ms");
}

#[test]
fn a_closed_pipe_ends_features_quietly_and_bad_input_exits_2() {
    use std::io::Read as _;
    let mut child = warmline()
        .args(["features", &fixture("escalating.wav")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the header line's worth, then go away like `| head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {err}", out.status);
    assert!(
        !err.contains("Broken pipe") && !err.contains("panicked"),
        "{err}"
    );

    // `replay | head`: serde_json's writer reports the closed pipe in its own error type.
    for args in [vec!["replay"], vec!["replay", "--format", "text"]] {
        let mut cmd = warmline();
        cmd.args(&args).arg(fixture("escalating.wav"));
        crate::common::assert_quiet_when_stdout_closes(cmd);
    }

    let missing = warmline()
        .args(["features", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[server]\nmax_calls = 0\n").unwrap();
    let bad_cfg = warmline()
        .args([
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            &fixture("escalating.wav"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        bad_cfg.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad_cfg.stderr)
    );
}
