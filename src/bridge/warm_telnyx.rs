//! Telnyx's side of the warm transfer (Call Control): the requests that carry out
//! [`super::warm::Action`]s and the reader that turns Telnyx webhooks into
//! [`super::warm::Input`]s.
//!
//! The flow (protocols.md §12.2): the bridge's delivery puts the caller on hold (hold audio looped
//! with `actions/playback_start`, or the `say` line with `actions/speak`); the agent leg is
//! `POST /v2/calls` whose `webhook_url` is warmline's Telnyx route; on its `call.answered` the
//! whisper is spoken to the agent alone (`actions/speak`), and on that leg's `call.speak.ended`
//! the two legs are bridged (`actions/bridge`). `call.hangup` of the agent leg before the answer
//! gives the fallback reason from its `hangup_cause`; of the caller on hold, an abandonment.
//!
//! Every leg warmline touches carries `client_state` = base64 of [`LegState`] (the handoff id,
//! which leg, the attempt, the caller's call), which Telnyx repeats on every later webhook of
//! that call; the agent leg also carries the SIP header `X-Handoff-Id`. Builders and the reader
//! are pure; [`execute`] and [`run_step`] send requests.

use super::config::TelnyxConfig;
use super::transfer::{TransferError, api_url};
use super::warm::{Action, Input, LegStatus, Terminal, WarmTransfer};
use super::warm_run::{Executed, LegIdOf, refused, send};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Path of the Telnyx webhook route (agent legs are pointed at it).
pub const WEBHOOK_PATH: &str = "/v1/providers/telnyx/webhook";

/// Longest `client_state` read back; ours are a few hundred bytes.
const MAX_STATE_BYTES: usize = 2048;

