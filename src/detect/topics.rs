//! High-stakes topics (cancel, fraud, legal action, chargeback, complaint, closing an
//! account, …): configurable phrase lists matched on stems with stopwords skipped, so "closing
//! my accounts" matches "close account", and negation-aware, so "I don't want to cancel" does
//! not count.

use super::text::{Tokens, is_negation, is_stopword, negated_at};
use std::collections::BTreeMap;

/// The built-in topics and their phrases.
pub fn default_topics() -> BTreeMap<String, Vec<String>> {
    let list: &[(&str, &[&str])] = &[
        (
            "cancel",
            &[
                "cancel",
                "cancellation",
                "unsubscribe",
                "terminate my contract",
                "terminate my service",
                "end my subscription",
                "end my contract",
                "stop my subscription",
            ],
        ),
        (
            "close_account",
            &[
                "close my account",
                "close the account",
                "delete my account",
                "shut down my account",
                "close account",
            ],
        ),
        (
            "fraud",
            &[
                "fraud",
                "fraudulent",
                "scam",
                "scammed",
                "stolen",
                "identity theft",
                "unauthorized",
                "unauthorised",
                "hacked",
                "did not authorize",
                "did not authorise",
            ],
        ),
        (
            "legal",
            &[
                "lawyer",
                "attorney",
                "lawsuit",
                "sue",
                "sued",
                "suing",
                "legal action",
                "court",
                "small claims",
                "solicitor",
            ],
        ),
        (
            "chargeback",
            &[
                "chargeback",
                "charge back",
                "dispute",
                "reverse the charge",
                "overcharged",
                "charged twice",
                "double charged",
            ],
        ),
        (
            "complaint",
            &[
                "complaint",
                "complain",
                "ombudsman",
                "better business bureau",
                "regulator",
                "report you",
            ],
        ),
    ];
    list.iter()
        .map(|(name, phrases)| {
            (
                (*name).to_owned(),
                phrases.iter().map(|p| (*p).to_owned()).collect(),
            )
        })
        .collect()
}

/// A topic found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicHit {
    /// Topic name.
    pub topic: String,
    /// The configured phrase that matched.
    pub phrase: String,
}

#[derive(Debug, Clone)]
struct Pattern {
    topic: String,
    phrase: String,
    stems: Vec<String>,
}

/// Compiled topic phrases.
#[derive(Debug, Clone, Default)]
pub struct Topics {
    patterns: Vec<Pattern>,
}

impl Topics {
    /// Compiles `topics` (name → phrases).
    pub fn new(topics: &BTreeMap<String, Vec<String>>) -> Self {
        let mut patterns = Vec::new();
        for (topic, phrases) in topics {
            for phrase in phrases {
                let stems = content_stems(&super::text::tokenize(phrase));
                if stems.is_empty() {
                    continue;
                }
                patterns.push(Pattern {
                    topic: topic.clone(),
                    phrase: phrase.clone(),
                    stems,
                });
            }
        }
        // Longer phrases first, so "close my account" wins over a shorter overlap.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.stems.len()));
        Self { patterns }
    }

    /// Topics mentioned (not negated) in a line, each once, in phrase order.
    pub fn find(&self, line: &Tokens) -> Vec<TopicHit> {
        let t = &line.tokens;
        // Content tokens with their index in the full token list.
        let content: Vec<(usize, &str)> = t
            .iter()
            .enumerate()
            .filter(|(_, x)| is_content(&x.word))
            .map(|(i, x)| (i, x.stem.as_str()))
            .collect();
        let mut hits: Vec<TopicHit> = Vec::new();
        for p in &self.patterns {
            if hits.iter().any(|h| h.topic == p.topic) {
                continue;
            }
            let n = p.stems.len();
            let found = (0..content.len().saturating_sub(n - 1)).any(|k| {
                let window = &content[k..k + n];
                window.iter().zip(&p.stems).all(|((_, s), ps)| *s == ps)
                    && window
                        .iter()
                        .all(|(i, _)| t[*i].clause == t[window[0].0].clause)
                    && !negated_at(t, window[0].0, 8)
            });
            if found {
                hits.push(TopicHit {
                    topic: p.topic.clone(),
                    phrase: p.phrase.clone(),
                });
            }
        }
        hits
    }
}

/// Negations stay in topic phrases so "did not authorize" is matchable.
fn is_content(word: &str) -> bool {
    !is_stopword(word) || is_negation(word)
}

fn content_stems(line: &Tokens) -> Vec<String> {
    line.tokens
        .iter()
        .filter(|x| is_content(&x.word))
        .map(|x| x.stem.clone())
        .collect()
}

/// A human-readable clause for a topic in a whisper ("wants to cancel").
pub fn intent_phrase(topic: &str) -> String {
    match topic {
        "cancel" => "wants to cancel".to_owned(),
        "close_account" => "wants to close their account".to_owned(),
        "fraud" => "reports possible fraud".to_owned(),
        "legal" => "mentions legal action".to_owned(),
        "chargeback" => "is disputing a charge".to_owned(),
        "complaint" => "wants to make a complaint".to_owned(),
        other => format!("is calling about {}", other.replace('_', " ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    fn topics_of(text: &str) -> Vec<String> {
        Topics::new(&default_topics())
            .find(&tokenize(text))
            .into_iter()
            .map(|h| h.topic)
            .collect()
    }

    #[test]
    fn variants_match_through_stems_and_stopwords() {
        assert_eq!(topics_of("I want to cancel my subscription"), ["cancel"]);
        assert_eq!(topics_of("I've been cancelling for weeks"), ["cancel"]);
        assert_eq!(topics_of("the cancellation never went through"), ["cancel"]);
        assert_eq!(topics_of("please close my accounts"), ["close_account"]);
        assert_eq!(
            topics_of("I'm closing the account today"),
            ["close_account"]
        );
        assert_eq!(topics_of("there are charges I'm disputing"), ["chargeback"]);
        assert_eq!(topics_of("I will talk to my lawyer"), ["legal"]);
        assert_eq!(topics_of("I didn't authorize this"), ["fraud"]);
    }

    #[test]
    fn negated_and_unrelated_lines_do_not_match() {
        assert!(topics_of("I don't want to cancel, just pause it").is_empty());
        assert!(topics_of("what's my balance").is_empty());
        assert!(topics_of("Dogs are sitting by the door.").is_empty());
        assert_eq!(topics_of("no, I want to cancel"), ["cancel"]);
    }

    #[test]
    fn configured_topics_replace_defaults() {
        let mut cfg = BTreeMap::new();
        cfg.insert("billing".to_owned(), vec!["charged twice".to_owned()]);
        let t = Topics::new(&cfg);
        let hits = t.find(&tokenize("you charged me twice!"));
        assert_eq!(hits[0].topic, "billing");
        assert_eq!(hits[0].phrase, "charged twice");
        assert!(t.find(&tokenize("I want to cancel")).is_empty());
    }
}
