//! Negative sentiment in the caller's words: a valence-lexicon scorer in the style of
//! AFINN/VADER (word valences from −4 to +4, negation flips and damps, intensifiers and
//! capitals amplify, exclamation marks add emphasis, the clause after "but" counts more),
//! with its own compact word list written for customer-service calls.
//!
//! A line's valence is normalised to −1..1 (`sum / sqrt(sum² + 15)`), and the caller's mood is
//! an exponential average over their recent lines so one word does not decide.

use super::text::{Tokens, dismissed, elsewhere, negated_at, stem};
use std::collections::HashMap;

/// The score of one line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineSentiment {
    /// Normalised valence, −1 (very negative) .. 1 (very positive).
    pub compound: f64,
    /// The words (or phrases) that carried negative valence, as written.
    pub negative_words: Vec<String>,
}

/// Word and phrase valences.
#[derive(Debug, Clone)]
pub struct Lexicon {
    by_stem: HashMap<String, f64>,
}

impl Default for Lexicon {
    fn default() -> Self {
        Self::new()
    }
}

/// Phrases scored as one unit (matched on lowercase words, contractions expanded).
const PHRASES: &[(&[&str], f64)] = &[
    (&["fed", "up"], -2.6),
    (&["sick", "of"], -2.4),
    (&["sick", "and", "tired"], -3.0),
    (&["waste", "of", "time"], -2.6),
    (&["waste", "of", "my", "time"], -2.8),
    (&["rip", "off"], -2.6),
    (&["not", "working"], -1.8),
    (&["does", "not", "work"], -1.8),
    (&["do", "not", "work"], -1.6),
    (&["had", "enough"], -2.2),
    (&["no", "help"], -2.0),
    (&["give", "up"], -1.5),
    (&["what", "the", "hell"], -2.6),
    (&["are", "you", "kidding"], -2.0),
    (&["you", "kidding", "me"], -2.0),
    (&["for", "god", "sake"], -2.0),
    (&["fall", "through"], -1.0),
    (&["thank", "you"], 1.6),
    (&["thanks", "a", "lot"], 1.6),
    (&["no", "problem"], 1.2),
    (&["not", "bad"], 1.0),
    (&["makes", "sense"], 1.0),
];

