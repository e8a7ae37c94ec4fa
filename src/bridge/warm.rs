//! The warm-transfer state machine, pure: one handoff's walk from "caller on hold" through the
//! agent legs of its target list to connected, fallback (queue, voicemail, bot) or abandoned.
//!
//! Inputs are what the providers report (status callbacks), what the shell's HTTP calls
//! returned, and the clock (`now_ms`, wall milliseconds: the timeout must hold across a restart,
//! so it is a wall deadline, persisted with the rest). Outputs are provider requests for the
//! shell to make and contract events to publish. Provider-neutral: the Twilio, Telnyx, Vonage and
//! Plivo shells differ only in how they carry out [`Action`]s and read their callbacks.
//!
//! Size: ~510 lines of code (the warm-transfer state machine and its transitions, kept together so
//! every state's exits can be read at once); the rest is its tests.

use crate::event::{EventKind, TransferAbandoned, TransferConnected, TransferFallback};
use serde::{Deserialize, Serialize};

/// Longest spoken brief; a whisper is a sentence or two, not the transcript.
pub const WHISPER_MAX_CHARS: usize = 400;

/// Where a caller ends up when no agent answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Terminal {
    /// A provider queue (`queue:NAME`).
    Queue(String),
    /// Voicemail (`voicemail`): the caller can leave a message.
    Voicemail,
    /// Back to a bot (`bot:wss://…`): a new media stream to that URL.
    Bot(String),
}

impl Terminal {
    /// The terminal a target string names, if it is one.
    pub fn parse(target: &str) -> Option<Self> {
        let t = target.trim();
        if let Some(q) = t.strip_prefix("queue:") {
            Some(Terminal::Queue(q.to_owned()))
        } else if let Some(url) = t.strip_prefix("bot:") {
            Some(Terminal::Bot(url.to_owned()))
        } else if t == "voicemail" {
            Some(Terminal::Voicemail)
        } else {
            None
        }
    }

    /// `queue`, `voicemail` or `bot`: the `to` of its `handoff_fallback`.
    pub fn kind(&self) -> &'static str {
        match self {
            Terminal::Queue(_) => "queue",
            Terminal::Voicemail => "voicemail",
            Terminal::Bot(_) => "bot",
        }
    }
}

/// What a provider reported about an agent leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegStatus {
    /// Queued, initiated, ringing: nothing decided yet.
    Progress,
    /// The agent picked up.
    Answered,
    /// Rang out.
    NoAnswer,
    /// Busy.
    Busy,
    /// Could not be placed.
    Failed,
    /// Cancelled (by us, or by the provider).
    Canceled,
    /// Ended (after being answered, unless the answer was missed).
    Completed,
}

impl LegStatus {
    /// Reads a Twilio `CallStatus` (also used for the others' mapped statuses).
    pub fn from_twilio(status: &str) -> Self {
        match status {
            "in-progress" | "answered" => LegStatus::Answered,
            "no-answer" => LegStatus::NoAnswer,
            "busy" => LegStatus::Busy,
            "failed" => LegStatus::Failed,
            "canceled" => LegStatus::Canceled,
            "completed" => LegStatus::Completed,
            _ => LegStatus::Progress,
        }
    }

    /// The fallback `reason` this status gives, when it ends the leg unanswered.
    fn fallback_reason(self) -> Option<&'static str> {
        match self {
            LegStatus::NoAnswer | LegStatus::Canceled => Some("no_answer"),
            LegStatus::Busy => Some("busy"),
            // A leg that completed while we still waited for its answer was picked up and
            // dropped before joining (a voicemail box, a mis-tap): the caller is still alone.
            LegStatus::Failed | LegStatus::Completed => Some("failed"),
            LegStatus::Progress | LegStatus::Answered => None,
        }
    }
}

