//! High-stakes topics (cancel, fraud, legal action, chargeback, complaint, closing an
//! account, …): configurable phrase lists matched on stems with stopwords skipped, so "closing
//! my accounts" matches "close account", and negation-aware, so "I don't want to cancel" does
//! not count.

use super::config::Role;
use super::text::{Token, Tokens, is_negation, is_stopword, negated_at};
use std::collections::BTreeMap;

/// The built-in topics and their phrases. Stems are matched with stopwords skipped; `...`
/// inside a phrase allows up to [`GAP`] other words in between ("charges on my card I never
/// made" matches "charges ... never made").
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
                "fraudster",
                "scam",
                "scammed",
                "scammer",
                "stolen",
                "identity theft",
                "unauthorized",
                "unauthorised",
                "did not authorize",
                "did not authorise",
                "never authorized",
                "charge ... never made",
                "charge ... did not make",
                "purchase ... never made",
                "purchase ... did not make",
                "never made ... purchase",
                "never made ... charge",
                "did not make ... purchase",
                "did not make ... charge",
                "charge ... not mine",
                "purchase ... not mine",
                "someone using my card",
                "someone used my card",
                "someone ... using my card",
                "someone ... used my card",
                "someone ... using my credit card",
                "somebody ... using my card",
                "somebody ... used my card",
                "somebody ... using my credit card",
                "somebody ... using my debit card",
                "someone ... using my debit card",
                "card ... cloned",
                "skimmed",
                "money disappeared",
                "money missing from my account",
                "transfer ... never made",
                "withdrawal ... never made",
            ],
        ),
        (
            "security",
            &[
                "hacked",
                "hacker",
                "account takeover",
                "taken over my account",
                "took over my account",
                "someone ... into my account",
                "someone ... logged in",
                "someone ... log into",
                "someone ... access to my account",
                "someone ... changed my password",
                "somebody ... changed my password",
                "somebody ... into my account",
                "someone ... changed my email",
                "someone ... changed my phone number",
                "password ... changed ... not",
                "password ... reset ... not",
                "locked out of my account",
                "verification code ... not request",
                "verification code ... never requested",
                "code ... did not ask for",
                "code ... never asked for",
                "sim swap",
                "ported my number",
                "phishing",
                "suspicious login",
                "login ... do not recognize",
                "login ... did not recognize",
                "device ... do not recognize",
                "compromised",
                "breach",
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
                "class action",
                "legal department",
                "see you in court",
            ],
        ),
        (
            "safety",
            &[
                "gas leak",
                "smell gas",
                "smell of gas",
                "smells like gas",
                "carbon monoxide",
                "on fire",
                "caught fire",
                "a fire",
                "smoke",
                "smoking",
                "sparking",
                "sparks",
                "electric shock",
                "electrocuted",
                "exploded",
                "explosion",
                "injured",
                "hurt myself",
                "got hurt",
                "is hurt",
                "kill myself",
                "end my life",
                "suicide",
                "suicidal",
                "threatened",
                "threatening me",
                "threatening to",
                "unsafe",
                "in danger",
                "dangerous",
                "emergency",
                "ambulance",
                "bleeding",
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
        (
            "sales",
            &[
                "upgrade my plan",
                "buy",
                "purchase more",
                "add lines",
                "add more lines",
                "business account",
                "enterprise plan",
                "bulk order",
                "get a quote",
                "pricing for",
                "sign up",
                "new contract",
                "interested in",
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

/// The playbook's role for a topic: account security, fraud, legal threats and safety go to a
/// human regardless of how the conversation goes; a buying intent only chooses the route.
pub fn default_role(topic: &str) -> Role {
    match topic {
        "fraud" | "security" | "legal" | "safety" => Role::Escalate,
        "sales" => Role::Route,
        _ => Role::Weight,
    }
}

/// Content words a `...` in a phrase may skip.
pub const GAP: usize = 5;

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
    /// Contiguous runs of content stems; runs may be up to [`GAP`] content words apart.
    segments: Vec<Vec<String>>,
}

impl Pattern {
    fn len(&self) -> usize {
        self.segments.iter().map(Vec::len).sum()
    }
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
                let segments: Vec<Vec<String>> = phrase
                    .split("...")
                    .map(|seg| content_stems(&super::text::tokenize(seg)))
                    .filter(|seg| !seg.is_empty())
                    .collect();
                if segments.is_empty() {
                    continue;
                }
                patterns.push(Pattern {
                    topic: topic.clone(),
                    phrase: phrase.clone(),
                    segments,
                });
            }
        }
        // Longer phrases first, so "close my account" wins over a shorter overlap.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Self { patterns }
    }

    /// Topics mentioned (not negated, not a look-alike) in a line, each once, in phrase order.
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
            let found = (0..content.len()).any(|k| {
                matches_at(&content, k, &p.segments).is_some_and(|end| {
                    let first = content[k].0;
                    let last = content[end].0;
                    t[first..=last].iter().all(|x| x.clause == t[first].clause)
                        && !negated_at(t, first, 8)
                        && !look_alike(t, first, last)
                })
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

/// Where the pattern's segments match from content position `k`: the last content position.
fn matches_at(content: &[(usize, &str)], k: usize, segments: &[Vec<String>]) -> Option<usize> {
    let run = |at: usize, seg: &[String]| {
        at + seg.len() <= content.len()
            && content[at..at + seg.len()]
                .iter()
                .zip(seg)
                .all(|((_, s), ps)| *s == ps)
    };
    let (head, rest) = segments.split_first()?;
    if !run(k, head) {
        return None;
    }
    let mut next = k + head.len();
    for seg in rest {
        let at = (next..=(next + GAP).min(content.len())).find(|&at| run(at, seg))?;
        next = at + seg.len();
    }
    Some(next - 1)
}

/// The same words in a harmless sense: a job ("my son is a lawyer"), a name ("my sister
/// Sue"), a place ("the tennis court"), a product ("fire stick") or a device ("smoke detector").
fn look_alike(t: &[Token], first: usize, last: usize) -> bool {
    let w = t[first].word.as_str();
    let prev = |n: usize| first.checked_sub(n).map(|k| t[k].word.as_str());
    let next = t.get(last + 1).map(|x| x.word.as_str());
    let occupation = matches!(prev(1), Some("a" | "an"))
        && matches!(
            prev(2),
            Some("is" | "am" | "was" | "be" | "as" | "become" | "becoming" | "are" | "were")
        );
    let named = matches!(
        prev(1),
        Some(
            "sister"
                | "brother"
                | "aunt"
                | "uncle"
                | "friend"
                | "named"
                | "called"
                | "wife"
                | "mom"
                | "mother"
                | "and"
                | "cousin"
                | "neighbor"
                | "neighbour"
                | "boss"
        )
    );

    match w {
        "sue" => {
            named
                || next.is_some_and(|n| {
                    !matches!(
                        n,
                        "you"
                            | "them"
                            | "your"
                            | "the"
                            | "this"
                            | "over"
                            | "for"
                            | "if"
                            | "u"
                            | "everyone"
                            | "somebody"
                            | "someone"
                            | "him"
                            | "her"
                            | "us"
                            | "whoever"
                    )
                })
        }
        "court" | "courts" => matches!(
            prev(1),
            Some(
                "tennis"
                    | "basketball"
                    | "food"
                    | "squash"
                    | "volleyball"
                    | "badminton"
                    | "supreme"
            )
        ),
        "lawyer" | "lawyers" | "attorney" => {
            occupation
                || matches!(next, Some("friend" | "show" | "shows" | "general"))
                || matches!(prev(1), Some("of" | "divorce" | "estate" | "immigration"))
        }
        "smoke" | "smoking" => {
            matches!(
                next,
                Some("detector" | "alarm" | "alarms" | "break" | "cigarettes")
            ) || matches!(prev(1), Some("i" | "quit" | "stop" | "stopped" | "no"))
        }
        "fire" | "fired" | "firing" => {
            !matches!(w, "fire")
                || matches!(
                    next,
                    Some("stick" | "tv" | "tablet" | "sale" | "station" | "department" | "truck")
                )
        }
        "emergency" => matches!(
            next,
            Some("contact" | "contacts" | "number" | "fund" | "savings" | "room")
        ),
        "dangerous" => matches!(next, Some("game" | "driving")),
        _ => occupation && matches!(w, "hacker" | "solicitor"),
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
        "security" => "reports their account may be compromised".to_owned(),
        "safety" => "reports a safety concern".to_owned(),
        "sales" => "wants to buy".to_owned(),
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