/// Single-word valences, −4..+4.
const WORDS: &[(&str, f64)] = &[
    // Strongly negative: anger, abuse, outrage.
    ("abysmal", -3.2),
    ("appalling", -3.2),
    ("atrocious", -3.2),
    ("bullshit", -3.5),
    ("crap", -2.6),
    ("crappy", -2.6),
    ("damn", -2.2),
    ("damned", -2.2),
    ("disgusting", -3.2),
    ("disgraceful", -3.0),
    ("fuck", -3.8),
    ("fucking", -3.4),
    ("furious", -3.4),
    ("hate", -3.0),
    ("hell", -2.2),
    ("horrible", -3.0),
    ("horrendous", -3.2),
    ("idiot", -3.0),
    ("idiotic", -3.0),
    ("idiots", -3.0),
    ("incompetent", -3.0),
    ("infuriating", -3.2),
    ("livid", -3.4),
    ("outrageous", -3.0),
    ("pathetic", -3.0),
    ("disgrace", -3.0),
    ("rage", -3.0),
    ("ridiculous", -2.6),
    ("scam", -3.0),
    ("shit", -3.2),
    ("stupid", -2.8),
    ("terrible", -3.0),
    ("terribly", -2.4),
    ("unacceptable", -3.0),
    ("useless", -2.8),
    ("worst", -3.2),
    ("awful", -3.0),
    ("garbage", -2.8),
    ("joke", -1.8),
    ("nonsense", -2.2),
    ("insane", -2.0),
    ("absurd", -2.4),
    ("shameful", -2.6),
    ("dreadful", -2.8),
    ("lousy", -2.4),
    ("moron", -3.0),
    ("dumb", -2.4),
    ("hopeless", -2.6),
    ("disaster", -2.8),
    ("nightmare", -2.8),
    ("robbery", -2.8),
    ("thieves", -3.0),
    ("cheated", -2.8),
    ("cheat", -2.6),
    ("lied", -2.6),
    ("liar", -3.0),
    ("liars", -3.0),
    ("lying", -2.6),
    // Negative: frustration, complaint, distress.
    ("angry", -2.8),
    ("annoyed", -2.2),
    ("annoying", -2.2),
    ("aggravating", -2.4),
    ("bad", -2.0),
    ("broken", -1.8),
    ("complaint", -1.4),
    ("confused", -1.2),
    ("confusing", -1.4),
    ("cut", -0.6),
    ("disappointed", -2.2),
    ("disappointing", -2.2),
    ("disappointment", -2.2),
    ("disconnected", -1.4),
    ("dissatisfied", -2.2),
    ("error", -1.2),
    ("exhausted", -1.8),
    ("fail", -2.0),
    ("failed", -2.0),
    ("failure", -2.2),
    ("fault", -1.6),
    ("frustrated", -2.6),
    ("frustrating", -2.6),
    ("frustration", -2.4),
    ("hassle", -1.8),
    ("impossible", -1.8),
    ("inconvenient", -1.6),
    ("irritated", -2.2),
    ("irritating", -2.2),
    ("lost", -1.4),
    ("mad", -2.4),
    ("mess", -2.0),
    ("mistake", -1.6),
    ("nobody", -1.0),
    ("nothing", -0.8),
    ("poor", -1.8),
    ("problem", -1.4),
    ("problems", -1.4),
    ("rude", -2.6),
    ("sad", -2.0),
    ("scared", -1.8),
    ("slow", -1.2),
    ("sorry", -0.6),
    ("stuck", -1.6),
    ("suck", -2.6),
    ("sucks", -2.6),
    ("tired", -1.6),
    ("unfair", -2.2),
    ("unhappy", -2.2),
    ("unhelpful", -2.4),
    ("upset", -2.4),
    ("waiting", -0.8),
    ("wasted", -2.2),
    ("waste", -2.0),
    ("worse", -2.4),
    ("wrong", -1.8),
    ("worried", -1.6),
    ("worry", -1.2),
    ("ugh", -1.8),
    ("argh", -2.0),
    ("seriously", -0.8),
    ("unbelievable", -1.8),
    ("pointless", -2.2),
    ("endless", -1.2),
    ("forever", -1.0),
    ("ignored", -2.0),
    ("ignoring", -2.0),
    ("nuisance", -1.8),
    ("overcharged", -2.4),
    ("refuse", -1.4),
    ("refused", -1.6),
    ("sloppy", -2.0),
    ("stressed", -2.0),
    ("stressful", -2.0),
    ("trouble", -1.6),
    ("unreliable", -2.2),
    ("unresolved", -1.6),
    ("whatever", -0.8),
    ("bother", -1.0),
    ("bothered", -1.4),
    ("bogus", -2.2),
    ("crazy", -1.4),
    ("hurt", -1.8),
    ("lame", -1.8),
    ("miserable", -2.8),
    ("misleading", -2.2),
    ("annoy", -2.0),
    ("fine", 0.4),
    // Positive.
    ("amazing", 2.8),
    ("appreciate", 2.0),
    ("appreciated", 2.0),
    ("awesome", 3.0),
    ("brilliant", 2.8),
    ("excellent", 3.0),
    ("fantastic", 3.0),
    ("glad", 2.0),
    ("good", 1.8),
    ("great", 2.6),
    ("happy", 2.4),
    ("helpful", 2.0),
    ("kind", 1.6),
    ("love", 2.8),
    ("lovely", 2.6),
    ("nice", 1.8),
    ("perfect", 2.8),
    ("pleased", 2.2),
    ("resolved", 1.4),
    ("satisfied", 2.0),
    ("solved", 1.6),
    ("super", 2.0),
    ("thank", 1.6),
    ("thanks", 1.6),
    ("wonderful", 3.0),
    ("works", 0.8),
    ("excited", 2.2),
    ("enjoy", 2.0),
    ("easy", 1.4),
    ("fair", 1.0),
    ("friendly", 2.0),
    ("grateful", 2.4),
    ("quick", 1.0),
    ("relieved", 1.8),
    ("smooth", 1.4),
    ("sweet", 2.0),
    ("calm", 1.0),
    ("cool", 1.4),
    ("wow", 1.2),
    ("yay", 2.2),
    ("delighted", 3.0),
    ("cheers", 1.4),
    ("best", 2.6),
    ("better", 1.6),
    ("fun", 2.0),
    ("beautiful", 2.6),
    ("brave", 1.6),
];

