//! The detector end to end: tone, transcript signals, dynamics and the policy together.

use super::*;
use crate::dsp::Relative;
use crate::event::{Handoff, SignalCrossing};
use std::collections::BTreeSet;

/// A transcript line: (t_ms, speaker, text, agent confidence).
type Line = (u64, Track, &'static str, Option<f32>);
/// A span of caller tone: (from_ms, to_ms, score).
type Tone = (u64, u64, f32);

const C: Track = Track::Caller;
const A: Track = Track::Agent;

fn model() -> Arc<ToneModel> {
    let mut m = ToneModel::bundled();
    m.threshold = 0.5;
    Arc::new(m)
}

fn baseline() -> Baseline {
    Baseline {
        f0_hz: 200.0,
        energy_db: -30.0,
        rate_sps: 4.0,
        speech_s: 8.0,
        ..Default::default()
    }
}

/// A caller frame: calm speech, angry speech (+3 semitones, +7 dB, 20 % faster) or quiet.
fn caller_frame(t_ms: u64, speech: bool, angry: bool) -> Frame {
    let (f0, energy, rate, rel_st, rel_db) = match (speech, angry) {
        (true, true) => (200.0 * 2f32.powf(3.0 / 12.0), -23.0, 4.8, 3.0, 7.0),
        (true, false) => (200.0, -30.0, 4.0, 0.0, 0.0),
        _ => (0.0, -60.0, 4.0, 0.0, 0.0),
    };
    Frame {
        t_ms,
        vad: speech,
        speech,
        voiced: speech,
        f0_hz: f0,
        energy_db: energy,
        loudness_db: energy,
        rate_sps: rate,
        rel: Relative {
            baseline_ready: true,
            f0_st: rel_st,
            energy_db: rel_db,
            loudness_db: rel_db,
            tilt_db: 0.0,
            rate_ratio: rate / 4.0,
            ..Relative::default()
        },
        ..Default::default()
    }
}

/// Runs a call of `duration_ms`: caller frames every 10 ms (speaking for 2 s after each of
/// their lines and during tone spans), lines released at their time.
fn run(cfg: &DetectorConfig, lines: &[Line], tone: &[Tone], duration_ms: u64) -> Vec<Event> {
    let mut d = Detector::new("CA-test", cfg, model());
    let mut out = Vec::new();
    let mut next = 0;
    let b = baseline();
    let mut t = 0;
    while t < duration_ms {
        while next < lines.len() && lines[next].0 <= t {
            let (lt, speaker, text, confidence) = lines[next];
            let line = TranscriptLine {
                t_ms: Some(lt),
                speaker,
                text: text.to_owned(),
                is_final: true,
                confidence,
            };
            d.on_transcript(lt, &line, &mut out);
            next += 1;
        }
        let span = tone.iter().find(|(a, z, _)| t >= *a && t < *z);
        let talking = lines
            .iter()
            .any(|(lt, s, _, _)| *s == C && t >= *lt && t < lt + 2000);
        let score = span.map_or(0.1, |s| s.2);
        let f = caller_frame(
            t,
            talking || span.is_some(),
            span.is_some_and(|s| s.2 >= 0.5),
        );
        d.on_scored_frame(C, &f, Some(&b), score, &mut out);
        t += 10;
    }
    d.finish(duration_ms, &mut out);
    assert_eq!(d.handed_off(), handoffs(&out).len() == 1);
    out
}

fn signals(out: &[Event]) -> BTreeSet<Signal> {
    out.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Signal(s) => Some(s.signal),
            _ => None,
        })
        .collect()
}