/// Where a transfer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// The caller is being moved to hold (the bridge's call update is in flight) and no agent
    /// leg is placed yet (a transfer whose first target is a queue, voicemail or bot).
    MovingCaller,
    /// Every agent leg ended while the caller was still being moved to hold, and `targets[idx]`
    /// (or voicemail past the list's end) is where the caller goes once the hold is confirmed:
    /// routing earlier would race the bridge's own update of the same call.
    AwaitingHold {
        /// Index into the target list.
        idx: usize,
    },
    /// Agent leg `attempt` to `targets[idx]` is requested or ringing until `deadline_ms`.
    Ringing {
        /// Index into the target list.
        idx: usize,
        /// The provider's id of the leg, once known.
        leg_id: Option<String>,
        /// Wall ms after which the leg counts as unanswered.
        deadline_ms: u64,
    },
    /// An agent answered.
    Connected,
    /// No agent answered; the caller went to a queue, voicemail or a bot.
    FellBack {
        /// `queue`, `voicemail` or `bot`.
        to: String,
    },
    /// The caller hung up before a human answered.
    Abandoned,
    /// The caller could not even be put on hold.
    Failed {
        /// Why.
        error: String,
    },
}

/// The outcome `GET /v1/handoffs/{id}` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still on hold or ringing.
    Pending,
    /// A human answered.
    Connected,
    /// Ended in a queue, voicemail or back at the bot.
    Fallback,
    /// The caller hung up on hold.
    Abandoned,
    /// The transfer could not be made.
    Failed,
}

impl Outcome {
    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Connected => "connected",
            Outcome::Fallback => "fallback",
            Outcome::Abandoned => "abandoned",
            Outcome::Failed => "failed",
        }
    }
}

/// Something that happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The caller is on hold (the call update was accepted).
    CallerMoved,
    /// The caller could not be moved (the bridge gave up).
    CallerMoveFailed(String),
    /// The provider accepted agent leg `attempt` and named it.
    LegCreated {
        /// Which attempt.
        attempt: u32,
        /// The provider's leg id.
        leg_id: String,
    },
    /// The provider refused to place agent leg `attempt`.
    LegRefused {
        /// Which attempt.
        attempt: u32,
    },
    /// A status callback for agent leg `attempt`.
    LegStatus {
        /// Which attempt (carried in the callback URL, so late callbacks of earlier legs are
        /// told apart).
        attempt: u32,
        /// What happened.
        status: LegStatus,
    },
    /// The caller left the hold (hung up).
    CallerLeft,
    /// The clock moved; fires the ringing deadline when due.
    Tick,
}

/// What the shell must do.
// `Emit` carries a whole event; a transfer yields a handful of actions in its life, so boxing
// it would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Place an agent leg to `target` that hears `whisper`, then joins the caller.
    DialAgent {
        /// Attempt number (1 for the first target), for the callback URL.
        attempt: u32,
        /// Number, `sip:` or `client:` target.
        target: String,
        /// The spoken brief.
        whisper: String,
    },
    /// Join the answered agent leg to the held caller after its brief, where the provider needs
    /// requests for that (Telnyx: speak the whisper, then bridge); nothing where the agent leg's
    /// own script does it (Twilio, Vonage, Plivo).
    JoinCaller {
        /// The provider's id of the answered leg, if it was reported.
        leg_id: Option<String>,
    },
    /// Stop a ringing agent leg nobody needs any more.
    CancelLeg {
        /// The provider's leg id.
        leg_id: String,
    },
    /// Send the caller (off hold) to a terminal.
    RouteCaller(Terminal),
    /// Publish this event.
    Emit(EventKind),
}

/// One handoff's warm transfer; serialisable so in-flight transfers survive a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmTransfer {
    /// The handoff.
    pub handoff_id: String,
    /// The caller's call id at the provider.
    pub call_id: String,
    /// `twilio`, `telnyx`, `vonage` or `plivo`.
    pub provider: String,
    /// The handoff's media time, the `t_ms` of the events this transfer emits.
    pub t_ms: u64,
    /// Agent first, then the fallbacks in order.
    pub targets: Vec<String>,
    /// The spoken brief for the agent.
    pub whisper: String,
    /// Wall ms of the handoff decision.
    pub decided_at_ms: u64,
    /// How long each agent leg may ring.
    pub answer_timeout_ms: u64,
    /// Agent legs placed so far (the current one's number).
    pub attempt: u32,
    /// Whether the provider confirmed the caller's move to hold. The first agent leg is placed
    /// at the decision, concurrently with that move, so the agent's phone rings one round trip
    /// sooner and the whisper plays while the caller is being moved. State written before this
    /// field existed dialled only after the hold, hence the default.
    #[serde(default = "held_by_default")]
    pub caller_held: bool,
    /// Where it is.
    pub stage: Stage,
}

