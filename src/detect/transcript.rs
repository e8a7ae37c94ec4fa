//! Transcript signals, line by line: `human_request`, `sentiment`, `topic` and caller `loop`
//! from the caller's final lines; agent `loop` and `low_confidence` from the agent's. Also keeps
//! what the summary needs (tail, first request, counts).
//!
//! Interim (non-final) lines are ignored, except that the caller's may raise `human_request`
//! when configured to.

use super::TranscriptLine;
use super::config::Role;
use super::human::find_request;
use super::loops::{LoopParams, LoopTracker, stem_set};
use super::sentiment::{Lexicon, Mood};
use super::text::tokenize;
use super::topics::Topics;
use crate::event::{Evidence, Signal, Track, TranscriptEntry};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Lines kept for the summary's tail.
pub const TAIL_LINES: usize = 6;

/// Transcript signal settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptParams {
    /// Interim caller lines may raise `human_request`.
    pub human_request_on_interim: bool,
    /// Weight of the newest line in the caller's mood (0..1).
    pub sentiment_smoothing: f64,
    /// Loop similarity settings.
    pub loops: LoopParams,
    /// Also look for the agent repeating itself.
    pub agent_loops: bool,
    /// Times something must be said to be a loop (2 = once repeated).
    pub min_repeats: u32,
    /// Agent confidence below this is low.
    pub low_confidence_below: f32,
    /// Agent lines (with a confidence) looked at for `low_confidence`.
    pub low_confidence_window: usize,
    /// Consecutive low-confidence agent lines that escalate.
    pub low_confidence_escalate_after: u32,
    /// Times the caller asked the same thing for a loop to escalate.
    pub loop_escalate_repeats: u32,
    /// A caller line at or below this valence is strongly negative.
    pub strong_valence: f64,
    /// Strongly negative caller lines that escalate.
    pub strong_lines: u32,
    /// How far apart those lines may be, ms.
    pub strong_window_ms: u64,
    /// Topic name → role.
    pub topic_roles: BTreeMap<String, Role>,
    /// Topic phrases (name → phrases).
    pub topics: BTreeMap<String, Vec<String>>,
}

/// One signal value from a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Which signal.
    pub signal: Signal,
    /// Its value.
    pub value: f64,
    /// What backs it.
    pub evidence: Evidence,
    /// The signal's escalation rule is met (a request for a human, an escalating topic, the
    /// second unresolved repeat, strong negative sentiment, sustained low confidence); it
    /// hands off at once when the signal's role is `escalate`.
    pub escalates: bool,
    /// Reported but never scored (a topic whose role is `route` or `flag`).
    pub report_only: bool,
}

impl Finding {
    fn new(signal: Signal, value: f64, evidence: Evidence) -> Self {
        Self {
            signal,
            value,
            evidence,
            escalates: false,
            report_only: false,
        }
    }
}

/// What the summary needs from the transcript.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscriptStats {
    /// Final caller lines.
    pub caller_lines: u32,
    /// Final agent lines.
    pub agent_lines: u32,
    /// Lines asking for a human.
    pub human_requests: u32,
    /// The first such request, as matched.
    pub first_human_request: Option<(u64, String)>,
    /// Topics in order of first mention: (topic, first line, mentions).
    pub topics: Vec<(String, String, u32)>,
    /// Caller lines that repeated an earlier one.
    pub caller_repeats: u32,
    /// Agent lines that repeated an earlier one.
    pub agent_repeats: u32,
    /// Agent lines below the confidence threshold.
    pub low_confidence_lines: u32,
    /// Distinct negative words the caller used (first few).
    pub negative_words: Vec<String>,
    /// The caller's first line with content (a request).
    pub first_request: Option<String>,
    /// The caller's first line.
    pub first_caller_line: Option<String>,
    /// The last lines.
    pub tail: VecDeque<TranscriptEntry>,
}

/// What every call's transcript analysis reads and none changes: the settings, the lexicon
/// and the compiled topic phrases. Built once per configuration and shared: built per call
/// they were ~78 KiB of each call's memory (a third of it) for identical data.
#[derive(Debug)]
pub struct TranscriptRules {
    params: TranscriptParams,
    lexicon: Lexicon,
    topics: Topics,
}