#[test]
fn tone_evidence_describes_the_scorers_window() {
    // A toy model that scores raised energy, through the real scorer (`on_frame`).
    let model = Arc::new(ToneModel {
        features: vec!["energy_rel_db".into()],
        means: vec![0.0],
        stds: vec![1.0],
        weights: vec![1.0],
        bias: -4.0,
        threshold: 0.9,
        ..ToneModel::bundled()
    });
    let mut d = Detector::new("CA", &DetectorConfig::default(), model);
    let mut out = Vec::new();
    // Calm for 10 s, then +7 dB in 1.5 s phrases with 1 s pauses.
    for k in 0..3000u64 {
        let t = k * 10;
        let speech = t < 10_000 || (t - 10_000) % 2500 < 1500;
        let f = caller_frame(t, speech, t >= 10_000);
        d.on_frame(Track::Caller, &f, Some(&baseline()), &mut out);
    }
    let h = handoffs(&out);
    assert_eq!(h.len(), 1);
    let tone = h[0]
        .1
        .reasons
        .iter()
        .find(|r| r.signal == Signal::Tone)
        .expect("tone is a reason");
    let v = &tone.evidence.values;
    assert_eq!(v["energy_rel_db"], 7.0, "{v:?}");
    assert_eq!(v["f0_rel_st"], 3.0, "{v:?}");
    assert!(v["window_speech_s"] >= 0.5, "{v:?}");
}

fn handoffs(out: &[Event]) -> Vec<(u64, &Handoff)> {
    out.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some((e.t_ms, h)),
            _ => None,
        })
        .collect()
}

struct Row {
    name: &'static str,
    lines: &'static [Line],
    tone: &'static [Tone],
    signals: &'static [Signal],
    handoff: bool,
}

const ROWS: &[Row] = &[
    Row {
        name: "get me a human",
        lines: &[(2000, C, "Ugh, get me a human.", None)],
        tone: &[],
        signals: &[Signal::HumanRequest],
        handoff: true,
    },
    Row {
        name: "representative please",
        lines: &[(2000, C, "representative please", None)],
        tone: &[],
        signals: &[Signal::HumanRequest],
        handoff: true,
    },
    Row {
        name: "cancel, then asks again in other words",
        lines: &[
            (1000, C, "I want to cancel my subscription", None),
            (4000, A, "I can help you with your account settings.", None),
            (8000, C, "I said I want to cancel", None),
        ],
        tone: &[],
        signals: &[Signal::Topic, Signal::Loop],
        handoff: false,
    },
    Row {
        name: "this is ridiculous with rising tone",
        lines: &[(3000, C, "This is ridiculous!", None)],
        tone: &[(3000, 6000, 0.8)],
        signals: &[Signal::Sentiment, Signal::Tone],
        handoff: true,
    },
    Row {
        name: "I don't need a representative",
        lines: &[(2000, C, "I don't need a representative", None)],
        tone: &[],
        signals: &[],
        handoff: false,
    },
    Row {
        name: "no I do not want an agent",
        lines: &[(2000, C, "no I do not want an agent, thanks", None)],
        tone: &[],
        signals: &[],
        handoff: false,
    },
    Row {
        name: "agent gives the same answer three times",
        lines: &[
            (1000, C, "Where is my refund?", None),
            (
                2000,
                A,
                "Your refund will arrive in five business days.",
                None,
            ),
            (5000, C, "It has been two weeks already.", None),
            (
                6000,
                A,
                "The refund arrives within five business days.",
                None,
            ),
            (9000, C, "That is what you said last time.", None),
            (
                10_000,
                A,
                "Your refund will arrive in five business days.",
                None,
            ),
        ],
        tone: &[],
        signals: &[Signal::Loop],
        handoff: false,
    },
    Row {
        name: "low confidence agent lines",
        lines: &[
            (
                1000,
                C,
                "Can I change the billing address on my card?",
                None,
            ),
            (
                2000,
                A,
                "I think you might be able to do that online.",
                Some(0.42),
            ),
            (5000, C, "Where online?", None),
            (6000, A, "Possibly in the settings page.", Some(0.31)),
        ],
        tone: &[],
        signals: &[Signal::LowConfidence],
        handoff: false,
    },
    Row {
        name: "one loud word",
        lines: &[(2000, C, "Hey!", None)],
        tone: &[(2000, 2300, 0.9)],
        signals: &[],
        handoff: false,
    },
    Row {
        name: "calm call with happy words",
        lines: &[
            (1000, C, "Hi, I'd like to check my balance please.", None),
            (3000, A, "Sure, your balance is forty dollars.", Some(0.95)),
            (
                6000,
                C,
                "Great, thank you so much, that was really helpful!",
                None,
            ),
            (8000, A, "You're welcome, have a wonderful day.", Some(0.97)),
        ],
        tone: &[],
        signals: &[],
        handoff: false,
    },
    Row {
        name: "cancel and angry words together",
        lines: &[(
            2000,
            C,
            "I want to cancel, this is absolutely ridiculous!",
            None,
        )],
        tone: &[],
        signals: &[Signal::Topic, Signal::Sentiment],
        handoff: true,
    },
    Row {
        name: "many triggers, one handoff",
        lines: &[
            (1000, C, "I want to cancel. This is useless!", None),
            (2000, C, "Get me a human!", None),
            (3000, C, "Representative! Operator!", None),
            (4000, C, "I said I want to cancel!", None),
            (5000, C, "I will call my lawyer.", None),
        ],
        tone: &[(500, 9000, 0.9)],
        signals: &[
            Signal::Tone,
            Signal::HumanRequest,
            Signal::Sentiment,
            Signal::Topic,
            Signal::Loop,
        ],
        handoff: true,
    },
];