impl WarmTransfer {
    /// A transfer waiting for its caller to be put on hold.
    // Every argument is a distinct fact of the handoff; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handoff_id: &str,
        call_id: &str,
        provider: &str,
        t_ms: u64,
        targets: Vec<String>,
        whisper: &str,
        decided_at_ms: u64,
        answer_timeout_ms: u64,
    ) -> Self {
        Self {
            handoff_id: handoff_id.to_owned(),
            call_id: call_id.to_owned(),
            provider: provider.to_owned(),
            t_ms,
            targets,
            whisper: whisper.chars().take(WHISPER_MAX_CHARS).collect(),
            decided_at_ms,
            answer_timeout_ms,
            attempt: 0,
            caller_held: true,
            stage: Stage::MovingCaller,
        }
    }

    /// Starts the transfer at the decision: places the first agent leg at once, without waiting
    /// for the caller's hold (see [`WarmTransfer::caller_held`]). A first target that is a queue,
    /// voicemail or bot waits for the hold instead. Does nothing on a transfer already started.
    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stage == Stage::MovingCaller && self.attempt == 0 {
            self.caller_held = false;
            self.dial(0, now_ms, &mut out);
        }
        out
    }

    /// Whether nothing more can happen.
    pub fn is_done(&self) -> bool {
        !matches!(
            self.stage,
            Stage::MovingCaller | Stage::AwaitingHold { .. } | Stage::Ringing { .. }
        )
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Outcome {
        match self.stage {
            Stage::MovingCaller | Stage::AwaitingHold { .. } | Stage::Ringing { .. } => {
                Outcome::Pending
            }
            Stage::Connected => Outcome::Connected,
            Stage::FellBack { .. } => Outcome::Fallback,
            Stage::Abandoned => Outcome::Abandoned,
            Stage::Failed { .. } => Outcome::Failed,
        }
    }

    /// The wall ms at which [`Input::Tick`] has something to do.
    pub fn deadline_ms(&self) -> Option<u64> {
        match self.stage {
            Stage::Ringing { deadline_ms, .. } => Some(deadline_ms),
            _ => None,
        }
    }

    /// Applies `input` at wall time `now_ms` and says what to do about it.
    pub fn step(&mut self, input: Input, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match (&mut self.stage, input) {
            (Stage::MovingCaller, Input::CallerMoved) => {
                self.caller_held = true;
                self.dial(0, now_ms, &mut out);
            }
            (Stage::AwaitingHold { idx }, Input::CallerMoved) => {
                let idx = *idx;
                self.caller_held = true;
                self.dial(idx, now_ms, &mut out);
            }
            (Stage::Ringing { .. }, Input::CallerMoved) => self.caller_held = true,
            (
                Stage::MovingCaller | Stage::AwaitingHold { .. } | Stage::Ringing { .. },
                Input::CallerMoveFailed(error),
            ) => {
                // The caller's call is gone or cannot be touched: an agent ringing for it would
                // pick up to silence.
                self.cancel_ringing(&mut out);
                self.stage = Stage::Failed { error };
            }
            (
                Stage::MovingCaller | Stage::AwaitingHold { .. } | Stage::Ringing { .. },
                Input::CallerLeft,
            ) => {
                self.cancel_ringing(&mut out);
                self.stage = Stage::Abandoned;
                out.push(Action::Emit(EventKind::HandoffAbandoned(
                    TransferAbandoned {
                        handoff_id: self.handoff_id.clone(),
                        waited_ms: now_ms.saturating_sub(self.decided_at_ms),
                        provider: self.provider.clone(),
                    },
                )));
            }
            (
                Stage::Ringing { leg_id, .. },
                Input::LegCreated {
                    attempt,
                    leg_id: id,
                },
            ) if attempt == self.attempt => {
                *leg_id = Some(id);
            }
            (Stage::Ringing { idx, .. }, Input::LegRefused { attempt })
                if attempt == self.attempt =>
            {
                let idx = *idx;
                self.next(idx, "failed", now_ms, &mut out);
            }
            (Stage::Ringing { idx, .. }, Input::LegStatus { attempt, status })
                if attempt == self.attempt =>
            {
                let idx = *idx;
                if status == LegStatus::Answered {
                    let leg_id = match &mut self.stage {
                        Stage::Ringing { leg_id, .. } => leg_id.take(),
                        _ => None,
                    };
                    self.stage = Stage::Connected;
                    out.push(Action::Emit(EventKind::HandoffConnected(
                        TransferConnected {
                            handoff_id: self.handoff_id.clone(),
                            target: self.targets.get(idx).cloned().unwrap_or_default(),
                            time_to_agent_ms: now_ms.saturating_sub(self.decided_at_ms),
                            provider: self.provider.clone(),
                        },
                    )));
                    out.push(Action::JoinCaller { leg_id });
                } else if let Some(reason) = status.fallback_reason() {
                    self.next(idx, reason, now_ms, &mut out);
                }
            }
            (
                Stage::Ringing {
                    idx,
                    leg_id,
                    deadline_ms,
                },
                Input::Tick,
            ) if now_ms >= *deadline_ms => {
                let idx = *idx;
                if let Some(leg_id) = leg_id.take() {
                    out.push(Action::CancelLeg { leg_id });
                }
                self.next(idx, "timeout", now_ms, &mut out);
            }
            // The answered leg's own creation, reported after its answer.
            (Stage::Connected, Input::LegCreated { attempt, .. }) if attempt == self.attempt => {}
            // A leg placed for nothing: its creation was reported after the transfer moved on
            // (timed out, abandoned, failed): stop it ringing an agent nobody waits for.
            (_, Input::LegCreated { leg_id, .. }) => out.push(Action::CancelLeg { leg_id }),
            // Late or duplicate reports, ticks before the deadline, anything after the end.
            _ => {}
        }
        out
    }

    /// Places the leg to `targets[idx]`, or routes the caller if that target is a terminal.
    fn dial(&mut self, idx: usize, now_ms: u64, out: &mut Vec<Action>) {
        let target = self.targets.get(idx).cloned();
        let terminal = match &target {
            None => Some(Terminal::Voicemail),
            Some(t) => Terminal::parse(t),
        };
        let (Some(target), None) = (target, terminal.clone()) else {
            if !self.caller_held {
                self.stage = Stage::AwaitingHold { idx };
            } else if let Some(t) = terminal {
                self.terminal(t, out);
            }
            return;
        };
        self.attempt += 1;
        self.stage = Stage::Ringing {
            idx,
            leg_id: None,
            deadline_ms: now_ms.saturating_add(self.answer_timeout_ms),
        };
        out.push(Action::DialAgent {
            attempt: self.attempt,
            target,
            whisper: self.whisper.clone(),
        });
    }

    /// Stops the agent leg that is ringing, if its id is known yet (a later creation report is
    /// cancelled when it comes).
    fn cancel_ringing(&self, out: &mut Vec<Action>) {
        if let Stage::Ringing {
            leg_id: Some(leg_id),
            ..
        } = &self.stage
        {
            out.push(Action::CancelLeg {
                leg_id: leg_id.clone(),
            });
        }
    }

    /// `targets[idx]` did not answer for `reason`: say so and try what comes next.
    fn next(&mut self, idx: usize, reason: &str, now_ms: u64, out: &mut Vec<Action>) {
        let from = self.targets.get(idx).cloned().unwrap_or_default();
        let to = match self.targets.get(idx + 1) {
            Some(t) => Terminal::parse(t).map_or_else(|| t.clone(), |t| t.kind().to_owned()),
            None => Terminal::Voicemail.kind().to_owned(),
        };
        out.push(Action::Emit(EventKind::HandoffFallback(TransferFallback {
            handoff_id: self.handoff_id.clone(),
            from,
            to,
            reason: reason.to_owned(),
            provider: self.provider.clone(),
        })));
        self.dial(idx + 1, now_ms, out);
    }

    fn terminal(&mut self, t: Terminal, out: &mut Vec<Action>) {
        self.stage = Stage::FellBack {
            to: t.kind().to_owned(),
        };
        out.push(Action::RouteCaller(t));
    }
}

