//! Explicit requests for a human: "get me a human", "representative please", "can I talk to a
//! real person", "operator", "let me speak to someone", "transfer me", "agent!" — and not "I
//! don't need an agent", "no, not a representative", "are you a real person?".
//!
//! Works clause by clause on tokens: a person-word (human, representative, operator, …) asked
//! for by a request verb earlier in the clause, or standing alone with only filler around it,
//! or a transfer verb aimed at the caller; a negation in scope cancels it.

use super::text::{Token, Tokens, elsewhere, negated_at};

/// How many words before the person-word the request verb may be ("want to speak with your
/// supervisor").
const VERB_REACH: usize = 6;

/// Words that name a human on their own.
fn strong_target(w: &str) -> bool {
    matches!(
        w,
        "human"
            | "humans"
            | "representative"
            | "representatives"
            | "rep"
            | "operator"
            | "supervisor"
            | "manager"
    )
}

/// Words that name a human only with a request verb or a modifier ("a real person").
fn weak_target(w: &str) -> bool {
    matches!(
        w,
        "person"
            | "people"
            | "agent"
            | "someone"
            | "somebody"
            | "anyone"
            | "anybody"
            | "staff"
            | "employee"
    )
}

/// Indefinite pronouns need a verb of speaking ("talk to someone"), not just "get someone".
fn pronoun_target(w: &str) -> bool {
    matches!(w, "someone" | "somebody" | "anyone" | "anybody")
}

fn modifier(w: &str) -> bool {
    matches!(w, "real" | "live" | "actual" | "human" | "proper")
}

fn speaking_verb(w: &str) -> bool {
    matches!(
        w,
        "speak" | "talk" | "connect" | "transfer" | "put" | "reach" | "chat"
    )
}

fn request_verb(w: &str) -> bool {
    speaking_verb(w)
        || matches!(
            w,
            "get"
                | "give"
                | "want"
                | "need"
                | "have"
                | "like"
                | "see"
                | "request"
                | "bring"
                | "find"
        )
}

/// Words that may surround a bare target ("representative, please!", "just a human now").
fn filler(w: &str) -> bool {
    matches!(
        w,
        "please"
            | "is"
            | "there"
            | "a"
            | "an"
            | "the"
            | "just"
            | "now"
            | "right"
            | "me"
            | "my"
            | "ok"
            | "okay"
            | "yes"
            | "yeah"
            | "hello"
            | "hey"
            | "hi"
            | "um"
            | "uh"
            | "ugh"
            | "oh"
            | "god"
            | "come"
            | "on"
            | "already"
            | "seriously"
            | "immediately"
            | "asap"
            | "sir"
            | "madam"
            | "your"
            | "some"
            | "real"
            | "live"
            | "actual"
            | "human"
    )
}

/// Clause openers that ask about the agent rather than ask for a human.
fn question_about_agent(clause: &[Token]) -> bool {
    let w: Vec<&str> = clause
        .iter()
        .map(|t| t.word.as_str())
        .filter(|w| {
            !matches!(
                *w,
                "so" | "wait" | "hey" | "hello" | "hi" | "um" | "uh" | "oh"
            )
        })
        .take(3)
        .collect();
    matches!(
        w.as_slice(),
        ["are", "you", ..]
            | ["is", "this", ..]
            | ["is", "that", ..]
            | ["am", "i", "talking", ..]
            | ["am", "i", "speaking", ..]
            | ["was", "that", ..]
            | ["were", "you", ..]
            | ["you", "are", ..]
    )
}

/// Finds an explicit, non-negated request for a human; returns the words that made it.
pub fn find_request(line: &Tokens) -> Option<String> {
    let t = &line.tokens;
    let mut start = 0;
    while start < t.len() {
        let clause_id = t[start].clause;
        let end = t[start..]
            .iter()
            .position(|x| x.clause != clause_id)
            .map_or(t.len(), |p| start + p);
        if let Some(m) = clause_request(t, start, end) {
            return Some(m);
        }
        start = end;
    }
    None
}