#[test]
fn transcript_scenarios() {
    let cfg = DetectorConfig::default();
    let mut failures = Vec::new();
    for row in ROWS {
        let out = run(&cfg, row.lines, row.tone, 12_000);
        let got = signals(&out);
        let want: BTreeSet<Signal> = row.signals.iter().copied().collect();
        let h = handoffs(&out);
        if got != want || h.len() != usize::from(row.handoff) {
            failures.push(format!(
                "{}: signals {got:?} (want {want:?}), handoffs {} (want {})",
                row.name,
                h.len(),
                usize::from(row.handoff)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn handoff_explains_itself() {
    let cfg = DetectorConfig {
        tone: ToneConfig {
            weight: 0.3,
            ..Default::default()
        },
        ..Default::default()
    };
    let lines = [
        (1000, C, "I want to cancel my subscription", None),
        (4000, A, "Let me look into that for you.", None),
        (6000, C, "No. Get me a human.", None),
    ];
    let out = run(&cfg, &lines, &[(1000, 9000, 0.8)], 10_000);
    let h = handoffs(&out);
    assert_eq!(h.len(), 1);
    let (t_ms, h) = h[0];
    assert_eq!(t_ms, 6000);
    assert_eq!(h.handoff_id, policy::handoff_id("CA-test", 6000));
    assert_eq!(h.score, 1.0);
    let order: Vec<Signal> = h.reasons.iter().map(|r| r.signal).collect();
    assert_eq!(order, [Signal::HumanRequest, Signal::Tone, Signal::Topic]);
    let tone: &SignalCrossing = &h.reasons[1];
    assert_eq!(tone.threshold, 0.5);
    assert_eq!(tone.evidence.from_ms, 1000);
    assert_eq!(tone.evidence.to_ms, 6000);
    assert_eq!(tone.evidence.values["f0_rel_st"], 3.0);
    assert_eq!(tone.evidence.values["energy_rel_db"], 7.0);
    assert_eq!(
        h.reasons[0].evidence.matched.as_deref(),
        Some("get me a human")
    );
    let s = &h.summary;
    assert_eq!(
        s.caller_intent,
        "cancel (\"I want to cancel my subscription\")"
    );
    assert_eq!(
        s.whisper,
        "Caller wants to cancel, asked for a human, sounds angry."
    );
    assert_eq!(
        s.why_now,
        "Caller asked for a human (\"get me a human\") at 0:06."
    );
    assert_eq!(s.transcript_tail.len(), 3);
    assert_eq!(s.transcript_tail[2].text, "No. Get me a human.");
    assert_eq!(s.prosody.baseline.f0_hz, Some(200.0));
    assert_eq!(s.prosody.now.energy_db, Some(-23.0));
    assert_eq!(
        s.prosody.description,
        "louder (+7 dB) and higher (+3.0 semitones) than their normal voice, speaking 20 % faster"
    );
    assert!(
        s.what_happened.contains("caller raised cancel"),
        "{}",
        s.what_happened
    );
    // The events serialise with the contract's names.
    let event = out
        .iter()
        .find(|e| matches!(e.kind, EventKind::Handoff(_)))
        .unwrap();
    let v = serde_json::to_value(event).unwrap();
    assert_eq!(v["event"], "handoff");
    assert_eq!(v["reasons"][0]["signal"], "human_request");
    assert!(v["summary"]["transcript_tail"].is_array());
}

#[test]
fn interim_lines_are_ignored_unless_configured() {
    let line = TranscriptLine {
        t_ms: Some(1000),
        speaker: C,
        text: "get me a human".into(),
        is_final: false,
        confidence: None,
    };
    let mut d = Detector::new("CA", &DetectorConfig::default(), model());
    let mut out = Vec::new();
    d.on_transcript(1000, &line, &mut out);
    assert!(out.is_empty() && !d.handed_off());
    let mut cfg = DetectorConfig::default();
    cfg.human_request.on_interim = true;
    let mut d = Detector::new("CA", &cfg, model());
    d.on_transcript(1000, &line, &mut out);
    assert!(d.handed_off());
}

#[test]
fn without_transcript_the_intent_is_unknown() {
    let out = run(&DetectorConfig::default(), &[], &[(1000, 5000, 0.9)], 6000);
    let h = handoffs(&out);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].1.summary.caller_intent, "unknown (no transcript)");
    assert_eq!(h[0].1.summary.whisper, "Caller sounds angry.");
    // Tone counts after 0.5 s, the score holds 0.5 s.
    assert_eq!(h[0].0, 2000);
}

#[test]
fn prosody_reports_every_second_per_track() {
    let out = run(
        &DetectorConfig::default(),
        &[(0, C, "hello there", None)],
        &[],
        5000,
    );
    let reports: Vec<&Event> = out
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Prosody(_)))
        .collect();
    assert_eq!(reports.len(), 5);
    let EventKind::Prosody(p) = &reports[0].kind else {
        unreachable!()
    };
    assert_eq!(reports[0].t_ms, 1000);
    assert_eq!(p.f0_hz, Some(200.0));
    assert_eq!(p.vad_ratio, 1.0);
    assert_eq!(p.f0_rel_st, Some(0.0));
    assert!(p.baseline_ready);
}

/// Both tracks: `caller` and `agent` speech spans.
fn two_tracks(
    caller: &[(u64, u64)],
    agent: &[(u64, u64)],
    duration_ms: u64,
) -> (Vec<Event>, Detector) {
    let mut d = Detector::new("CA2", &DetectorConfig::default(), model());
    let mut out = Vec::new();
    let on = |spans: &[(u64, u64)], t: u64| spans.iter().any(|(a, z)| t >= *a && t < *z);
    let mut t = 0;
    while t < duration_ms {
        d.on_scored_frame(
            C,
            &caller_frame(t, on(caller, t), false),
            None,
            0.1,
            &mut out,
        );
        d.on_scored_frame(
            A,
            &caller_frame(t, on(agent, t), false),
            None,
            0.0,
            &mut out,
        );
        t += 10;
    }
    (out, d)
}

#[test]
fn overtalk_counts_interruptions_not_backchannels() {
    // Three "mhm"s, then two real interruptions.
    let agent = [(0, 20_000)];
    let caller = [
        (1000, 1300),
        (2500, 2900),
        (4000, 4400),
        (8000, 10_000),
        (14_000, 16_000),
    ];
    let (out, d) = two_tracks(&caller, &agent, 20_000);
    assert_eq!(signals(&out), BTreeSet::from([Signal::Overtalk]));
    let e = out
        .iter()
        .find(|e| matches!(e.kind, EventKind::Signal(_)))
        .unwrap();
    assert!((14_790..=14_830).contains(&e.t_ms), "{}", e.t_ms);
    assert_eq!(d.scores()[&Signal::Overtalk], 2.0);
    assert!(!d.handed_off());
}

#[test]
fn silence_after_the_call_started() {
    let (out, d) = two_tracks(&[(1000, 3000)], &[(3500, 5000)], 15_000);
    assert_eq!(signals(&out), BTreeSet::from([Signal::Silence]));
    let e = out
        .iter()
        .find(|e| matches!(e.kind, EventKind::Signal(_)))
        .unwrap();
    // Dead air from 5.0 s; counts at 8 s of it.
    assert!((12_990..=13_020).contains(&e.t_ms), "{}", e.t_ms);
    assert!(d.scores()[&Signal::Silence] >= 9.9);
}

#[test]
fn config_defaults_validate_and_bad_values_name_the_key() {
    let cfg = DetectorConfig::default();
    cfg.validate().unwrap();
    let parsed: DetectorConfig = toml::from_str(
        "model = \"m.json\"\n[policy]\nhandoff_threshold = 0.7\n[loop]\nagent = false\n[topic.extra]\nbilling = [\"charged twice\"]\n",
    )
    .unwrap();
    assert_eq!(parsed.policy.handoff_threshold, 0.7);
    assert!(!parsed.loops.agent);
    assert_eq!(parsed.topic.topics, topics::default_topics());
    parsed.validate().unwrap();
    assert!(toml::from_str::<DetectorConfig>("[policy]\nbogus = 1\n").is_err());

    let mut bad = DetectorConfig::default();
    bad.sentiment.threshold = 1.5;
    let e = bad.validate().unwrap_err();
    assert!(
        e.to_string().contains("detector.sentiment.threshold"),
        "{e}"
    );
    let mut bad = DetectorConfig::default();
    bad.policy.handoff_threshold = 0.0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("policy.handoff_threshold")
    );
    let mut bad = DetectorConfig::default();
    bad.topic.extra.insert("empty".into(), vec!["the a".into()]);
    assert!(matches!(
        bad.validate(),
        Err(DetectorConfigError::EmptyTopic { .. })
    ));
}