impl TranscriptRules {
    /// Compiles `params` (its topic phrases into stems) with the built-in lexicon.
    pub fn new(params: TranscriptParams) -> Self {
        Self {
            topics: Topics::new(&params.topics),
            lexicon: Lexicon::new(),
            params,
        }
    }
}

/// Line-by-line transcript analysis for one call.
#[derive(Debug)]
pub struct TranscriptSignals {
    rules: Arc<TranscriptRules>,
    loops: [LoopTracker; 2],
    mood: Mood,
    /// Start of the current run of negative caller lines.
    negative_since_ms: Option<u64>,
    /// Media times of the recent strongly negative caller lines.
    strong_negative_ms: VecDeque<u64>,
    /// Agent lines below the confidence threshold in a row.
    low_confidence_run: u32,
    agent_confidence: VecDeque<(u64, f32)>,
    stats: TranscriptStats,
}

const MAX_NEGATIVE_WORDS: usize = 6;

impl TranscriptSignals {
    /// Analysis with `params` (compiles them; calls share [`TranscriptRules`] instead).
    pub fn new(params: TranscriptParams) -> Self {
        Self::with_rules(Arc::new(TranscriptRules::new(params)))
    }

    /// Analysis with shared, compiled rules.
    pub fn with_rules(rules: Arc<TranscriptRules>) -> Self {
        Self {
            loops: Default::default(),
            mood: Mood::default(),
            negative_since_ms: None,
            strong_negative_ms: VecDeque::new(),
            low_confidence_run: 0,
            agent_confidence: VecDeque::with_capacity(rules.params.low_confidence_window + 1),
            stats: TranscriptStats::default(),
            rules,
        }
    }

    /// What has been seen so far.
    pub fn stats(&self) -> &TranscriptStats {
        &self.stats
    }

    /// Analyses one line at `t_ms`; appends its signal values to `out`. `tone_rising`: the
    /// caller's tone is at or above its threshold as they say it.
    pub fn on_line(
        &mut self,
        t_ms: u64,
        line: &TranscriptLine,
        tone_rising: bool,
        out: &mut Vec<Finding>,
    ) {
        let text = line.text.trim();
        if text.is_empty() {
            return;
        }
        let tokens = tokenize(text);
        let point = |matched: Option<String>| Evidence {
            from_ms: t_ms,
            to_ms: t_ms,
            text: Some(text.to_owned()),
            matched,
            values: BTreeMap::new(),
        };
        if !line.is_final {
            if line.speaker == Track::Caller
                && self.rules.params.human_request_on_interim
                && let Some(m) = find_request(&tokens)
            {
                let mut ev = point(Some(m));
                ev.values.insert("interim".into(), 1.0);
                let mut f = Finding::new(Signal::HumanRequest, 1.0, ev);
                f.escalates = true;
                out.push(f);
            }
            return;
        }
        let s = &mut self.stats;
        if s.tail.len() == TAIL_LINES {
            s.tail.pop_front();
        }
        s.tail.push_back(TranscriptEntry {
            t_ms,
            speaker: line.speaker,
            text: text.to_owned(),
        });
        match line.speaker {
            Track::Caller => self.caller_line(t_ms, text, &tokens, tone_rising, out),
            Track::Agent => self.agent_line(t_ms, text, &tokens, line.confidence, out),
        }
    }

