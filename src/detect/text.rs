//! Word-level text handling shared by the transcript signals: tokens with clause boundaries,
//! contraction expansion (so "don't" carries an explicit `not`), a small suffix stemmer, and the
//! stopword and negation lists.
//!
//! Deliberately simple and deterministic: transcripts are short ASR lines, and every rule here
//! must be explainable in a handoff's evidence.

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Lowercased word (contractions expanded into separate tokens).
    pub word: String,
    /// Stem of `word` (see [`stem`]).
    pub stem: String,
    /// Clause number within the line; punctuation and "but" start a new clause.
    pub clause: u16,
    /// Written in capitals in a line that is not all capitals (emphasis).
    pub shouted: bool,
}

/// A tokenised line plus the punctuation the sentiment scorer cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    /// The words.
    pub tokens: Vec<Token>,
    /// Exclamation marks in the line.
    pub exclamations: u32,
    /// Clauses that began with "but" (the word itself is dropped).
    pub but_clauses: Vec<u16>,
}

/// Words looked at per line; a transcript line is a turn, and the matchers are quadratic in
/// the worst case, so an oversized post must not cost more than a long turn.
pub const MAX_TOKENS: usize = 400;

/// Splits a line into tokens (at most [`MAX_TOKENS`]).
pub fn tokenize(text: &str) -> Tokens {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let all_caps = !letters.is_empty() && letters.iter().all(|c| !c.is_lowercase());
    let mut out = Tokens::default();
    let mut clause: u16 = 0;
    let mut word = String::new();
    let flush = |word: &mut String, clause: &mut u16, out: &mut Tokens| {
        if word.is_empty() {
            return;
        }
        let shouted = !all_caps && word.chars().filter(|c| c.is_alphabetic()).count() >= 2 && {
            word.chars().all(|c| !c.is_lowercase())
        };
        let lower = word.to_lowercase();
        word.clear();
        if lower == "but" {
            *clause += 1;
            out.but_clauses.push(*clause);
            return;
        }
        for part in expand(&lower) {
            out.tokens.push(Token {
                stem: stem(&part),
                word: part,
                clause: *clause,
                shouted,
            });
        }
    };
    for c in text.chars() {
        if out.tokens.len() >= MAX_TOKENS {
            break;
        }
        if c.is_alphanumeric() || c == '\'' || c == '\u{2019}' {
            word.push(if c == '\u{2019}' { '\'' } else { c });
            continue;
        }
        flush(&mut word, &mut clause, &mut out);
        match c {
            '!' => {
                out.exclamations += 1;
                clause += 1;
            }
            '.' | ',' | ';' | ':' | '?' | '\u{2014}' | '\u{2013}' | '(' | ')' => clause += 1,
            _ => {}
        }
    }
    flush(&mut word, &mut clause, &mut out);
    out.tokens.truncate(MAX_TOKENS);
    out
}

