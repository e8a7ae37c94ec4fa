//! The escalation playbook's configuration beyond the detector: `[[routing]]` rules that pick
//! the human for a handoff by its reasons, topics and the caller's stream-start attributes, and
//! `[[pre_call]]` rules on those attributes that hand off before the conversation or lower the
//! thresholds for the call. Pure: conditions are parsed once, matching allocates only the
//! chosen route.

use super::config::signal_named;
use crate::event::{Route, Signal, SignalCrossing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[[routing]]`: first match wins; a rule without `when` is the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// The rule's name (the `route.name` of the event).
    pub name: String,
    /// Conditions, any of which matches: `reason:<signal>`, `topic:<name>`,
    /// `param:<key>=<value>`.
    #[serde(default)]
    pub when: Vec<String>,
    /// A number (`+15550001111`), `sip:` URI, `client:NAME` or `queue:NAME`.
    pub target: String,
    /// Tried in order when the target does not answer.
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// What a pre-call rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreCallAction {
    /// Hand off at once (signal `pre_call`, `pre_call: true` on the event).
    Handoff,
    /// Multiply the handoff threshold by `threshold_scale` for this call.
    LowerThresholds,
}

/// `[[pre_call]]`: rules on stream-start parameters; every matching rule applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreCallRule {
    /// A name for the summary and events (defaults to the first condition).
    #[serde(default)]
    pub name: Option<String>,
    /// `param:<key>=<value>` conditions, any of which matches.
    pub when: Vec<String>,
    /// What to do.
    pub action: PreCallAction,
    /// For `lower_thresholds`: the factor on `policy.handoff_threshold` (0 < x ≤ 1).
    #[serde(default = "default_scale")]
    pub threshold_scale: f64,
}

fn default_scale() -> f64 {
    0.6
}

/// Routing and pre-call rules, shared by every call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playbook {
    /// `[[routing]]`.
    pub routing: Vec<RoutingRule>,
    /// `[[pre_call]]`.
    pub pre_call: Vec<PreCallRule>,
}

/// A bad rule; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybookError {
    /// A condition that is not `reason:`/`topic:`/`param:k=v`, or names no signal.
    #[error("{section}[{index}].when: {condition:?} {why}")]
    Condition {
        /// `routing` or `pre_call`.
        section: &'static str,
        /// Position of the rule.
        index: usize,
        /// The condition.
        condition: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A target that is not a number, `sip:` URI, `client:` or `queue:`.
    #[error(
        "routing[{index}] ({name}): target {target:?} must be a +number, sip: URI, client:NAME or queue:NAME"
    )]
    Target {
        /// Position of the rule.
        index: usize,
        /// Its name.
        name: String,
        /// The target.
        target: String,
    },
    /// A value out of range.
    #[error("{key}: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A reason of the handoff.
    Reason(Signal),
    /// A topic mentioned in the call.
    Topic(String),
    /// A stream-start parameter equals a value.
    Param(String, String),
}

impl Condition {
    /// Parses `reason:<signal>`, `topic:<name>`, `param:<key>=<value>`.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or("must start with reason:, topic: or param:")?;
        match kind.trim() {
            "reason" => signal_named(rest.trim())
                .map(Condition::Reason)
                .ok_or("names no signal"),
            "topic" if !rest.trim().is_empty() => Ok(Condition::Topic(rest.trim().to_owned())),
            "param" => match rest.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok(Condition::Param(k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => Err("must be param:<key>=<value>"),
            },
            _ => Err("must start with reason:, topic: or param:"),
        }
    }

    fn matches(&self, call: &CallFacts<'_>) -> bool {
        match self {
            Condition::Reason(s) => call.reasons.iter().any(|r| r.signal == *s),
            Condition::Topic(t) => call.topics.iter().any(|x| x == t),
            Condition::Param(k, v) => call.params.get(k).is_some_and(|x| x == v),
        }
    }
}

/// What routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// The handoff's reasons.
    pub reasons: &'a [SignalCrossing],
    /// Topics mentioned in the call, first first.
    pub topics: &'a [String],
    /// Stream-start parameters.
    pub params: &'a BTreeMap<String, String>,
}

fn valid_target(t: &str) -> bool {
    let number = t
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    let named = |p: &str| t.strip_prefix(p).is_some_and(|n| !n.trim().is_empty());
    number || named("sip:") || named("client:") || named("queue:")
}

impl Playbook {
    /// Checks every rule; the error names the first bad one.
    pub fn validate(&self) -> Result<(), PlaybookError> {
        for (index, r) in self.routing.iter().enumerate() {
            for c in &r.when {
                Condition::parse(c).map_err(|why| PlaybookError::Condition {
                    section: "routing",
                    index,
                    condition: c.clone(),
                    why,
                })?;
            }
            for target in std::iter::once(&r.target).chain(&r.fallback) {
                if !valid_target(target) {
                    return Err(PlaybookError::Target {
                        index,
                        name: r.name.clone(),
                        target: target.clone(),
                    });
                }
            }
        }
        for (index, r) in self.pre_call.iter().enumerate() {
            if r.when.is_empty() {
                return Err(PlaybookError::Invalid {
                    key: format!("pre_call[{index}].when"),
                    why: "needs at least one param:<key>=<value>".into(),
                });
            }
            for c in &r.when {
                match Condition::parse(c) {
                    Ok(Condition::Param(..)) => {}
                    Ok(_) => {
                        return Err(PlaybookError::Condition {
                            section: "pre_call",
                            index,
                            condition: c.clone(),
                            why: "must be param:<key>=<value> (nothing else is known before the call)",
                        });
                    }
                    Err(why) => {
                        return Err(PlaybookError::Condition {
                            section: "pre_call",
                            index,
                            condition: c.clone(),
                            why,
                        });
                    }
                }
            }
            if !(r.threshold_scale > 0.0 && r.threshold_scale <= 1.0) {
                return Err(PlaybookError::Invalid {
                    key: format!("pre_call[{index}].threshold_scale"),
                    why: format!("{} is outside 0 < x <= 1", r.threshold_scale),
                });
            }
        }
        Ok(())
    }

    /// The route of a handoff: the first rule with a matching condition (in the order the
    /// rule lists them), or the first rule without conditions.
    pub fn route(&self, call: &CallFacts<'_>) -> Option<Route> {
        for r in &self.routing {
            let hit = if r.when.is_empty() {
                Some("default".to_owned())
            } else {
                r.when
                    .iter()
                    .find(|c| Condition::parse(c).is_ok_and(|c| c.matches(call)))
                    .cloned()
            };
            if let Some(rule) = hit {
                return Some(Route {
                    name: r.name.clone(),
                    target: r.target.clone(),
                    rule,
                    fallback: r.fallback.clone(),
                });
            }
        }
        None
    }

    /// The pre-call rules matching `params`, with the condition that matched.
    pub fn pre_call_matches<'a>(
        &'a self,
        params: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = (&'a PreCallRule, &'a str)> + 'a {
        self.pre_call.iter().filter_map(move |r| {
            let facts = CallFacts {
                reasons: &[],
                topics: &[],
                params,
            };
            r.when
                .iter()
                .find(|c| Condition::parse(c).is_ok_and(|c| c.matches(&facts)))
                .map(|c| (r, c.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, when: &[&str], target: &str) -> RoutingRule {
        RoutingRule {
            name: name.into(),
            when: when.iter().map(|s| (*s).to_owned()).collect(),
            target: target.into(),
            fallback: vec![],
        }
    }

    fn crossing(s: Signal) -> SignalCrossing {
        SignalCrossing {
            signal: s,
            value: 1.0,
            threshold: 1.0,
            evidence: Default::default(),
        }
    }

    #[test]
    fn first_match_wins_and_the_default_catches_the_rest() {
        let p = Playbook {
            routing: vec![
                rule(
                    "fraud_desk",
                    &["topic:fraud", "topic:security"],
                    "+15550001111",
                ),
                rule("vip", &["param:tier=vip"], "queue:vip"),
                rule("supervisor", &["topic:legal"], "sip:sup@pbx.example"),
                rule(
                    "retention",
                    &["reason:tone", "reason:sentiment"],
                    "client:retention",
                ),
                rule("support", &[], "queue:support"),
            ],
            pre_call: vec![],
        };
        p.validate().unwrap();
        let params: BTreeMap<String, String> = [("tier".into(), "vip".into())].into();
        let none = BTreeMap::new();
        let route = |reasons: &[SignalCrossing], topics: &[String], params| {
            p.route(&CallFacts {
                reasons,
                topics,
                params,
            })
            .unwrap()
        };
        let r = route(&[], &["security".into()], &params);
        assert_eq!(
            (r.name.as_str(), r.rule.as_str()),
            ("fraud_desk", "topic:security")
        );
        let r = route(&[crossing(Signal::Tone)], &[], &params);
        assert_eq!(r.name, "vip");
        let r = route(&[crossing(Signal::Sentiment)], &[], &none);
        assert_eq!(
            (r.name.as_str(), r.target.as_str()),
            ("retention", "client:retention")
        );
        let r = route(&[crossing(Signal::Loop)], &[], &none);
        assert_eq!((r.name.as_str(), r.rule.as_str()), ("support", "default"));
        assert!(
            Playbook::default()
                .route(&CallFacts {
                    reasons: &[],
                    topics: &[],
                    params: &none
                })
                .is_none()
        );
    }

    #[test]
    fn bad_rules_are_named() {
        let p = Playbook {
            routing: vec![rule("x", &["reason:bogus"], "+1")],
            pre_call: vec![],
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("reason:bogus")
        );
        let p = Playbook {
            routing: vec![rule("x", &[], "5551234")],
            pre_call: vec![],
        };
        assert!(p.validate().unwrap_err().to_string().contains("5551234"));
        let p = Playbook {
            routing: vec![],
            pre_call: vec![PreCallRule {
                name: None,
                when: vec!["topic:fraud".into()],
                action: PreCallAction::Handoff,
                threshold_scale: 0.6,
            }],
        };
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("pre_call[0]")
        );
    }
}