/// Words that strengthen the next sentiment word, and how much.
fn booster(word: &str) -> f64 {
    match word {
        "very" | "really" | "so" | "extremely" | "totally" | "completely" | "absolutely"
        | "utterly" | "incredibly" | "super" | "truly" | "seriously" | "fucking" | "damn"
        | "way" | "too" => 0.3,
        "slightly" | "somewhat" | "barely" | "little" | "kinda" | "sorta" | "bit"
        | "marginally" | "fairly" | "pretty" => -0.3,
        _ => 0.0,
    }
}

impl Lexicon {
    /// The built-in lexicon.
    pub fn new() -> Self {
        let mut by_stem = HashMap::with_capacity(WORDS.len() * 2);
        for (w, v) in WORDS {
            by_stem.insert((*w).to_owned(), *v);
            by_stem.entry(stem(w)).or_insert(*v);
        }
        Self { by_stem }
    }

    fn valence(&self, word: &str, word_stem: &str) -> Option<f64> {
        self.by_stem
            .get(word)
            .or_else(|| self.by_stem.get(word_stem))
            .copied()
    }

    /// Scores one tokenised line.
    pub fn score(&self, line: &Tokens) -> LineSentiment {
        self.score_clauses(line, |_| true)
    }

    /// Scores what the line says about this call: clauses about somewhere else ("the queue at
    /// the post office was a nightmare") do not count, and a line the caller takes back
    /// ("never mind", "not your fault") scores neutral.
    pub fn score_in_context(&self, line: &Tokens) -> LineSentiment {
        if dismissed(&line.tokens) {
            return LineSentiment::default();
        }
        let mut skip: Vec<u16> = Vec::new();
        let mut last = None;
        for tok in &line.tokens {
            if last != Some(tok.clause) {
                last = Some(tok.clause);
                if elsewhere(&line.tokens, tok.clause) {
                    skip.push(tok.clause);
                }
            }
        }
        self.score_clauses(line, |c| !skip.contains(&c))
    }

    fn score_clauses(&self, line: &Tokens, keep: impl Fn(u16) -> bool) -> LineSentiment {
        let t = &line.tokens;
        let mut covered: Vec<bool> = t.iter().map(|x| !keep(x.clause)).collect();
        let mut sum = 0.0;
        let mut negative_words = Vec::new();
        // Phrases first; their words are not scored again.
        let mut i = 0;
        while i < t.len() {
            let mut matched = None;
            for (phrase, v) in PHRASES {
                let n = phrase.len();
                if i + n <= t.len()
                    && phrase
                        .iter()
                        .zip(&t[i..i + n])
                        .all(|(p, tok)| *p == tok.word)
                    && t[i..i + n].iter().all(|tok| tok.clause == t[i].clause)
                    && !covered[i]
                    && matched.is_none_or(|(m, _): (usize, f64)| n > m)
                {
                    matched = Some((n, *v));
                }
            }
            if let Some((n, v)) = matched {
                let mut s = v;
                if i > 0 && negated_at(t, i, 3) && phrase_has_no_negation(&t[i..i + n]) {
                    s *= -0.6;
                }
                if s < 0.0 {
                    let words: Vec<&str> = t[i..i + n].iter().map(|x| x.word.as_str()).collect();
                    negative_words.push(words.join(" "));
                }
                sum += s;
                for c in &mut covered[i..i + n] {
                    *c = true;
                }
                i += n;
            } else {
                i += 1;
            }
        }
        for (i, tok) in t.iter().enumerate() {
            if covered[i] {
                continue;
            }
            let Some(v) = self.valence(&tok.word, &tok.stem) else {
                continue;
            };
            // An intensifier used as one is not itself sentiment ("so damn slow").
            if booster(&tok.word) != 0.0
                && t.get(i + 1)
                    .is_some_and(|n| self.valence(&n.word, &n.stem).is_some())
            {
                continue;
            }
            let mut s = v;
            for (dist, k) in (i.saturating_sub(2)..i).rev().enumerate() {
                if t[k].clause != tok.clause {
                    break;
                }
                let b = booster(&t[k].word) * if dist == 0 { 1.0 } else { 0.95 };
                s += b * s.signum();
            }
            if tok.shouted {
                s += 0.7 * s.signum();
            }
            if negated_at(t, i, 3) {
                s *= -0.6;
            }
            // The clause after a "but" carries the speaker's point.
            if line.but_clauses.iter().any(|c| *c <= tok.clause) {
                s *= 1.5;
            } else if line.but_clauses.iter().any(|c| *c > tok.clause) {
                s *= 0.5;
            }
            if s < 0.0 {
                negative_words.push(tok.word.clone());
            }
            sum += s;
        }
        if sum != 0.0 && line.exclamations > 0 {
            sum += sum.signum() * 0.29 * f64::from(line.exclamations.min(3));
        }
        LineSentiment {
            compound: sum / (sum * sum + 15.0).sqrt(),
            negative_words,
        }
    }
}