fn clause_request(t: &[Token], start: usize, end: usize) -> Option<String> {
    let clause = &t[start..end];
    // "I asked the manager at the store", "the rep at the dealership sent me to you".
    if question_about_agent(clause) || elsewhere(t, t[start].clause) {
        return None;
    }
    let words = |a: usize, b: usize| -> String {
        t[a..=b]
            .iter()
            .map(|x| x.word.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for j in start..end {
        let w = t[j].word.as_str();
        let strong = strong_target(w)
            || (weak_target(w) && j > start && modifier(&t[j - 1].word) && t[j - 1].word != w)
            || (w == "agent" && j > start && t[j - 1].word == "live");
        let weak = weak_target(w);
        if !strong && !weak {
            // A transfer aimed at the caller needs no person-word: "transfer me", "put me through".
            if matches!(w, "transfer" | "escalate")
                && t[j + 1..end]
                    .iter()
                    .take(2)
                    .any(|x| matches!(x.word.as_str(), "me" | "this" | "my" | "us" | "it"))
                && !negated_at(t, j, 8)
            {
                let last = (j + 2).min(end - 1);
                return Some(words(j, last));
            }
            if w == "put"
                && t.get(j + 1).is_some_and(|x| x.word == "me")
                && t.get(j + 2).is_some_and(|x| x.word == "through")
                && !negated_at(t, j, 8)
            {
                return Some(words(j, j + 2));
            }
            continue;
        }
        if negated_at(t, j, 8) {
            continue;
        }
        // "people like you", "my agent": a plain weak word needs an article in front to be
        // asked for by a verb.
        let article = j > start
            && matches!(
                t[j - 1].word.as_str(),
                "a" | "an" | "the" | "some" | "your" | "another" | "any" | "one"
            );
        let plain_weak = !strong && !pronoun_target(w) && !article;
        // A request verb shortly before, in the same clause.
        let verb = (start.max(j.saturating_sub(VERB_REACH))..j)
            .rev()
            .find(|&k| {
                let v = t[k].word.as_str();
                if pronoun_target(w) && !strong {
                    speaking_verb(v)
                } else if !strong {
                    // "I have an agent", "I see the person" are not requests.
                    request_verb(v) && !matches!(v, "have" | "see" | "find")
                } else {
                    request_verb(v)
                }
            });
        // "is there a person I can talk to": the speaking verb after the person-word.
        let after = t[j + 1..end]
            .iter()
            .take(4)
            .position(|x| matches!(x.word.as_str(), "talk" | "speak" | "chat"))
            .map(|p| j + 1 + p);
        if let Some(k) = after.filter(|_| article || strong)
            && !negated_at(t, k, 8)
        {
            return Some(words(j.saturating_sub(1).max(start), k));
        }
        if let Some(k) = verb.filter(|_| !plain_weak) {
            if !negated_at(t, k, 8) {
                return Some(words(k, j));
            }
            continue;
        }
        // Or the person-word alone with only filler ("agent!", "representative please").
        let bare = (strong || w == "agent")
            && clause
                .iter()
                .enumerate()
                .all(|(k, x)| start + k == j || filler(&x.word));
        if bare {
            return Some(
                clause
                    .iter()
                    .map(|x| x.word.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    fn req(text: &str) -> Option<String> {
        find_request(&tokenize(text))
    }

    #[test]
    fn requests_in_many_phrasings() {
        for text in [
            "get me a human",
            "representative please",
            "Representative!",
            "can I talk to a real person",
            "operator",
            "let me speak to someone",
            "transfer me",
            "agent!",
            "I want to speak with your supervisor",
            "put me through to a person",
            "just put me through",
            "give me a live agent now",
            "I need a human being",
            "why can't I talk to a human?",
            "I don't want a bot, I want a human",
            "no I want a real person",
            "hello? human please",
            "I'd like to talk to somebody",
            "can you connect me to someone",
            "I want an agent",
            "escalate this",
            "is there a human there?",
        ] {
            assert!(req(text).is_some(), "missed: {text}");
        }
    }

    #[test]
    fn negations_and_mentions_are_not_requests() {
        for text in [
            "I don't need an agent",
            "no, not a representative",
            "no I do not want an agent, thanks",
            "I don't want to talk to a person",
            "are you a real person?",
            "is this a human?",
            "the agent said my refund was sent",
            "someone stole my card",
            "my manager told me to call",
            "I talked to a representative yesterday",
            "don't transfer me",
            "I don't need a representative",
            "Dogs are sitting by the door.",
            "I don't think I need a human",
            "I want my money back people like you are useless",
            "I want to close the account my agent opened",
        ] {
            assert_eq!(req(text), None, "false request: {text}");
        }
    }

    #[test]
    fn the_match_names_the_words() {
        assert_eq!(
            req("ugh, get me a human").as_deref(),
            Some("get me a human")
        );
        assert_eq!(
            req("representative please").as_deref(),
            Some("representative please")
        );
    }
}