proptest::proptest! {
    /// Transcript text comes from the network: any text, any speaker, any confidence.
    #[test]
    fn any_transcript_line_is_safe(
        text in "\\PC{0,300}",
        caller in proptest::bool::ANY,
        is_final in proptest::bool::ANY,
        confidence in proptest::option::of(proptest::num::f32::ANY),
        t_ms in 0u64..u64::MAX / 2,
    ) {
        let mut d = Detector::new("CA", &DetectorConfig::default(), model());
        let mut out = Vec::new();
        let line = TranscriptLine {
            t_ms: Some(t_ms),
            speaker: if caller { C } else { A },
            text,
            is_final,
            confidence,
        };
        d.on_transcript(t_ms, &line, &mut out);
        d.on_transcript(t_ms, &line, &mut out);
        d.finish(t_ms, &mut out);
        proptest::prop_assert!(handoffs(&out).len() <= 1);
    }
}

#[test]
fn documented_defaults_match_the_code() {
    let doc: String = include_str!("mod.rs")
        .lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.trim_start_matches("//!").trim_start())
        .map(|l| format!("{l}\n"))
        .collect();
    let table: toml::Table = toml::from_str(&doc).unwrap();
    let section = table["detector"].clone();
    let parsed: DetectorConfig = section.try_into().unwrap();
    assert_eq!(parsed, DetectorConfig::default());
    let back: DetectorConfig =
        toml::from_str(&toml::to_string(&DetectorConfig::default()).unwrap()).unwrap();
    assert_eq!(back, DetectorConfig::default());
}

#[test]
fn scores_hold_every_signal() {
    let d = Detector::new("CA", &DetectorConfig::default(), model());
    assert_eq!(d.scores().len(), Signal::ALL.len());
}
