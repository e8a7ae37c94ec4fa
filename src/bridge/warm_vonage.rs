//! Vonage's side of the warm transfer: the NCCOs and REST requests that carry out
//! [`super::warm::Action`]s, the reader of the agent leg's events, and the check of Vonage's
//! signed webhooks.
//!
//! The flow (protocols.md §12.3): the bridge's delivery transfers the caller
//! (`PUT /v1/calls/{uuid}`) to an NCCO that `talk`s the `say` line and holds them in the
//! `conversation` `warmline-{handoff_id}` (`startOnEnter: false`, `musicOnHoldUrl` =
//! `hold_url`). The agent leg is `POST /v1/calls` with an NCCO that `talk`s the whisper, then
//! joins and starts that conversation; its `event_url` is warmline's
//! `POST /v1/providers/vonage/event?handoff_id=…&attempt=…`. The caller's own events reach
//! warmline only if the application's event URL points there (found by the caller's uuid).
//!
//! Authentication: Vonage signs webhooks with a JWT (HS256, the account's signature secret) in
//! `Authorization: Bearer`, whose `payload_hash` is the SHA-256 of the body; [`verify_jwt`]
//! checks the signature, the hash and the age.

use super::config::VonageConfig;
use super::transfer::{TransferError, api_url, vonage_endpoint};
use super::warm::{Action, Input, LegStatus, Terminal, WarmTransfer};
use super::warm_run::{Executed, LegIdOf, refused, send};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Path of the Vonage event route.
pub const EVENT_PATH: &str = "/v1/providers/vonage/event";

/// Oldest `iat` accepted, against replays of a captured webhook.
const MAX_SKEW_S: u64 = 300;

/// The conversation both legs meet in.
pub fn room(handoff_id: &str) -> String {
    format!("warmline-{handoff_id}")
}

fn hold_conversation(name: &str, hold_url: Option<&str>) -> Value {
    let mut c = json!({"action": "conversation", "name": name, "startOnEnter": false,
        "endOnExit": true});
    if let Some(h) = hold_url {
        c["musicOnHoldUrl"] = json!([h]);
    }
    c
}