fn phrase_has_no_negation(words: &[super::text::Token]) -> bool {
    !words.iter().any(|w| super::text::is_negation(&w.word))
}

/// The caller's mood over recent lines.
#[derive(Debug, Clone, Default)]
pub struct Mood {
    smoothed: Option<f64>,
    lines: u32,
}

impl Mood {
    /// Mixes in a new line with weight `alpha` (0..1) and returns the smoothed negativity
    /// (0 = neutral or positive, 1 = very negative).
    pub fn push(&mut self, compound: f64, alpha: f64) -> f64 {
        let s = match self.smoothed {
            None => alpha * compound,
            Some(prev) => alpha * compound + (1.0 - alpha) * prev,
        };
        self.smoothed = Some(s);
        self.lines += 1;
        (-s).max(0.0)
    }

    /// Current negativity.
    pub fn negativity(&self) -> f64 {
        (-self.smoothed.unwrap_or(0.0)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    fn score(text: &str) -> f64 {
        Lexicon::new().score(&tokenize(text)).compound
    }

    #[test]
    fn negative_and_positive_lines() {
        assert!(score("this is ridiculous") < -0.4);
        assert!(score("thank you, that was really helpful") > 0.4);
        assert_eq!(score("Dogs are sitting by the door."), 0.0);
        assert_eq!(score("my account number is 1234"), 0.0);
    }

    #[test]
    fn negation_flips_and_damps() {
        let good = score("this is good");
        let not_good = score("this is not good");
        assert!(good > 0.0 && not_good < 0.0);
        assert!(not_good.abs() < good.abs());
        assert!(score("that's not bad") > 0.0);
        assert!(score("I am not angry") > -0.1);
    }

    #[test]
    fn intensifiers_caps_and_exclamations_amplify() {
        let base = score("this is bad");
        assert!(score("this is really bad") < base);
        assert!(score("this is BAD") < base);
        assert!(score("this is bad!!") < base);
        assert!(score("this is slightly bad") > base);
    }

    #[test]
    fn phrases_score_as_units() {
        let s = Lexicon::new().score(&tokenize("I'm fed up, this is a waste of my time"));
        assert!(s.compound < -0.5);
        assert_eq!(s.negative_words, ["fed up", "waste of my time"]);
    }

    #[test]
    fn the_clause_after_but_counts_more() {
        // "the app is nice" is outweighed by what follows "but".
        assert!(score("the app is nice but the support is awful") < -0.3);
        assert!(score("it was awful but you were really helpful") > 0.2);
    }

    #[test]
    fn mood_smooths_over_lines() {
        let mut m = Mood::default();
        let one = m.push(-0.5, 0.6);
        assert!((one - 0.3).abs() < 1e-9);
        let calm = m.push(0.0, 0.6);
        assert!(calm < one && calm > 0.0);
        let happy = m.push(0.8, 0.6);
        assert_eq!(happy, 0.0);
    }
}