/// Expands contractions so negation is always the token `not`.
fn expand(word: &str) -> Vec<String> {
    let w = word.trim_matches('\'');
    let fixed: Option<&[&str]> = match w {
        "can't" | "cant" | "cannot" => Some(&["can", "not"]),
        "won't" | "wont" => Some(&["will", "not"]),
        "shan't" => Some(&["shall", "not"]),
        "ain't" | "aint" => Some(&["is", "not"]),
        "dont" => Some(&["do", "not"]),
        "doesnt" => Some(&["does", "not"]),
        "didnt" => Some(&["did", "not"]),
        "isnt" => Some(&["is", "not"]),
        "wasnt" => Some(&["was", "not"]),
        "arent" => Some(&["are", "not"]),
        "havent" => Some(&["have", "not"]),
        "wouldnt" => Some(&["would", "not"]),
        "couldnt" => Some(&["could", "not"]),
        "shouldnt" => Some(&["should", "not"]),
        "im" => Some(&["i", "am"]),
        _ => None,
    };
    if let Some(parts) = fixed {
        return parts.iter().map(|s| (*s).to_owned()).collect();
    }
    if let Some(base) = w.strip_suffix("n't") {
        return vec![base.to_owned(), "not".to_owned()];
    }
    for (suffix, full) in [
        ("'m", "am"),
        ("'re", "are"),
        ("'ll", "will"),
        ("'ve", "have"),
        ("'d", "would"),
    ] {
        if let Some(base) = w.strip_suffix(suffix)
            && !base.is_empty()
        {
            return vec![base.to_owned(), full.to_owned()];
        }
    }
    if let Some(base) = w.strip_suffix("'s") {
        if base == "it" || base == "that" || base == "what" || base == "there" || base == "he" {
            return vec![base.to_owned(), "is".to_owned()];
        }
        return vec![base.to_owned()];
    }
    vec![w.replace('\'', "")]
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// A small suffix stemmer: plurals, -ing, -ed, -ation, -ly, then a doubled final consonant and
/// a final `e`, so "cancel", "cancelled", "canceling" and "cancellation" meet at `cancel`.
pub fn stem(word: &str) -> String {
    let mut w = word.to_ascii_lowercase();
    if !w.is_ascii() || w.len() <= 3 {
        return w;
    }
    let b = w.as_bytes();
    let n = b.len();
    if w.ends_with("ies") && n > 4 {
        w.truncate(n - 3);
        w.push('y');
    } else if w.ends_with("sses") {
        w.truncate(n - 2);
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.truncate(n - 1);
    }
    let has_vowel = |s: &str| s.bytes().any(is_vowel);
    let mut stripped = false;
    for (suffix, keep_min, replace) in [
        ("ied", 3, "y"),
        ("ation", 3, ""),
        ("ing", 3, ""),
        ("ed", 3, ""),
        ("ly", 4, ""),
    ] {
        if let Some(base) = w.strip_suffix(suffix) {
            if base.len() >= keep_min && has_vowel(base) {
                let base = format!("{base}{replace}");
                w = base;
                stripped = true;
            }
            break;
        }
    }
    let b = w.as_bytes();
    let n = b.len();
    if n >= 3 && b[n - 1] == b[n - 2] && !is_vowel(b[n - 1]) {
        let c = b[n - 1];
        let undouble = match c {
            b's' | b'z' => false,
            b'l' => n >= 6,
            _ => stripped,
        };
        if undouble {
            w.truncate(n - 1);
        }
    }
    if w.len() > 3 && w.ends_with('e') {
        w.truncate(w.len() - 1);
    }
    w
}

/// Function words, fillers and "meta" words (said, again) that carry no request content.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Words that negate what follows them in the clause.
pub fn is_negation(word: &str) -> bool {
    matches!(
        word,
        "not" | "no" | "never" | "without" | "neither" | "nor" | "nothing"
    )
}

/// Words that mark the caller repeating themselves ("I said", "again", "already told you").
pub fn is_repeat_marker(word: &str) -> bool {
    matches!(
        word,
        "said"
            | "again"
            | "already"
            | "told"
            | "repeat"
            | "repeating"
            | "saying"
            | "asking"
            | "asked"
            | "keep"
    )
}

/// Whether a line asks for something: a question, a request or want, a complaint that something
/// does not work, or a marked repeat. A loop only escalates on asks: a caller who says the same
/// plain statement three times ("Dogs are sitting by the door.") is not asking again unheard.
pub fn is_ask(line: &Tokens, text: &str) -> bool {
    text.contains('?')
        || line.tokens.iter().any(|t| {
            let w = t.word.as_str();
            is_negation(w)
                || is_repeat_marker(w)
                || matches!(
                    w,
                    "where"
                        | "why"
                        | "when"
                        | "how"
                        | "what"
                        | "which"
                        | "who"
                        | "can"
                        | "could"
                        | "would"
                        | "will"
                        | "please"
                        | "want"
                        | "wanted"
                        | "need"
                        | "needs"
                        | "help"
                        | "cancel"
                        | "refund"
                        | "fix"
                        | "return"
                        | "change"
                        | "update"
                        | "reset"
                        | "waive"
                        | "stop"
                        | "still"
                )
        })
}

/// Whether the token at `i` is negated: a negation word earlier in the same clause within
/// `window` tokens, not part of a question like "can't I" / "why can't you", and not cut off
/// by a new subject ("I don't want a bot I want a human").
pub fn negated_at(tokens: &[Token], i: usize, window: usize) -> bool {
    let Some(target) = tokens.get(i) else {
        return false;
    };
    let start = i.saturating_sub(window);
    let mut negated = false;
    for k in start..i {
        let t = &tokens[k];
        if t.clause != target.clause {
            continue;
        }
        if is_negation(&t.word) {
            let modal_question = t.word == "not"
                && k > 0
                && matches!(
                    tokens[k - 1].word.as_str(),
                    "can" | "could" | "will" | "would" | "why"
                )
                && tokens
                    .get(k + 1)
                    .is_some_and(|n| matches!(n.word.as_str(), "i" | "you" | "we"))
                && (k < 2 || tokens[k - 2].word != "i");
            if !modal_question {
                negated = true;
            }
        } else if negated
            && matches!(t.word.as_str(), "i" | "we")
            && k > 0
            && !matches!(
                tokens[k - 1].word.as_str(),
                "think" | "believe" | "guess" | "suppose" | "sure"
            )
        {
            // A new subject starts a new statement.
            negated = false;
        }
    }
    negated
}

/// Places and people other than the business being called: what happens "at the post office"
/// or what "the rep at the dealership" did is a story, not a complaint about this call.
fn other_place(w: &str) -> bool {
    matches!(
        w,
        "dealership"
            | "dealer"
            | "post"
            | "dmv"
            | "airport"
            | "hospital"
            | "restaurant"
            | "gym"
            | "school"
            | "hotel"
            | "pharmacy"
            | "supermarket"
            | "grocery"
            | "garage"
            | "mall"
            | "doctor"
            | "doctors"
            | "dentist"
            | "clinic"
            | "shop"
            | "store"
            | "station"
            | "airline"
            | "office"
            | "bar"
            | "party"
            | "work"
            | "job"
            | "game"
            | "movie"
            | "show"
            | "concert"
            | "traffic"
            | "highway"
            | "weather"
    )
}

/// Whether clause `clause` is about somewhere or someone else: "at/in/from the <place>", "at
/// work", or a referral ("sent me to you", "told me to call").
pub fn elsewhere(tokens: &[Token], clause: u16) -> bool {
    let c: Vec<&str> = tokens
        .iter()
        .filter(|t| t.clause == clause)
        .map(|t| t.word.as_str())
        .collect();
    // Small talk about the world at large.
    c.iter().any(|w| matches!(*w, "weather" | "traffic"))
        || c.windows(2)
            .any(|w| matches!(w[0], "at" | "in" | "from" | "on") && other_place(w[1]))
        || c.windows(3).any(|w| {
            (matches!(w[0], "at" | "in" | "from" | "on")
                && matches!(w[1], "the" | "my" | "a" | "their" | "his" | "her")
                && other_place(w[2]))
                || (matches!(w[0], "sent" | "referred" | "told" | "transferred") && w[1] == "me")
        })
}

/// Whether the speaker takes the line back ("never mind", "just kidding", "not your fault",
/// "anyway, my question is").
pub fn dismissed(tokens: &[Token]) -> bool {
    let w: Vec<&str> = tokens.iter().map(|t| t.word.as_str()).collect();
    w.iter().any(|x| matches!(*x, "nevermind" | "haha" | "lol"))
        || w.windows(2).any(|p| {
            matches!(
                p,
                ["never", "mind"]
                    | ["not", "you"]
                    | ["anyway", "i"]
                    | ["anyways", "i"]
                    | ["just", "kidding"]
                    | ["just", "joking"]
            )
        })
        || w.windows(3)
            .any(|p| matches!(p, ["not", "your", "fault"] | ["not", "why", "i"]))
}

/// Sorted for binary search.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "actually",
    "again",
    "ah",
    "all",
    "already",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anyway",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "done",
    "each",
    "even",
    "for",
    "from",
    "get",
    "go",
    "going",
    "gonna",
    "got",
    "had",
    "has",
    "have",
    "he",
    "hello",
    "help",
    "her",
    "here",
    "hey",
    "hi",
    "him",
    "his",
    "how",
    "huh",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "know",
    "let",
    "like",
    "look",
    "me",
    "mhm",
    "might",
    "mm",
    "more",
    "much",
    "must",
    "my",
    "need",
    "no",
    "nope",
    "not",
    "now",
    "of",
    "oh",
    "ok",
    "okay",
    "on",
    "one",
    "or",
    "our",
    "out",
    "please",
    "really",
    "repeat",
    "repeating",
    "right",
    "said",
    "say",
    "saying",
    "see",
    "she",
    "should",
    "so",
    "some",
    "still",
    "sure",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "think",
    "this",
    "those",
    "to",
    "told",
    "too",
    "try",
    "trying",
    "uh",
    "um",
    "up",
    "us",
    "very",
    "wanna",
    "want",
    "was",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "why",
    "will",
    "with",
    "would",
    "yeah",
    "yep",
    "yes",
    "you",
    "your",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn stemming_joins_inflections() {
        for group in [
            &[
                "cancel",
                "cancelled",
                "canceled",
                "cancelling",
                "cancellation",
                "cancels",
            ][..],
            &["dispute", "disputes", "disputed", "disputing"],
            &["charge", "charged", "charges", "charging"],
            &["close", "closed", "closing"],
            &["account", "accounts"],
            &["scam", "scammed", "scams"],
            &["complain", "complained", "complaining"],
            &["bill", "bills", "billing"],
        ] {
            let s0 = stem(group[0]);
            for w in group {
                assert_eq!(stem(w), s0, "{w} vs {}", group[0]);
            }
        }
        assert_ne!(stem("cancel"), stem("can"));
        assert_eq!(stem("this"), "this");
        assert_eq!(stem("ridiculous"), "ridiculous");
    }

    #[test]
    fn contractions_expose_negation_and_clauses_split() {
        let t = tokenize("I don't need an agent, but get me a HUMAN!");
        let words: Vec<&str> = t.tokens.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(
            words,
            [
                "i", "do", "not", "need", "an", "agent", "get", "me", "a", "human"
            ]
        );
        assert_eq!(t.tokens[5].clause, 0);
        assert!(t.tokens[6].clause > 0);
        assert!(t.tokens[9].shouted);
        assert!(!t.tokens[0].shouted);
        assert_eq!(t.exclamations, 1);
        assert!(tokenize("I can’t").tokens.iter().any(|t| t.word == "not"));
        assert_eq!(tokenize(&"agent ".repeat(10_000)).tokens.len(), MAX_TOKENS);
    }

    #[test]
    fn negation_scope() {
        let neg = |text: &str, word: &str| {
            let t = tokenize(text).tokens;
            let i = t.iter().position(|x| x.word == word).unwrap();
            negated_at(&t, i, 8)
        };
        assert!(neg("I don't need an agent", "agent"));
        assert!(neg("no not a representative", "representative"));
        assert!(!neg("no, a representative", "representative"));
        assert!(!neg("why can't I talk to a human", "human"));
        assert!(!neg("I don't want a bot I want a human", "human"));
        assert!(neg("I don't think I need a human", "human"));
        assert!(!neg("I need a human", "human"));
    }
}