fn transfer(ncco: Vec<Value>) -> Value {
    json!({"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}})
}

/// The caller's hold, the bridge's delivery in warm mode.
pub fn hold_body(cfg: &VonageConfig, handoff_id: &str) -> Value {
    let mut ncco = Vec::new();
    if !cfg.say.trim().is_empty() {
        ncco.push(json!({"action": "talk", "text": cfg.say}));
    }
    ncco.push(hold_conversation(
        &room(handoff_id),
        cfg.hold_url.as_deref(),
    ));
    transfer(ncco)
}

/// `POST /v1/calls` body of agent leg `attempt` to `target`.
pub fn agent_leg_body(
    cfg: &VonageConfig,
    handoff_id: &str,
    attempt: u32,
    target: &str,
    whisper: &str,
) -> Result<Value, TransferError> {
    let base = cfg
        .callback_base
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let mut u =
        reqwest::Url::parse(&format!("{base}{EVENT_PATH}")).map_err(|e| TransferError::BadUrl {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
    u.query_pairs_mut()
        .append_pair("handoff_id", handoff_id)
        .append_pair("attempt", &attempt.to_string());
    let mut ncco = Vec::new();
    if !whisper.trim().is_empty() {
        ncco.push(json!({"action": "talk", "text": whisper}));
    }
    ncco.push(
        json!({"action": "conversation", "name": room(handoff_id), "startOnEnter": true,
        "endOnExit": true}),
    );
    let from = cfg
        .caller_id
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('+');
    Ok(json!({
        "to": [vonage_endpoint(target, handoff_id)],
        "from": {"type": "phone", "number": from},
        "ncco": ncco,
        "event_url": [String::from(u)],
        "event_method": "POST",
        "ringing_timer": cfg.answer_timeout_s,
    }))
}

/// The caller's NCCO for a terminal. Vonage has no call queue: `queue:NAME` holds the caller in
/// the conversation `NAME`, which agents join to take them.
pub fn terminal_body(cfg: &VonageConfig, t: &Terminal, handoff_id: &str) -> Value {
    let talk = |text: &str| json!({"action": "talk", "text": text});
    transfer(match t {
        Terminal::Queue(name) => vec![
            talk("Everyone is busy; you are next in line."),
            hold_conversation(name, cfg.hold_url.as_deref()),
        ],
        Terminal::Voicemail => vec![
            talk("Sorry, no one could take your call. Please leave a message after the tone."),
            json!({"action": "record", "beepStart": true, "endOnSilence": 5,
                "timeOut": 120}),
        ],
        Terminal::Bot(url) => vec![
            talk("Sorry, no one is free right now."),
            json!({"action": "connect", "endpoint": [{"type": "websocket", "uri": url,
                "content-type": "audio/l16;rate=16000",
                "headers": {"handoff_id": handoff_id}}]}),
        ],
    })
}

/// Reads a Vonage call `status` of an agent leg.
pub fn leg_status(status: &str) -> LegStatus {
    match status {
        "answered" => LegStatus::Answered,
        "busy" | "rejected" => LegStatus::Busy,
        "timeout" | "unanswered" => LegStatus::NoAnswer,
        "cancelled" => LegStatus::Canceled,
        "failed" => LegStatus::Failed,
        "completed" => LegStatus::Completed,
        _ => LegStatus::Progress,
    }
}

/// What one (verified) event means: the agent leg's status for its transfer, or the end of a
/// call that may be a held caller (found by its uuid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An agent leg's status.
    Leg {
        /// The handoff.
        handoff_id: String,
        /// The input.
        input: Input,
    },
    /// A call ended outside any agent leg.
    CallEnded {
        /// Its uuid.
        uuid: String,
    },
}

/// Reads an event webhook: `query` of the URL warmline gave (agent legs), `body` its JSON.
pub fn read_event(query: &[(String, String)], body: &Value) -> Option<Event> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let status = body["status"].as_str()?;
    match (q("handoff_id"), q("attempt").and_then(|a| a.parse().ok())) {
        (Some(h), Some(attempt)) => Some(Event::Leg {
            handoff_id: h.to_owned(),
            input: Input::LegStatus {
                attempt,
                status: leg_status(status),
            },
        }),
        _ if status == "completed" => Some(Event::CallEnded {
            uuid: body["uuid"].as_str()?.to_owned(),
        }),
        _ => None,
    }
}

/// Checks a Vonage signed webhook: `Authorization: Bearer <JWT>`, HS256 with the signature
/// secret, `payload_hash` = hex SHA-256 of `body`, `iat` within [`MAX_SKEW_S`] of `now_s`.
pub fn verify_jwt(
    secret: &str,
    authorization: &str,
    body: &[u8],
    now_s: u64,
) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = authorization
        .trim()
        .strip_prefix("Bearer ")
        .ok_or("no bearer token")?;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let header: Value = b64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad JWT header")?;
    if header["alg"] != "HS256" {
        return Err("JWT is not HS256");
    }
    let sig = b64.decode(sig).map_err(|_| "bad JWT signature")?;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    if secret.is_empty() || mac.verify_slice(&sig).is_err() {
        return Err("JWT signature does not match");
    }
    let claims: Value = b64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad JWT claims")?;
    let iat = claims["iat"].as_u64().ok_or("JWT without iat")?;
    if now_s.abs_diff(iat) > MAX_SKEW_S {
        return Err("JWT iat too far from now");
    }
    let hash = hex::encode(sha2::Sha256::digest(body));
    if claims["payload_hash"].as_str() != Some(hash.as_str()) {
        return Err("payload_hash does not match the body");
    }
    Ok(())
}

/// Sends the request of one action of transfer `t`. [`Action::Emit`] and
/// [`Action::JoinCaller`] (the agent's NCCO joins by itself) give [`Executed::Done`].
pub async fn execute(
    client: &reqwest::Client,
    cfg: &VonageConfig,
    t: &WarmTransfer,
    action: &Action,
) -> Executed {
    let built = match action {
        Action::DialAgent {
            attempt,
            target,
            whisper,
        } => api_url(&cfg.api_base, &["v1", "calls"], false).and_then(|u| {
            let body = agent_leg_body(cfg, &t.handoff_id, *attempt, target, whisper)?;
            Ok(client.post(u).json(&body))
        }),
        Action::CancelLeg { leg_id } => api_url(&cfg.api_base, &["v1", "calls", leg_id], false)
            .map(|u| client.put(u).json(&json!({"action": "hangup"}))),
        Action::RouteCaller(terminal) => {
            api_url(&cfg.api_base, &["v1", "calls", &t.call_id], false).map(|u| {
                client
                    .put(u)
                    .json(&terminal_body(cfg, terminal, &t.handoff_id))
            })
        }
        Action::Emit(_) | Action::JoinCaller { .. } => return Executed::Done,
    };
    let req = match built {
        Ok(r) => r.bearer_auth(&cfg.jwt),
        Err(e) => return refused(action, e.to_string()),
    };
    let leg_id: LegIdOf = match action {
        Action::DialAgent { .. } => Some(|v| v["uuid"].as_str()),
        _ => None,
    };
    send(req, leg_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VonageConfig {
        VonageConfig {
            caller_id: Some("+15550000000".into()),
            callback_base: Some("https://gw.example.com/".into()),
            hold_url: Some("https://x.example/hold.mp3".into()),
            say: "Please hold.".into(),
            signature_secret: Some("sec".into()),
            ..VonageConfig::new("jwt", "+15551112222")
        }
    }

    /// A JWT as Vonage signs it.
    fn sign(secret: &str, claims: &Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = b64.encode(claims.to_string());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", b64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signed_webhooks_verify_and_tampering_is_refused() {
        let body = br#"{"status":"answered","uuid":"u1"}"#;
        let hash = hex::encode(sha2::Sha256::digest(body));
        let jwt = sign(
            "sec",
            &json!({"iat": 1_700_000_000u64, "iss": "Vonage",
            "payload_hash": hash, "jti": "j1"}),
        );
        let auth = format!("Bearer {jwt}");
        assert_eq!(verify_jwt("sec", &auth, body, 1_700_000_100), Ok(()));
        assert!(verify_jwt("other", &auth, body, 1_700_000_100).is_err());
        assert!(verify_jwt("sec", &auth, br#"{"status":"busy"}"#, 1_700_000_100).is_err());
        assert_eq!(
            verify_jwt("sec", &auth, body, 1_700_001_000),
            Err("JWT iat too far from now")
        );
        assert!(verify_jwt("sec", &jwt, body, 1_700_000_100).is_err());
        assert!(verify_jwt("", &auth, body, 1_700_000_100).is_err());
        let none = auth.replace(&jwt[..jwt.find('.').unwrap()], "eyJhbGciOiJub25lIn0");
        assert!(verify_jwt("sec", &none, body, 1_700_000_100).is_err());
    }

    #[test]
    fn hold_and_agent_meet_in_the_conversation_with_the_whisper_first() {
        let b = hold_body(&cfg(), "h1");
        let ncco = &b["destination"]["ncco"];
        assert_eq!(ncco[0], json!({"action": "talk", "text": "Please hold."}));
        assert_eq!(ncco[1]["name"], "warmline-h1");
        assert_eq!(ncco[1]["startOnEnter"], false);
        assert_eq!(
            ncco[1]["musicOnHoldUrl"],
            json!(["https://x.example/hold.mp3"])
        );
        let a = agent_leg_body(&cfg(), "h 1", 2, "sip:b@pbx", "Caller is upset.").unwrap();
        assert_eq!(
            a["to"],
            json!([{"type": "sip", "uri": "sip:b@pbx", "headers": {"X-Handoff-Id": "h 1"}}])
        );
        assert_eq!(a["from"], json!({"type": "phone", "number": "15550000000"}));
        assert_eq!(a["ncco"][0]["text"], "Caller is upset.");
        assert_eq!(a["ncco"][1]["name"], "warmline-h 1");
        assert_eq!(a["ncco"][1]["startOnEnter"], true);
        assert_eq!(
            a["event_url"],
            json!(["https://gw.example.com/v1/providers/vonage/event?handoff_id=h+1&attempt=2"])
        );
        assert_eq!(a["ringing_timer"], 30);
    }

    #[test]
    fn events_become_leg_inputs_or_ended_calls() {
        let q = vec![
            ("handoff_id".to_owned(), "h1".to_owned()),
            ("attempt".to_owned(), "3".to_owned()),
        ];
        for (status, want) in [
            ("answered", LegStatus::Answered),
            ("busy", LegStatus::Busy),
            ("rejected", LegStatus::Busy),
            ("timeout", LegStatus::NoAnswer),
            ("unanswered", LegStatus::NoAnswer),
            ("failed", LegStatus::Failed),
            ("ringing", LegStatus::Progress),
        ] {
            assert_eq!(
                read_event(&q, &json!({"status": status, "uuid": "a"})),
                Some(Event::Leg {
                    handoff_id: "h1".into(),
                    input: Input::LegStatus {
                        attempt: 3,
                        status: want
                    }
                }),
                "{status}"
            );
        }
        assert_eq!(
            read_event(&[], &json!({"status": "completed", "uuid": "c1"})),
            Some(Event::CallEnded { uuid: "c1".into() })
        );
        assert_eq!(
            read_event(&[], &json!({"status": "ringing", "uuid": "c1"})),
            None
        );
        let v = terminal_body(&cfg(), &Terminal::Queue("support".into()), "h1");
        assert_eq!(v["destination"]["ncco"][1]["name"], "support");
    }
}
