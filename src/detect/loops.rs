//! Loops: a speaker saying the same thing again in other words ("I said I want to cancel" after
//! "I want to cancel my subscription"), or the agent giving the same answer twice.
//!
//! Each utterance becomes a set of content stems (stopwords and "meta" words like said/again
//! dropped); two utterances are the same when the cosine similarity of their stem sets
//! (|A∩B| / √(|A|·|B|)) reaches the threshold and they share at least two stems — one shared
//! stem is enough when the new line says it is a repeat ("I said…", "again").

use super::text::{Tokens, is_repeat_marker, is_stopword};
use std::collections::VecDeque;

/// Loop detection settings for one speaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopParams {
    /// Minimum stem-set cosine similarity.
    pub similarity: f64,
    /// How far back an earlier utterance may be, ms.
    pub window_ms: u64,
    /// Shared stems needed unless the line marks itself as a repeat.
    pub min_shared: usize,
}

/// A repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopHit {
    /// How many times this has now been said (2 = said twice).
    pub repeats: u32,
    /// Similarity to the earlier utterance.
    pub similarity: f64,
    /// The earlier utterance.
    pub earlier_text: String,
    /// When it was said.
    pub earlier_t_ms: u64,
}

#[derive(Debug, Clone)]
struct Utterance {
    t_ms: u64,
    stems: Vec<String>,
    text: String,
    repeats: u32,
}

/// Recent utterances of one speaker.
#[derive(Debug, Clone, Default)]
pub struct LoopTracker {
    recent: VecDeque<Utterance>,
}

const KEEP: usize = 12;

/// Sorted, deduplicated content stems of a line.
pub fn stem_set(line: &Tokens) -> Vec<String> {
    let mut v: Vec<String> = line
        .tokens
        .iter()
        .filter(|t| !is_stopword(&t.word) && !is_repeat_marker(&t.word))
        .map(|t| t.stem.clone())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Cosine similarity of two sorted stem sets and the number of shared stems.
pub fn similarity(a: &[String], b: &[String]) -> (f64, usize) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 0);
    }
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    (shared as f64 / ((a.len() * b.len()) as f64).sqrt(), shared)
}

impl LoopTracker {
    /// Adds an utterance; returns the repeat it makes, if any.
    pub fn push(
        &mut self,
        t_ms: u64,
        line: &Tokens,
        text: &str,
        params: &LoopParams,
    ) -> Option<LoopHit> {
        let stems = stem_set(line);
        if stems.is_empty() {
            return None;
        }
        // The whole line, and each clause of a longer one: "No, I said I want to cancel. This
        // is ridiculous!" repeats its middle clause.
        let mut units = vec![(
            stems.clone(),
            line.tokens.iter().any(|t| is_repeat_marker(&t.word)),
        )];
        let clauses: Vec<u16> = {
            let mut c: Vec<u16> = line.tokens.iter().map(|t| t.clause).collect();
            c.dedup();
            c
        };
        if clauses.len() > 1 {
            for c in clauses {
                let tokens: Vec<_> = line.tokens.iter().filter(|t| t.clause == c).collect();
                let mut set: Vec<String> = tokens
                    .iter()
                    .filter(|t| !is_stopword(&t.word) && !is_repeat_marker(&t.word))
                    .map(|t| t.stem.clone())
                    .collect();
                set.sort_unstable();
                set.dedup();
                if !set.is_empty() && set != stems {
                    units.push((set, tokens.iter().any(|t| is_repeat_marker(&t.word))));
                }
            }
        }
        let mut best: Option<(f64, &Utterance)> = None;
        let mut most_repeats = 0;
        for u in &self.recent {
            if t_ms.saturating_sub(u.t_ms) > params.window_ms {
                continue;
            }
            for (unit, marked) in &units {
                let (sim, shared) = similarity(unit, &u.stems);
                let enough_shared = shared >= params.min_shared || *marked || sim >= 0.999;
                if sim >= params.similarity && enough_shared {
                    most_repeats = most_repeats.max(u.repeats);
                    if best.is_none_or(|(b, _)| sim > b) {
                        best = Some((sim, u));
                    }
                }
            }
        }
        let hit = best.map(|(sim, u)| LoopHit {
            repeats: most_repeats + 1,
            similarity: sim,
            earlier_text: u.text.clone(),
            earlier_t_ms: u.t_ms,
        });
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(Utterance {
            t_ms,
            stems,
            text: text.to_owned(),
            repeats: hit.as_ref().map_or(1, |h| h.repeats),
        });
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tokenize;
    use super::*;

    const P: LoopParams = LoopParams {
        similarity: 0.6,
        window_ms: 120_000,
        min_shared: 2,
    };

    fn run(lines: &[&str]) -> Vec<Option<u32>> {
        let mut tr = LoopTracker::default();
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                tr.push(i as u64 * 5000, &tokenize(l), l, &P)
                    .map(|h| h.repeats)
            })
            .collect()
    }

    #[test]
    fn similarity_of_sets() {
        let s = |x: &str| stem_set(&tokenize(x));
        let (sim, shared) = similarity(
            &s("I want to cancel my subscription"),
            &s("I said I want to cancel"),
        );
        assert_eq!(shared, 1);
        assert!((sim - 1.0 / 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(similarity(&s("hello"), &s("hello")).0, 0.0);
    }

    #[test]
    fn rephrased_repeats_are_loops() {
        assert_eq!(
            run(&[
                "I want to cancel my subscription",
                "I said I want to cancel"
            ]),
            [None, Some(2)]
        );
        assert_eq!(
            run(&[
                "Your refund will arrive in five business days.",
                "As I mentioned, the refund arrives within five business days.",
                "The refund will arrive in five business days.",
            ]),
            [None, Some(2), Some(3)]
        );
    }

    #[test]
    fn different_requests_and_fillers_are_not() {
        assert_eq!(
            run(&["I need help with my bill", "I need help with my card"]),
            [None, None]
        );
        assert_eq!(run(&["yes", "yes", "okay thanks", "okay"]), [None; 4]);
        assert_eq!(
            run(&["I want to cancel", "what is my balance"]),
            [None, None]
        );
    }

    #[test]
    fn old_utterances_fall_out_of_the_window() {
        let mut tr = LoopTracker::default();
        let l = tokenize("cancel my subscription");
        assert!(tr.push(0, &l, "a", &P).is_none());
        assert!(tr.push(200_000, &l, "a", &P).is_none());
        assert!(tr.push(210_000, &l, "a", &P).is_some());
    }
}
