//! The handoff summary: what a human agent reads (or hears whispered) in ten seconds — the
//! caller's intent, what happened, why the handoff is happening now, the last lines, and how
//! the caller sounds against their own normal voice, in numbers and words.

use super::policy::Decision;
use super::prosody::Recent;
use super::topics::intent_phrase;
use super::transcript::TranscriptStats;
use crate::dsp::Baseline;
use crate::event::{ProsodySnapshot, ProsodySummary, Signal, SignalCrossing, Summary};
use std::collections::BTreeMap;

/// Everything the summary is made from.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// Transcript so far.
    pub stats: &'a TranscriptStats,
    /// The caller's baseline, once established.
    pub baseline: Option<&'a Baseline>,
    /// The caller's last prosody reports.
    pub recent: &'a Recent,
    /// Overtalk episodes over the call.
    pub overtalk_total: u32,
}

/// Builds the summary.
pub fn build(input: &SummaryInput<'_>) -> Summary {
    let s = input.stats;
    Summary {
        caller_intent: caller_intent(s),
        what_happened: what_happened(input),
        why_now: why_now(input.decision),
        transcript_tail: s.tail.iter().cloned().collect(),
        prosody: prosody(input.baseline, input.recent),
        whisper: whisper(input),
        caller_attributes: BTreeMap::new(),
    }
}

fn caller_intent(s: &TranscriptStats) -> String {
    if let Some((topic, line, _)) = s.topics.first() {
        return format!("{} (\"{}\")", topic.replace('_', " "), line);
    }
    if let Some(l) = s.first_request.as_ref().or(s.first_caller_line.as_ref()) {
        return format!("\"{l}\"");
    }
    "unknown (no transcript)".to_owned()
}