    fn caller_line(
        &mut self,
        t_ms: u64,
        text: &str,
        tokens: &super::text::Tokens,
        tone_rising: bool,
        out: &mut Vec<Finding>,
    ) {
        let point = |matched: Option<String>| Evidence {
            from_ms: t_ms,
            to_ms: t_ms,
            text: Some(text.to_owned()),
            matched,
            values: BTreeMap::new(),
        };
        let s = &mut self.stats;
        s.caller_lines += 1;
        s.first_caller_line.get_or_insert_with(|| text.to_owned());
        if s.first_request.is_none() && stem_set(tokens).len() >= 2 {
            s.first_request = Some(text.to_owned());
        }
        if let Some(m) = find_request(tokens) {
            s.human_requests += 1;
            s.first_human_request
                .get_or_insert_with(|| (t_ms, m.clone()));
            let mut ev = point(Some(m));
            ev.values
                .insert("requests".into(), f64::from(s.human_requests));
            let mut f = Finding::new(Signal::HumanRequest, 1.0, ev);
            f.escalates = true;
            out.push(f);
        }
        for hit in self.rules.topics.find(tokens) {
            let mentions = match s.topics.iter_mut().find(|(t, _, _)| *t == hit.topic) {
                Some(entry) => {
                    entry.2 += 1;
                    entry.2
                }
                None => {
                    s.topics.push((hit.topic.clone(), text.to_owned(), 1));
                    1
                }
            };
            let matched = if hit.phrase == hit.topic {
                hit.topic.clone()
            } else {
                format!("{}: {}", hit.topic, hit.phrase)
            };
            let mut ev = point(Some(matched));
            ev.values.insert("mentions".into(), f64::from(mentions));
            let role = self
                .rules
                .params
                .topic_roles
                .get(&hit.topic)
                .copied()
                .unwrap_or(Role::Weight);
            let mut f = Finding::new(Signal::Topic, f64::from(mentions), ev);
            f.escalates = role == Role::Escalate;
            f.report_only = !role.weighs();
            out.push(f);
        }
        let line = self.rules.lexicon.score_in_context(tokens);
        let strong = line.compound <= self.rules.params.strong_valence;
        if strong {
            let window = self.rules.params.strong_window_ms;
            self.strong_negative_ms
                .retain(|&at| t_ms.saturating_sub(at) <= window);
            if self.strong_negative_ms.len() >= self.rules.params.strong_lines as usize {
                self.strong_negative_ms.pop_front();
            }
            self.strong_negative_ms.push_back(t_ms);
        }
        let negativity = self
            .mood
            .push(line.compound, self.rules.params.sentiment_smoothing);
        if negativity > 0.0 {
            self.negative_since_ms.get_or_insert(t_ms);
        } else {
            self.negative_since_ms = None;
        }
        for w in &line.negative_words {
            if s.negative_words.len() < MAX_NEGATIVE_WORDS && !s.negative_words.contains(w) {
                s.negative_words.push(w.clone());
            }
        }
        let mut ev =
            point((!line.negative_words.is_empty()).then(|| line.negative_words.join(", ")));
        ev.from_ms = self.negative_since_ms.unwrap_or(t_ms);
        ev.values
            .insert("line_valence".into(), round3(line.compound));
        let strong_lines = if strong {
            self.strong_negative_ms.len() as u32
        } else {
            0
        };
        if strong_lines > 0 {
            ev.values
                .insert("strong_lines".into(), f64::from(strong_lines));
        }
        if strong && tone_rising {
            ev.values.insert("tone_rising".into(), 1.0);
        }
        let mut f = Finding::new(Signal::Sentiment, round3(negativity), ev);
        f.escalates = strong && (strong_lines >= self.rules.params.strong_lines || tone_rising);
        out.push(f);
        self.loop_line(Track::Caller, t_ms, text, tokens, out);
    }

    fn agent_line(
        &mut self,
        t_ms: u64,
        text: &str,
        tokens: &super::text::Tokens,
        confidence: Option<f32>,
        out: &mut Vec<Finding>,
    ) {
        self.stats.agent_lines += 1;
        if let Some(c) = confidence.filter(|c| c.is_finite()) {
            let window = self.rules.params.low_confidence_window.max(1);
            if self.agent_confidence.len() == window {
                self.agent_confidence.pop_front();
            }
            self.agent_confidence.push_back((t_ms, c));
            let below = self.rules.params.low_confidence_below;
            if c < below {
                self.stats.low_confidence_lines += 1;
                self.low_confidence_run += 1;
            } else {
                self.low_confidence_run = 0;
            }
            let low = self
                .agent_confidence
                .iter()
                .filter(|(_, c)| *c < below)
                .count();
            let mean = self
                .agent_confidence
                .iter()
                .map(|(_, c)| f64::from(*c))
                .sum::<f64>()
                / self.agent_confidence.len() as f64;
            let from_ms = self
                .agent_confidence
                .iter()
                .find(|(_, c)| *c < below)
                .map_or(t_ms, |(t, _)| *t);
            let mut values = BTreeMap::new();
            values.insert("mean_confidence".into(), round3(mean));
            values.insert("last_confidence".into(), round3(f64::from(c)));
            values.insert("lines".into(), self.agent_confidence.len() as f64);
            values.insert("in_a_row".into(), f64::from(self.low_confidence_run));
            let mut f = Finding::new(
                Signal::LowConfidence,
                low as f64,
                Evidence {
                    from_ms,
                    to_ms: t_ms,
                    text: Some(text.to_owned()),
                    matched: None,
                    values,
                },
            );
            f.escalates =
                self.low_confidence_run >= self.rules.params.low_confidence_escalate_after;
            out.push(f);
        }
        if self.rules.params.agent_loops {
            self.loop_line(Track::Agent, t_ms, text, tokens, out);
        }
    }