/// What warmline keeps in a leg's `client_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegState {
    /// The handoff.
    pub handoff_id: String,
    /// `agent`, `caller` (on hold) or `voicemail` (the caller, hearing the voicemail prompt).
    pub leg: String,
    /// Agent legs: which attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// Agent legs: the caller's `call_control_id`, bridged to once the whisper ends.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caller: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LegState {
    /// The base64 `client_state`.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Reads a `client_state`; `None` when it is not one of warmline's (another app's state,
    /// or a blind transfer's bare handoff id).
    pub fn decode(client_state: &str) -> Option<Self> {
        if client_state.len() > MAX_STATE_BYTES {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(client_state.trim())
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A Telnyx request that follows an answered agent leg, outside the state machine (the
/// transfer is already connected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The whisper ended: bridge the agent leg `leg` to the caller `caller`.
    Bridge {
        /// The caller's `call_control_id`.
        caller: String,
        /// The agent leg's `call_control_id`.
        leg: String,
    },
    /// The voicemail prompt ended: record the caller.
    Record {
        /// The caller's `call_control_id`.
        caller: String,
    },
}

/// What one Telnyx webhook means for warm transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    /// Inputs for the transfer of `handoff_id`, in order.
    Inputs {
        /// The handoff.
        handoff_id: String,
        /// What happened.
        inputs: Vec<Input>,
    },
    /// A request to make.
    Step(Step),
    /// A call without warmline's state hung up: a held caller whose state another app
    /// replaced, or nothing of ours (found by its call id).
    Hangup {
        /// Its `call_control_id`.
        call_id: String,
    },
}

/// Reads a Telnyx `hangup_cause` of an agent leg.
pub fn leg_status(hangup_cause: &str) -> LegStatus {
    match hangup_cause {
        "timeout" | "no_answer" => LegStatus::NoAnswer,
        "user_busy" | "call_rejected" => LegStatus::Busy,
        "originator_cancel" => LegStatus::Canceled,
        "normal_clearing" => LegStatus::Completed,
        _ => LegStatus::Failed,
    }
}

/// Reads a (verified) Telnyx webhook body; `None` for everything warm transfers do not use.
pub fn read_webhook(body: &Value) -> Option<Webhook> {
    let data = &body["data"];
    let event = data["event_type"].as_str()?;
    let p = &data["payload"];
    let call_id = p["call_control_id"].as_str()?.to_owned();
    let state = p["client_state"].as_str().and_then(LegState::decode);
    let Some(state) = state else {
        return (event == "call.hangup").then_some(Webhook::Hangup { call_id });
    };
    let attempt = state.attempt;
    let inputs = match (state.leg.as_str(), event) {
        ("agent", "call.answered") => vec![
            // The answer may overtake the dial's own answer; the machine needs the leg id to
            // join it.
            Input::LegCreated {
                attempt,
                leg_id: call_id,
            },
            Input::LegStatus {
                attempt,
                status: LegStatus::Answered,
            },
        ],
        ("agent", "call.hangup") => vec![Input::LegStatus {
            attempt,
            status: leg_status(p["hangup_cause"].as_str().unwrap_or("")),
        }],
        ("agent", "call.speak.ended") if !state.caller.is_empty() => {
            return Some(Webhook::Step(Step::Bridge {
                caller: state.caller,
                leg: call_id,
            }));
        }
        ("voicemail", "call.speak.ended") => {
            return Some(Webhook::Step(Step::Record { caller: call_id }));
        }
        ("caller" | "voicemail", "call.hangup") => vec![Input::CallerLeft],
        _ => return None,
    };
    Some(Webhook::Inputs {
        handoff_id: state.handoff_id,
        inputs,
    })
}

fn call_url(
    cfg: &TelnyxConfig,
    call_id: &str,
    action: &str,
) -> Result<reqwest::Url, TransferError> {
    api_url(
        &cfg.api_base,
        &["v2", "calls", call_id, "actions", action],
        false,
    )
}

fn speak_body(cfg: &TelnyxConfig, text: &str, state: &LegState) -> Value {
    json!({
        "payload": text,
        "voice": cfg.voice,
        "language": cfg.language,
        "client_state": state.encode(),
    })
}

/// The caller's hold, the bridge's delivery in warm mode: hold audio looped, else the `say`
/// line; both mark the caller's call with its [`LegState`].
pub fn hold(
    cfg: &TelnyxConfig,
    call_id: &str,
    handoff_id: &str,
) -> Result<(reqwest::Url, Value), TransferError> {
    let state = LegState {
        handoff_id: handoff_id.to_owned(),
        leg: "caller".into(),
        attempt: 0,
        caller: String::new(),
    };
    match &cfg.hold_url {
        Some(audio) => Ok((
            call_url(cfg, call_id, "playback_start")?,
            json!({"audio_url": audio, "loop": "infinity", "client_state": state.encode()}),
        )),
        None => Ok((
            call_url(cfg, call_id, "speak")?,
            speak_body(cfg, &cfg.say, &state),
        )),
    }
}

/// `POST /v2/calls` body of agent leg `attempt` of `t` to `target`.
pub fn agent_leg_body(
    cfg: &TelnyxConfig,
    t: &WarmTransfer,
    attempt: u32,
    target: &str,
) -> Result<Value, TransferError> {
    let base = cfg
        .callback_base
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let webhook = format!("{base}{WEBHOOK_PATH}");
    reqwest::Url::parse(&webhook).map_err(|e| TransferError::BadUrl {
        url: webhook.clone(),
        reason: e.to_string(),
    })?;
    let state = LegState {
        handoff_id: t.handoff_id.clone(),
        leg: "agent".into(),
        attempt,
        caller: t.call_id.clone(),
    };
    Ok(json!({
        "connection_id": cfg.connection_id.as_deref().unwrap_or(""),
        "to": target.trim(),
        "from": cfg.caller_id.as_deref().unwrap_or(""),
        "timeout_secs": cfg.answer_timeout_s,
        "client_state": state.encode(),
        "command_id": format!("{}-agent-{attempt}", t.handoff_id),
        "webhook_url": webhook,
        "webhook_url_method": "POST",
        "custom_headers": [{"name": "X-Handoff-Id", "value": t.handoff_id}],
    }))
}

/// The requests that send the held caller of `t` to a terminal, in order.
pub fn terminal_requests(
    cfg: &TelnyxConfig,
    t: &WarmTransfer,
    terminal: &Terminal,
) -> Result<Vec<(reqwest::Url, Value)>, TransferError> {
    let caller = t.call_id.as_str();
    let mut out = Vec::new();
    if cfg.hold_url.is_some() {
        out.push((call_url(cfg, caller, "playback_stop")?, json!({})));
    }
    let state = |leg: &str| LegState {
        handoff_id: t.handoff_id.clone(),
        leg: leg.into(),
        attempt: 0,
        caller: String::new(),
    };
    match terminal {
        Terminal::Queue(name) => {
            out.push((
                call_url(cfg, caller, "speak")?,
                speak_body(
                    cfg,
                    "Everyone is busy; you are next in line.",
                    &state("caller"),
                ),
            ));
            out.push((
                call_url(cfg, caller, "enqueue")?,
                json!({"queue_name": name}),
            ));
        }
        // The recording starts when the prompt's `call.speak.ended` comes ([`Step::Record`]),
        // so the message does not begin with the prompt.
        Terminal::Voicemail => out.push((
            call_url(cfg, caller, "speak")?,
            speak_body(
                cfg,
                "Sorry, no one could take your call. Please leave a message after the tone.",
                &state("voicemail"),
            ),
        )),
        Terminal::Bot(url) => {
            out.push((
                call_url(cfg, caller, "speak")?,
                speak_body(cfg, "Sorry, no one is free right now.", &state("caller")),
            ));
            out.push((
                call_url(cfg, caller, "streaming_start")?,
                json!({
                    "stream_url": url,
                    "stream_track": "both_tracks",
                    "stream_bidirectional_mode": "rtp",
                    "custom_parameters": [{"name": "handoff_id", "value": t.handoff_id}],
                }),
            ));
        }
    }
    Ok(out)
}

/// The new leg's id in a `POST /v2/calls` answer.
const DIALLED: LegIdOf = Some(|v| v["data"]["call_control_id"].as_str());

async fn post(
    client: &reqwest::Client,
    cfg: &TelnyxConfig,
    leg_id: LegIdOf,
    (url, body): (reqwest::Url, Value),
) -> Executed {
    let req = client.post(url).bearer_auth(&cfg.api_key).json(&body);
    send(req, leg_id).await
}

/// Sends the requests of one action of transfer `t`. [`Action::Emit`] gives
/// [`Executed::Done`].
pub async fn execute(
    client: &reqwest::Client,
    cfg: &TelnyxConfig,
    t: &WarmTransfer,
    action: &Action,
) -> Executed {
    let requests = match action {
        Action::DialAgent {
            attempt, target, ..
        } => api_url(&cfg.api_base, &["v2", "calls"], false)
            .and_then(|u| Ok(vec![(u, agent_leg_body(cfg, t, *attempt, target)?)])),
        Action::JoinCaller { leg_id: None } => {
            return Executed::Failed("the answered agent leg's id is unknown".into());
        }
        Action::JoinCaller {
            leg_id: Some(leg), ..
        } if t.whisper.trim().is_empty() => {
            let step = Step::Bridge {
                caller: t.call_id.clone(),
                leg: leg.clone(),
            };
            run_step(client, cfg, &step).await;
            return Executed::Done;
        }
        Action::JoinCaller { leg_id: Some(leg) } => {
            let state = LegState {
                handoff_id: t.handoff_id.clone(),
                leg: "agent".into(),
                attempt: t.attempt,
                caller: t.call_id.clone(),
            };
            call_url(cfg, leg, "speak").map(|u| vec![(u, speak_body(cfg, &t.whisper, &state))])
        }
        Action::CancelLeg { leg_id } => {
            call_url(cfg, leg_id, "hangup").map(|u| vec![(u, json!({}))])
        }
        Action::RouteCaller(terminal) => terminal_requests(cfg, t, terminal),
        Action::Emit(_) => return Executed::Done,
    };
    let requests = match requests {
        Ok(r) => r,
        Err(e) => return refused(action, e.to_string()),
    };
    let leg_id = match action {
        Action::DialAgent { .. } => DIALLED,
        _ => None,
    };
    let mut last = Executed::Done;
    for r in requests {
        last = post(client, cfg, leg_id, r).await;
        if !matches!(last, Executed::Done | Executed::LegCreated(_)) {
            break;
        }
    }
    last
}

/// Carries out a [`Step`]. A bridge that fails (the caller hung up during the whisper) hangs
/// the agent up rather than leave them on a dead line.
pub async fn run_step(client: &reqwest::Client, cfg: &TelnyxConfig, step: &Step) {
    match step {
        Step::Bridge { caller, leg } => {
            if cfg.hold_url.is_some()
                && let Ok(u) = call_url(cfg, caller, "playback_stop")
            {
                // The music may already have stopped; the bridge matters, not this.
                let _ = post(client, cfg, None, (u, json!({}))).await;
            }
            let bridged = match call_url(cfg, caller, "bridge") {
                Ok(u) => post(client, cfg, None, (u, json!({"call_control_id": leg}))).await,
                Err(e) => Executed::Failed(e.to_string()),
            };
            if let Executed::Failed(error) = bridged {
                tracing::warn!(%caller, %leg, %error, "cannot bridge the agent to the caller; hanging the agent up");
                if let Ok(u) = call_url(cfg, leg, "hangup") {
                    let _ = post(client, cfg, None, (u, json!({}))).await;
                }
            }
        }
        Step::Record { caller } => {
            let body = json!({"format": "mp3", "channels": "single", "play_beep": true,
                "max_length": 120});
            let done = match call_url(cfg, caller, "record_start") {
                Ok(u) => post(client, cfg, None, (u, body)).await,
                Err(e) => Executed::Failed(e.to_string()),
            };
            if let Executed::Failed(error) = done {
                tracing::warn!(%caller, %error, "cannot start the voicemail recording");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TelnyxConfig {
        TelnyxConfig {
            caller_id: Some("+15550000000".into()),
            connection_id: Some("conn1".into()),
            callback_base: Some("https://gw.example.com/".into()),
            ..TelnyxConfig::new("KEY", "+15551112222")
        }
    }

    fn transfer() -> WarmTransfer {
        WarmTransfer::new(
            "h1",
            "v3:caller",
            "telnyx",
            0,
            vec!["+15551112222".into()],
            "Caller is upset.",
            0,
            30_000,
        )
    }

    fn webhook(event: &str, call: &str, state: Option<&LegState>, cause: &str) -> Value {
        json!({"data": {"event_type": event, "payload": {
            "call_control_id": call,
            "client_state": state.map(LegState::encode),
            "hangup_cause": cause,
        }}})
    }

    #[test]
    fn state_round_trips_and_foreign_state_is_not_ours() {
        let s = LegState {
            handoff_id: "h/1".into(),
            leg: "agent".into(),
            attempt: 2,
            caller: "v3:c".into(),
        };
        assert_eq!(LegState::decode(&s.encode()), Some(s));
        // A blind transfer's bare base64 handoff id, another app's state, garbage.
        for other in ["aDE=", "eyJ4IjoxfQ==", "not base64!", ""] {
            assert_eq!(LegState::decode(other), None, "{other}");
        }
        assert_eq!(LegState::decode(&"A".repeat(MAX_STATE_BYTES + 4)), None);
    }

    #[test]
    fn agent_leg_carries_state_header_timeout_and_webhook() {
        let b = agent_leg_body(&cfg(), &transfer(), 2, " sip:b@pbx ").unwrap();
        assert_eq!(b["connection_id"], "conn1");
        assert_eq!(b["to"], "sip:b@pbx");
        assert_eq!(b["from"], "+15550000000");
        assert_eq!(b["timeout_secs"], 30);
        assert_eq!(
            b["webhook_url"],
            "https://gw.example.com/v1/providers/telnyx/webhook"
        );
        assert_eq!(b["custom_headers"][0]["name"], "X-Handoff-Id");
        assert_eq!(b["custom_headers"][0]["value"], "h1");
        let s = LegState::decode(b["client_state"].as_str().unwrap()).unwrap();
        assert_eq!(
            (s.leg.as_str(), s.attempt, s.caller.as_str()),
            ("agent", 2, "v3:caller")
        );
    }

    #[test]
    fn hold_speaks_the_line_or_loops_the_audio() {
        let (u, b) = hold(&cfg(), "v3:c", "h1").unwrap();
        assert_eq!(u.path(), "/v2/calls/v3:c/actions/speak");
        assert_eq!(b["payload"], cfg().say);
        let mut c = cfg();
        c.hold_url = Some("https://x.example/hold.mp3".into());
        let (u, b) = hold(&c, "v3:c", "h1").unwrap();
        assert_eq!(u.path(), "/v2/calls/v3:c/actions/playback_start");
        assert_eq!(b["loop"], "infinity");
        let s = LegState::decode(b["client_state"].as_str().unwrap()).unwrap();
        assert_eq!((s.handoff_id.as_str(), s.leg.as_str()), ("h1", "caller"));
    }

    #[test]
    fn terminals_name_the_caller_call() {
        let t = transfer();
        let paths = |term: &Terminal| -> Vec<String> {
            terminal_requests(&cfg(), &t, term)
                .unwrap()
                .into_iter()
                .map(|(u, _)| u.path().rsplit('/').next().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(
            paths(&Terminal::Queue("support".into())),
            ["speak", "enqueue"]
        );
        assert_eq!(paths(&Terminal::Voicemail), ["speak"]);
        assert_eq!(
            paths(&Terminal::Bot("wss://bot/ws".into())),
            ["speak", "streaming_start"]
        );
        let r = terminal_requests(&cfg(), &t, &Terminal::Queue("support".into())).unwrap();
        assert_eq!(r[1].1["queue_name"], "support");
        assert!(r[1].0.path().starts_with("/v2/calls/v3:caller/"));
    }

    #[test]
    fn webhooks_become_inputs_steps_or_hangups() {
        let agent = LegState {
            handoff_id: "h1".into(),
            leg: "agent".into(),
            attempt: 2,
            caller: "v3:caller".into(),
        };
        assert_eq!(
            read_webhook(&webhook("call.answered", "v3:a", Some(&agent), "")),
            Some(Webhook::Inputs {
                handoff_id: "h1".into(),
                inputs: vec![
                    Input::LegCreated {
                        attempt: 2,
                        leg_id: "v3:a".into()
                    },
                    Input::LegStatus {
                        attempt: 2,
                        status: LegStatus::Answered
                    }
                ]
            })
        );
        for (cause, status) in [
            ("timeout", LegStatus::NoAnswer),
            ("user_busy", LegStatus::Busy),
            ("call_rejected", LegStatus::Busy),
            ("normal_clearing", LegStatus::Completed),
            ("unallocated_number", LegStatus::Failed),
        ] {
            assert_eq!(
                read_webhook(&webhook("call.hangup", "v3:a", Some(&agent), cause)),
                Some(Webhook::Inputs {
                    handoff_id: "h1".into(),
                    inputs: vec![Input::LegStatus { attempt: 2, status }]
                }),
                "{cause}"
            );
        }
        assert_eq!(
            read_webhook(&webhook("call.speak.ended", "v3:a", Some(&agent), "")),
            Some(Webhook::Step(Step::Bridge {
                caller: "v3:caller".into(),
                leg: "v3:a".into()
            }))
        );
        let caller = LegState {
            handoff_id: "h1".into(),
            leg: "caller".into(),
            attempt: 0,
            caller: String::new(),
        };
        assert_eq!(
            read_webhook(&webhook(
                "call.hangup",
                "v3:caller",
                Some(&caller),
                "normal_clearing"
            )),
            Some(Webhook::Inputs {
                handoff_id: "h1".into(),
                inputs: vec![Input::CallerLeft]
            })
        );
        // The hold line ending is nothing; a foreign call's hang-up is looked up by its id.
        assert_eq!(
            read_webhook(&webhook("call.speak.ended", "v3:caller", Some(&caller), "")),
            None
        );
        assert_eq!(
            read_webhook(&webhook("call.hangup", "v3:x", None, "normal_clearing")),
            Some(Webhook::Hangup {
                call_id: "v3:x".into()
            })
        );
        assert_eq!(
            read_webhook(&webhook("call.answered", "v3:x", None, "")),
            None
        );
        assert_eq!(read_webhook(&json!({"data": 1})), None);
    }
}