/// `m:ss` of media time.
pub fn clock(t_ms: u64) -> String {
    let s = t_ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn times(n: u32) -> String {
    match n {
        0 | 1 => String::new(),
        2 => " twice".to_owned(),
        n => format!(" {n} times"),
    }
}

fn reason(d: &Decision, s: Signal) -> Option<&SignalCrossing> {
    d.reasons.iter().find(|r| r.signal == s)
}

fn what_happened(input: &SummaryInput<'_>) -> String {
    let s = input.stats;
    let d = input.decision;
    let mut parts: Vec<String> = Vec::new();
    if s.caller_lines + s.agent_lines == 0 {
        parts.push("No transcript; the decision rests on the caller's voice".to_owned());
    } else {
        parts.push(format!(
            "{} caller and {} assistant lines",
            s.caller_lines, s.agent_lines
        ));
    }
    if !s.topics.is_empty() {
        let t: Vec<String> = s
            .topics
            .iter()
            .map(|(t, _, n)| format!("{}{}", t.replace('_', " "), times(*n)))
            .collect();
        parts.push(format!("caller raised {}", t.join(", ")));
    }
    if s.human_requests > 0 {
        parts.push(format!("asked for a human{}", times(s.human_requests)));
    }
    if s.caller_repeats > 0 {
        parts.push(format!(
            "caller repeated themselves{}",
            times(s.caller_repeats)
        ));
    }
    if s.agent_repeats > 0 {
        parts.push(format!(
            "the assistant repeated an answer{}",
            times(s.agent_repeats)
        ));
    }
    if s.low_confidence_lines > 0 {
        parts.push(format!(
            "the assistant was unsure on {} line{}",
            s.low_confidence_lines,
            if s.low_confidence_lines == 1 { "" } else { "s" }
        ));
    }
    if input.overtalk_total > 0 {
        parts.push(format!(
            "caller talked over the assistant{}",
            times(input.overtalk_total)
        ));
    }
    if !s.negative_words.is_empty() {
        parts.push(format!("negative words: {}", s.negative_words.join(", ")));
    }
    if let Some(r) = reason(d, Signal::Tone) {
        parts.push(format!("angry tone since {}", clock(r.evidence.from_ms)));
    }
    if let Some(r) = reason(d, Signal::Silence) {
        parts.push(format!("{:.0} s of dead air", r.value));
    }
    let mut text = parts.join("; ");
    text.push('.');
    text
}

fn why_now(d: &Decision) -> String {
    if let Some(r) = d.escalated_by.and_then(|s| reason(d, s)) {
        let at = clock(d.t_ms);
        let said = r.evidence.text.as_deref().unwrap_or("");
        let n = |k: &str| r.evidence.values.get(k).copied().unwrap_or(0.0);
        match r.signal {
            Signal::HumanRequest => {
                let words = r.evidence.matched.as_deref().unwrap_or("a human");
                return format!("Caller asked for a human (\"{words}\") at {at}.");
            }
            Signal::Topic => {
                let topic = r.evidence.matched.as_deref().unwrap_or("a topic");
                let topic = topic.split(':').next().unwrap_or(topic);
                return format!(
                    "Caller raised {} (\"{said}\") at {at}; the playbook sends it to a human.",
                    topic.replace('_', " ")
                );
            }
            Signal::Loop => {
                return format!(
                    "Caller asked the same thing {} times without resolution (\"{}\") at {at}.",
                    n("repeats"),
                    said.trim_start_matches("caller: ")
                );
            }
            Signal::Sentiment => {
                let why = if n("tone_rising") > 0.0 {
                    "in a rising tone".to_owned()
                } else {
                    format!("{} times", n("strong_lines"))
                };
                return format!("Caller was strongly negative {why} (\"{said}\") at {at}.");
            }
            Signal::LowConfidence => {
                return format!(
                    "The assistant was unsure {} turns in a row at {at}.",
                    n("in_a_row")
                );
            }
            Signal::PreCall => {
                let rule = r.evidence.matched.as_deref().unwrap_or("a pre-call rule");
                return format!("Pre-call rule {rule} hands this caller to a human at once.");
            }
            _ => {}
        }
    }
    let listed: Vec<String> = d
        .reasons
        .iter()
        .map(|r| {
            let mut s = format!(
                "{} {} (threshold {})",
                r.signal.name(),
                trim_num(r.value),
                trim_num(r.threshold)
            );
            if r.signal == Signal::Tone
                && let Some(secs) = r.evidence.values.get("duration_s")
            {
                s.push_str(&format!(" for {secs:.1} s"));
            }
            s
        })
        .collect();
    format!(
        "Combined score {:.2} at {}: {}.",
        d.score,
        clock(d.t_ms),
        listed.join(", ")
    )
}

fn trim_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn whisper(input: &SummaryInput<'_>) -> String {
    let s = input.stats;
    let d = input.decision;
    let mut parts: Vec<String> = Vec::new();
    if let Some((topic, _, _)) = s.topics.first() {
        parts.push(intent_phrase(topic));
    }
    if s.human_requests > 0 || reason(d, Signal::HumanRequest).is_some() {
        parts.push(format!("asked for a human{}", times(s.human_requests)));
    } else if reason(d, Signal::Loop)
        .is_some_and(|r| r.evidence.values.get("agent").copied().unwrap_or(0.0) == 0.0)
    {
        parts.push("is repeating themselves".to_owned());
    }
    if reason(d, Signal::Tone).is_some() {
        parts.push("sounds angry".to_owned());
    } else if reason(d, Signal::Sentiment).is_some() {
        parts.push("sounds upset".to_owned());
    }
    if reason(d, Signal::Overtalk).is_some() {
        parts.push("keeps interrupting".to_owned());
    }
    if reason(d, Signal::LowConfidence).is_some() {
        parts.push("the assistant was unsure".to_owned());
    } else if reason(d, Signal::Loop)
        .is_some_and(|r| r.evidence.values.get("agent").copied().unwrap_or(0.0) == 1.0)
    {
        parts.push("the assistant kept repeating itself".to_owned());
    }
    if reason(d, Signal::Silence).is_some() {
        parts.push("after a long silence".to_owned());
    }
    parts.truncate(4);
    if parts.is_empty() {
        return "Caller needs a human.".to_owned();
    }
    // Clauses about the assistant read as their own sentence part.
    let mut text = String::from("Caller ");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(p);
    }
    text.push('.');
    text
}