    fn loop_line(
        &mut self,
        who: Track,
        t_ms: u64,
        text: &str,
        tokens: &super::text::Tokens,
        out: &mut Vec<Finding>,
    ) {
        let Some(hit) = self.loops[who.index()].push(t_ms, tokens, text, &self.rules.params.loops)
        else {
            return;
        };
        match who {
            Track::Caller => self.stats.caller_repeats += 1,
            Track::Agent => self.stats.agent_repeats += 1,
        }
        let reported = self
            .rules
            .params
            .min_repeats
            .min(self.rules.params.loop_escalate_repeats);
        if hit.repeats < reported {
            return;
        }
        let mut values = BTreeMap::new();
        values.insert("similarity".into(), round3(hit.similarity));
        values.insert("repeats".into(), f64::from(hit.repeats));
        values.insert("agent".into(), if who == Track::Agent { 1.0 } else { 0.0 });
        let mut f = Finding::new(
            Signal::Loop,
            f64::from(hit.repeats),
            Evidence {
                from_ms: hit.earlier_t_ms,
                to_ms: t_ms,
                text: Some(format!("{}: {text}", who.name())),
                matched: Some(hit.earlier_text),
                values,
            },
        );
        // Only the caller asking again escalates: an agent repeating itself is its own problem,
        // and a plain statement said again is not an unanswered ask.
        let ask = super::text::is_ask(tokens, text) || {
            let earlier = super::text::tokenize(&f.evidence.matched.clone().unwrap_or_default());
            super::text::is_ask(&earlier, f.evidence.matched.as_deref().unwrap_or(""))
        };
        f.evidence
            .values
            .insert("ask".into(), if ask { 1.0 } else { 0.0 });
        f.escalates =
            who == Track::Caller && ask && hit.repeats >= self.rules.params.loop_escalate_repeats;
        out.push(f);
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectorConfig;

    fn topics_in(rules: Arc<TranscriptRules>, text: &str) -> Vec<String> {
        let mut s = TranscriptSignals::with_rules(rules);
        let line = TranscriptLine {
            t_ms: Some(1000),
            speaker: Track::Caller,
            text: text.into(),
            is_final: true,
            confidence: None,
        };
        let mut out = Vec::new();
        s.on_line(1000, &line, false, &mut out);
        out.iter()
            .filter(|f| f.signal == Signal::Topic)
            .filter_map(|f| f.evidence.matched.clone())
            .collect()
    }

    #[test]
    fn calls_share_one_set_of_rules_and_an_edited_clone_compiles_its_own() {
        let cfg = DetectorConfig::default();
        let (a, b) = (cfg.transcript_rules(), cfg.transcript_rules());
        assert!(
            Arc::ptr_eq(&a, &b),
            "every call of a configuration shares its rules"
        );
        let mut edited = cfg.clone();
        edited
            .topic
            .extra
            .insert("zoo".into(), vec!["purple giraffe".into()]);
        let c = edited.transcript_rules();
        assert!(!Arc::ptr_eq(&a, &c));
        let text = "there is a purple giraffe on my bill";
        assert!(topics_in(a, text).is_empty());
        let found = topics_in(c, text);
        assert!(found.iter().any(|m| m.starts_with("zoo")), "{found:?}");
    }
}