fn held_by_default() -> bool {
    true
}

/// The spoken brief for the agent: the summary's whisper line, else who/what/why built from its
/// parts; capped at [`WHISPER_MAX_CHARS`].
pub fn whisper_text(summary: &crate::event::Summary) -> String {
    let text = if summary.whisper.trim().is_empty() {
        let mut parts = vec!["Transferred caller.".to_owned()];
        for s in [&summary.caller_intent, &summary.why_now] {
            let s = s.trim();
            if !s.is_empty() {
                parts.push(format!("{}.", s.trim_end_matches('.')));
            }
        }
        parts.join(" ")
    } else {
        summary.whisper.trim().to_owned()
    };
    text.chars().take(WHISPER_MAX_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn transfer(targets: &[&str]) -> WarmTransfer {
        WarmTransfer::new(
            "h1",
            "CA1",
            "twilio",
            5_000,
            targets.iter().map(|s| (*s).to_owned()).collect(),
            "Caller is upset about a double charge.",
            T0,
            30_000,
        )
    }

    fn dial(attempt: u32, target: &str) -> Action {
        Action::DialAgent {
            attempt,
            target: target.into(),
            whisper: "Caller is upset about a double charge.".into(),
        }
    }

    fn fallback(from: &str, to: &str, reason: &str) -> Action {
        Action::Emit(EventKind::HandoffFallback(TransferFallback {
            handoff_id: "h1".into(),
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
            provider: "twilio".into(),
        }))
    }

    #[test]
    fn answered_connects_with_the_time_from_the_decision() {
        let mut t = transfer(&["+1555"]);
        assert_eq!(t.step(Input::CallerMoved, T0 + 300), [dial(1, "+1555")]);
        assert_eq!(t.deadline_ms(), Some(T0 + 300 + 30_000));
        let created = Input::LegCreated {
            attempt: 1,
            leg_id: "CAagent".into(),
        };
        assert!(t.step(created, T0 + 350).is_empty());
        let ringing = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Progress,
        };
        assert!(t.step(ringing, T0 + 400).is_empty());
        let answered = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Answered,
        };
        assert_eq!(
            t.step(answered, T0 + 4_000),
            [
                Action::Emit(EventKind::HandoffConnected(TransferConnected {
                    handoff_id: "h1".into(),
                    target: "+1555".into(),
                    time_to_agent_ms: 4_000,
                    provider: "twilio".into(),
                })),
                Action::JoinCaller {
                    leg_id: Some("CAagent".into())
                }
            ]
        );
        assert_eq!(t.outcome(), Outcome::Connected);
        // The caller leaving a connected call is the normal end, not an abandonment.
        assert!(t.step(Input::CallerLeft, T0 + 90_000).is_empty());
        assert_eq!(t.outcome(), Outcome::Connected);
    }

    #[test]
    fn no_answer_then_busy_walks_the_list_and_ends_in_the_queue() {
        let mut t = transfer(&["+1555", "sip:b@pbx", "client:c", "queue:support"]);
        t.step(Input::CallerMoved, T0);
        let a = t.step(
            Input::LegStatus {
                attempt: 1,
                status: LegStatus::NoAnswer,
            },
            T0 + 1,
        );
        assert_eq!(
            a,
            [
                fallback("+1555", "sip:b@pbx", "no_answer"),
                dial(2, "sip:b@pbx")
            ]
        );
        // A late report about the first leg changes nothing.
        let late = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Answered,
        };
        assert!(t.step(late, T0 + 2).is_empty());
        let a = t.step(
            Input::LegStatus {
                attempt: 2,
                status: LegStatus::Busy,
            },
            T0 + 3,
        );
        assert_eq!(
            a,
            [
                fallback("sip:b@pbx", "client:c", "busy"),
                dial(3, "client:c")
            ]
        );
        let a = t.step(Input::LegRefused { attempt: 3 }, T0 + 4);
        assert_eq!(
            a,
            [
                fallback("client:c", "queue", "failed"),
                Action::RouteCaller(Terminal::Queue("support".into()))
            ]
        );
        assert_eq!(t.outcome(), Outcome::Fallback);
        assert!(t.is_done());
    }

    #[test]
    fn timeout_cancels_the_leg_and_an_empty_list_ends_in_voicemail() {
        let mut t = transfer(&["+1555"]);
        t.step(Input::CallerMoved, T0);
        t.step(
            Input::LegCreated {
                attempt: 1,
                leg_id: "CAa".into(),
            },
            T0 + 10,
        );
        assert!(t.step(Input::Tick, T0 + 29_999).is_empty());
        assert_eq!(
            t.step(Input::Tick, T0 + 30_000),
            [
                Action::CancelLeg {
                    leg_id: "CAa".into()
                },
                fallback("+1555", "voicemail", "timeout"),
                Action::RouteCaller(Terminal::Voicemail)
            ]
        );
        // The cancelled leg's own report afterwards is ignored.
        let late = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Canceled,
        };
        assert!(t.step(late, T0 + 30_100).is_empty());
        assert_eq!(t.outcome(), Outcome::Fallback);
    }

    #[test]
    fn caller_hanging_up_on_hold_abandons_and_cancels_the_leg() {
        let mut t = transfer(&["+1555", "bot:wss://bot.example/ws"]);
        t.step(Input::CallerMoved, T0);
        t.step(
            Input::LegCreated {
                attempt: 1,
                leg_id: "CAa".into(),
            },
            T0,
        );
        assert_eq!(
            t.step(Input::CallerLeft, T0 + 12_345),
            [
                Action::CancelLeg {
                    leg_id: "CAa".into()
                },
                Action::Emit(EventKind::HandoffAbandoned(TransferAbandoned {
                    handoff_id: "h1".into(),
                    waited_ms: 12_345,
                    provider: "twilio".into(),
                }))
            ]
        );
        assert_eq!(t.outcome(), Outcome::Abandoned);
        assert!(t.step(Input::Tick, T0 + 999_999).is_empty());
    }

    #[test]
    fn caller_move_failing_is_a_failed_outcome_and_completed_while_ringing_falls_back() {
        let mut t = transfer(&["+1555"]);
        t.step(Input::CallerMoveFailed("HTTP 404".into()), T0);
        assert_eq!(t.outcome(), Outcome::Failed);

        let mut t = transfer(&["+1555", "bot:wss://b/x"]);
        t.step(Input::CallerMoved, T0);
        let a = t.step(
            Input::LegStatus {
                attempt: 1,
                status: LegStatus::Completed,
            },
            T0 + 5,
        );
        assert_eq!(
            a,
            [
                fallback("+1555", "bot", "failed"),
                Action::RouteCaller(Terminal::Bot("wss://b/x".into()))
            ]
        );
    }

    #[test]
    fn state_round_trips_through_json_so_a_restart_keeps_the_deadline() {
        let mut t = transfer(&["+1555", "voicemail"]);
        t.step(Input::CallerMoved, T0);
        let back: WarmTransfer = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let mut back = back;
        assert_eq!(
            back.step(Input::Tick, T0 + 30_000),
            [
                fallback("+1555", "voicemail", "timeout"),
                Action::RouteCaller(Terminal::Voicemail)
            ]
        );
    }

    #[test]
    fn start_dials_at_the_decision_and_the_hold_only_marks_the_caller_held() {
        let mut t = transfer(&["+1555"]);
        assert_eq!(t.start(T0), [dial(1, "+1555")]);
        assert!(!t.caller_held);
        assert!(
            t.start(T0 + 1).is_empty(),
            "a started transfer is not dialled twice"
        );
        assert!(t.step(Input::CallerMoved, T0 + 200).is_empty());
        assert!(t.caller_held);
        assert_eq!(t.deadline_ms(), Some(T0 + 30_000));
        let answered = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Answered,
        };
        assert!(matches!(
            t.step(answered, T0 + 3_000).as_slice(),
            [Action::Emit(EventKind::HandoffConnected(c)), Action::JoinCaller { leg_id: None }]
                if c.time_to_agent_ms == 3_000
        ));
        // The answered leg's creation reported after its answer must not hang it up.
        let created = Input::LegCreated {
            attempt: 1,
            leg_id: "CAa".into(),
        };
        assert!(t.step(created, T0 + 3_001).is_empty());
    }

    #[test]
    fn a_leg_ending_before_the_hold_routes_the_caller_only_once_held() {
        let mut t = transfer(&["+1555", "queue:support"]);
        t.start(T0);
        let busy = Input::LegStatus {
            attempt: 1,
            status: LegStatus::Busy,
        };
        // The fallback is announced, but the caller's call is still being updated by the
        // bridge: a second update now would race it.
        assert_eq!(t.step(busy, T0 + 50), [fallback("+1555", "queue", "busy")]);
        assert_eq!(t.stage, Stage::AwaitingHold { idx: 1 });
        assert_eq!(t.outcome(), Outcome::Pending);
        assert_eq!(
            t.step(Input::CallerMoved, T0 + 80),
            [Action::RouteCaller(Terminal::Queue("support".into()))]
        );
        assert_eq!(t.outcome(), Outcome::Fallback);

        // A first target that is itself a terminal waits for the hold too.
        let mut t = transfer(&["voicemail"]);
        assert!(t.start(T0).is_empty());
        assert_eq!(
            t.step(Input::CallerMoved, T0 + 10),
            [Action::RouteCaller(Terminal::Voicemail)]
        );
    }

    #[test]
    fn a_failed_hold_cancels_the_ringing_leg_and_late_legs_are_cancelled() {
        let mut t = transfer(&["+1555"]);
        t.start(T0);
        t.step(
            Input::LegCreated {
                attempt: 1,
                leg_id: "CAa".into(),
            },
            T0 + 5,
        );
        assert_eq!(
            t.step(Input::CallerMoveFailed("HTTP 404".into()), T0 + 9),
            [Action::CancelLeg {
                leg_id: "CAa".into()
            }]
        );
        assert_eq!(t.outcome(), Outcome::Failed);

        // The leg's creation comes back only after the ringing deadline: nobody waits for it.
        let mut t = transfer(&["+1555", "+1666"]);
        t.start(T0);
        t.step(Input::CallerMoved, T0 + 1);
        let a = t.step(Input::Tick, T0 + 30_000);
        assert_eq!(a, [fallback("+1555", "+1666", "timeout"), dial(2, "+1666")]);
        let late = Input::LegCreated {
            attempt: 1,
            leg_id: "CAlate".into(),
        };
        assert_eq!(
            t.step(late, T0 + 30_001),
            [Action::CancelLeg {
                leg_id: "CAlate".into()
            }]
        );
    }

    #[test]
    fn state_written_before_concurrent_dialling_reads_as_held() {
        let mut t = transfer(&["+1555"]);
        t.step(Input::CallerMoved, T0);
        let mut v = serde_json::to_value(&t).unwrap();
        v.as_object_mut().unwrap().remove("caller_held");
        let back: WarmTransfer = serde_json::from_value(v).unwrap();
        assert!(back.caller_held);
    }

    #[test]
    fn whisper_prefers_the_summary_line_and_is_capped() {
        let mut s = crate::event::Summary {
            caller_intent: "wants a refund of a double charge".into(),
            why_now: "asked for a person twice.".into(),
            ..Default::default()
        };
        assert_eq!(
            whisper_text(&s),
            "Transferred caller. wants a refund of a double charge. asked for a person twice."
        );
        s.whisper = "x".repeat(1000);
        assert_eq!(whisper_text(&s).len(), WHISPER_MAX_CHARS);
        assert_eq!(LegStatus::from_twilio("ringing"), LegStatus::Progress);
        assert_eq!(LegStatus::from_twilio("in-progress"), LegStatus::Answered);
    }
}