fn prosody(baseline: Option<&Baseline>, recent: &Recent) -> ProsodySummary {
    let base = baseline.map(|b| ProsodySnapshot {
        f0_hz: (b.f0_hz > 0.0).then(|| round1(f64::from(b.f0_hz))),
        energy_db: Some(round1(f64::from(b.energy_db))),
        rate_sps: (b.rate_sps > 0.0).then(|| round1(f64::from(b.rate_sps))),
        tone_score: None,
    });
    let speech: Vec<_> = recent.speech().collect();
    let now = if speech.is_empty() {
        None
    } else {
        let n = speech.len() as f64;
        let mut f0: Vec<f64> = speech.iter().filter_map(|s| s.f0_hz).collect();
        f0.sort_by(f64::total_cmp);
        Some(ProsodySnapshot {
            f0_hz: (!f0.is_empty()).then(|| round1(f0[f0.len() / 2])),
            energy_db: Some(round1(speech.iter().map(|s| s.energy_db).sum::<f64>() / n)),
            rate_sps: Some(round1(speech.iter().map(|s| s.rate_sps).sum::<f64>() / n)),
            tone_score: Some(
                (speech.iter().map(|s| s.tone_score).sum::<f64>() / n * 1000.0).round() / 1000.0,
            ),
        })
    };
    let description = describe(base.as_ref(), now.as_ref());
    ProsodySummary {
        baseline: base.unwrap_or_default(),
        now: now.unwrap_or_default(),
        description,
    }
}

/// Words for "now versus normal", e.g. "louder (+7 dB) and higher (+3.1 semitones) than their
/// normal voice, speaking 20 % faster".
pub fn describe(base: Option<&ProsodySnapshot>, now: Option<&ProsodySnapshot>) -> String {
    let Some(now) = now else {
        return "no recent caller speech".to_owned();
    };
    let Some(base) = base else {
        return "caller baseline not established yet".to_owned();
    };
    let mut level = Vec::new();
    if let (Some(n), Some(b)) = (now.energy_db, base.energy_db) {
        let d = n - b;
        if d >= 3.0 {
            level.push(format!("louder (+{d:.0} dB)"));
        } else if d <= -3.0 {
            level.push(format!("quieter ({d:.0} dB)"));
        }
    }
    if let (Some(n), Some(b)) = (now.f0_hz, base.f0_hz)
        && n > 0.0
        && b > 0.0
    {
        let st = 12.0 * (n / b).log2();
        if st >= 1.5 {
            level.push(format!("higher (+{st:.1} semitones)"));
        } else if st <= -1.5 {
            level.push(format!("lower ({st:.1} semitones)"));
        }
    }
    let mut text = if level.is_empty() {
        "close to their normal voice".to_owned()
    } else {
        format!("{} than their normal voice", level.join(" and "))
    };
    if let (Some(n), Some(b)) = (now.rate_sps, base.rate_sps)
        && b > 0.0
    {
        let pct = (n / b - 1.0) * 100.0;
        if pct >= 10.0 {
            text.push_str(&format!(", speaking {pct:.0} % faster"));
        } else if pct <= -10.0 {
            text.push_str(&format!(", speaking {:.0} % slower", -pct));
        }
    }
    text
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(f0: f64, energy: f64, rate: f64) -> ProsodySnapshot {
        ProsodySnapshot {
            f0_hz: Some(f0),
            energy_db: Some(energy),
            rate_sps: Some(rate),
            tone_score: None,
        }
    }

    #[test]
    fn description_in_numbers_and_words() {
        let base = snap(200.0, -30.0, 4.0);
        let now = snap(200.0 * 2f64.powf(3.1 / 12.0), -23.0, 4.8);
        assert_eq!(
            describe(Some(&base), Some(&now)),
            "louder (+7 dB) and higher (+3.1 semitones) than their normal voice, speaking 20 % faster"
        );
        assert_eq!(
            describe(Some(&base), Some(&snap(201.0, -31.0, 4.1))),
            "close to their normal voice"
        );
        assert_eq!(
            describe(None, Some(&now)),
            "caller baseline not established yet"
        );
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(65_400), "1:05");
        assert_eq!(clock(0), "0:00");
    }
}
