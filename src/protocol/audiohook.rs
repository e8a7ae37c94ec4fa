//! Genesys Cloud AudioHook v2, the pure half: the upgrade's HTTP Message Signature (RFC 9421,
//! `hmac-sha256`, key = the base64-decoded client secret), the JSON control session (`open` →
//! `opened` with the chosen media, `ping` → `pong`, `pause`/`resume`, `close` → `closed`, a
//! `disconnect` that hands the call back to the Architect flow) and the PCMU frames (one channel,
//! or two interleaved: `external` = customer = caller, `internal` = agent).
//!
//! The provider file is [`super::genesys`]: its adapter queues this session's replies for the
//! gateway to send ([`super::Adapter::take_reply`]); the server checks the upgrade with
//! [`verify_signature`] (`[auth.audiohook]`).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// Oldest signature accepted, as Genesys' reference server enforces.
pub const MAX_SIGNATURE_AGE_S: u64 = 10;
/// Largest binary frame accepted (Genesys sends ~20–100 ms; this is seconds of stereo).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest text control message accepted.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Why an upgrade's signature is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// `X-API-KEY` is not the configured key.
    #[error("unknown API key")]
    ApiKey,
    /// `Signature-Input` cannot be read.
    #[error("malformed Signature-Input: {0}")]
    Input(&'static str),
    /// A covered component the verifier does not know.
    #[error("unsupported signature component {0}")]
    Component(String),
    /// `alg` is not `hmac-sha256`, or `keyid` is not the API key.
    #[error("signature parameters do not match the API key / hmac-sha256")]
    Params,
    /// `created` too old or in the future, or `expires` passed.
    #[error("signature outside its validity window")]
    Expired,
    /// The configured client secret is not base64.
    #[error("client secret is not base64")]
    Secret,
    /// The MAC does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks an AudioHook upgrade: `X-API-KEY` equals `api_key` and `Signature` is the HMAC of
/// the RFC 9421 signature base over the components `Signature-Input` lists. `header` looks a
/// header up by lower-case name; `request_target` is path and query; `now_s` is Unix seconds.
pub fn verify_signature<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    request_target: &str,
    api_key: &str,
    client_secret_b64: &str,
    now_s: u64,
) -> Result<(), SignatureError> {
    let got_key = header("x-api-key").ok_or(SignatureError::Missing("X-API-KEY"))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        got_key.trim().as_bytes(),
        api_key.as_bytes(),
    )) || api_key.is_empty()
    {
        return Err(SignatureError::ApiKey);
    }
    let input = header("signature-input").ok_or(SignatureError::Missing("Signature-Input"))?;
    let sig = header("signature").ok_or(SignatureError::Missing("Signature"))?;
    let (label, params, mut base) = signature_base(&header, request_target, input)?;
    let rest = params.split_once(')').map_or("", |(_, rest)| rest);
    let mut keyid_ok = false;
    let mut alg_ok = false;
    let (mut created, mut expires) = (None, None);
    for p in rest.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = p
            .split_once('=')
            .ok_or(SignatureError::Input("bad parameter"))?;
        let v = v.trim_matches('"');
        match k {
            "keyid" => keyid_ok = v == api_key,
            "alg" => alg_ok = v == "hmac-sha256",
            "created" => created = v.parse::<u64>().ok(),
            "expires" => expires = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    if !keyid_ok || !alg_ok {
        return Err(SignatureError::Params);
    }
    let created = created.ok_or(SignatureError::Input("no created"))?;
    // A second of clock skew forward; never older than the reference's 10 s.
    if created > now_s.saturating_add(1)
        || now_s.saturating_sub(created) > MAX_SIGNATURE_AGE_S
        || expires.is_some_and(|e| now_s > e)
    {
        return Err(SignatureError::Expired);
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(client_secret_b64.trim())
        .map_err(|_| SignatureError::Secret)?;
    let want = sig
        .trim()
        .strip_prefix(label)
        .and_then(|s| s.strip_prefix("=:"))
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or(SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::Secret)?;
    mac.update(base.as_bytes());
    mac.verify_slice(&want)
        .map_err(|_| SignatureError::Mismatch)
}

/// The RFC 9421 signature base of the components `input` (a `Signature-Input` value) lists,
/// without its final `@signature-params` line: (label, parameters, base).
fn signature_base<'a, 'h>(
    header: &impl Fn(&str) -> Option<&'h str>,
    request_target: &str,
    input: &'a str,
) -> Result<(&'a str, &'a str, String), SignatureError> {
    let (label, params) = input
        .trim()
        .split_once('=')
        .ok_or(SignatureError::Input("no label"))?;
    let (components, _) = params
        .strip_prefix('(')
        .and_then(|p| p.split_once(')'))
        .ok_or(SignatureError::Input("no component list"))?;
    let mut base = String::new();
    for c in components.split_whitespace() {
        let name = c
            .strip_prefix('"')
            .and_then(|c| c.strip_suffix('"'))
            .ok_or(SignatureError::Input("unquoted component"))?;
        let value = match name {
            "@request-target" => request_target.to_owned(),
            "@authority" => header("host")
                .ok_or(SignatureError::Missing("Host"))?
                .trim()
                .to_ascii_lowercase(),
            n if n.starts_with('@') => return Err(SignatureError::Component(n.to_owned())),
            n => header(n)
                .ok_or(SignatureError::Component(n.to_owned()))?
                .trim()
                .to_owned(),
        };
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    Ok((label, params, base))
}

/// Signs an AudioHook upgrade as Genesys does (for tests and load generators): the headers
/// `Signature-Input` and `Signature` over `@request-target`, `@authority` and the given
/// `audiohook-*` and `x-api-key` headers (`headers`: lower-case name, value; must include
/// `host` and `x-api-key`), created at `created_s`, valid 10 s.
pub fn sign(
    headers: &[(&str, &str)],
    request_target: &str,
    api_key: &str,
    client_secret_b64: &str,
    created_s: u64,
) -> Result<(String, String), SignatureError> {
    let covered: Vec<String> = ["@request-target", "@authority"]
        .into_iter()
        .map(str::to_owned)
        .chain(
            headers
                .iter()
                .filter(|(n, _)| n.starts_with("audiohook-") || *n == "x-api-key")
                .map(|(n, _)| (*n).to_owned()),
        )
        .map(|n| format!("\"{n}\""))
        .collect();
    let input = format!(
        "sig1=({});keyid=\"{api_key}\";nonce=\"{created_s}\";alg=\"hmac-sha256\";created={created_s};expires={}",
        covered.join(" "),
        created_s + MAX_SIGNATURE_AGE_S
    );
    let lookup = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let (_, params, mut base) = signature_base(&lookup, request_target, &input)?;
    base.push_str(&format!("\"@signature-params\": {params}"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(client_secret_b64.trim())
        .map_err(|_| SignatureError::Secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::Secret)?;
    mac.update(base.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok((input, format!("sig1=:{sig}:")))
}

/// A control message the session cannot accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Not JSON, or not the v2 envelope.
    #[error("bad AudioHook message: {0}")]
    Message(String),
    /// Larger than [`MAX_TEXT_BYTES`] / [`MAX_FRAME_BYTES`].
    #[error("AudioHook frame of {0} bytes is too large")]
    TooLarge(usize),
    /// `open` offered no PCMU 8 kHz audio with an `external` channel.
    #[error("no supported media offered (need PCMU 8000 Hz with an external channel)")]
    NoMedia,
    /// Audio or a control message before `open`.
    #[error("AudioHook {0} before open")]
    NotOpen(&'static str),
    /// A stereo frame with an odd byte count cannot be de-interleaved.
    #[error("stereo frame of {0} bytes is not whole sample pairs")]
    OddStereo(usize),
}

#[derive(Debug, Deserialize)]
struct Envelope {
    version: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    id: String,
    #[serde(default)]
    parameters: Value,
}

/// What a control message meant for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The session opened: `conversation_id` names the call, `two_channels` whether the agent
    /// rides along.
    Opened {
        /// Genesys' conversation id (the call id), else the session id.
        conversation_id: String,
        /// Whether frames are stereo (customer, agent).
        two_channels: bool,
    },
    /// Audio paused (no frames until resumed).
    Paused,
    /// Audio resumed.
    Resumed,
    /// The client closes: the call ended.
    Closed,
    /// Nothing for the call (`ping`, `update`, `dtmf`, `error`, unknown types).
    None,
}

/// One AudioHook session's protocol state: sequence numbers and the chosen media.
#[derive(Debug, Default)]
pub struct Session {
    id: String,
    server_seq: u64,
    client_seq: u64,
    /// `Some(two_channels)` once open.
    open: Option<bool>,
    paused: bool,
}

impl Session {
    /// The session id Genesys gave in `open` (empty before).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Some(two_channels)` once open, `None` before `open` and after `close`.
    pub fn two_channels(&self) -> Option<bool> {
        self.open
    }

    /// Reads one text frame; returns what it meant and the reply to send, if any.
    pub fn on_text(&mut self, text: &str) -> Result<(Control, Option<String>), SessionError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(SessionError::TooLarge(text.len()));
        }
        let env: Envelope =
            serde_json::from_str(text).map_err(|e| SessionError::Message(e.to_string()))?;
        if env.version != "2" {
            return Err(SessionError::Message(format!(
                "version {:?}, expected \"2\"",
                env.version
            )));
        }
        self.client_seq = env.seq;
        match env.kind.as_str() {
            "open" => {
                let media = choose_media(&env.parameters).ok_or(SessionError::NoMedia)?;
                let two = media["channels"].as_array().is_some_and(|c| c.len() == 2);
                self.id = env.id;
                self.open = Some(two);
                let conversation_id = env.parameters["conversationId"]
                    .as_str()
                    .unwrap_or(&self.id)
                    .to_owned();
                let reply = self.reply("opened", json!({"startPaused": false, "media": [media]}));
                Ok((
                    Control::Opened {
                        conversation_id,
                        two_channels: two,
                    },
                    Some(reply),
                ))
            }
            _ if self.open.is_none() => Err(SessionError::NotOpen("control message")),
            "ping" => Ok((Control::None, Some(self.reply("pong", json!({}))))),
            "pause" | "paused" => {
                self.paused = true;
                Ok((Control::Paused, None))
            }
            "resume" | "resumed" => {
                self.paused = false;
                Ok((Control::Resumed, Some(self.reply("resumed", json!({})))))
            }
            "close" => {
                self.open = None;
                Ok((Control::Closed, Some(self.reply("closed", json!({})))))
            }
            _ => Ok((Control::None, None)),
        }
    }

    /// Splits one binary frame into the caller's and (stereo) the agent's PCMU bytes.
    pub fn on_binary(&self, frame: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), SessionError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(SessionError::TooLarge(frame.len()));
        }
        match self.open {
            None => Err(SessionError::NotOpen("audio")),
            Some(false) => Ok((frame.to_vec(), None)),
            Some(true) => {
                if !frame.len().is_multiple_of(2) {
                    return Err(SessionError::OddStereo(frame.len()));
                }
                let caller = frame.iter().step_by(2).copied().collect();
                let agent = frame.iter().skip(1).step_by(2).copied().collect();
                Ok((caller, Some(agent)))
            }
        }
    }

    /// The `disconnect` that ends the session and hands the call back to the Architect flow
    /// with the handoff (`outputVariables` are what the flow reads to route to a queue).
    pub fn handoff(&mut self, handoff_id: &str, summary: &str) -> String {
        self.reply(
            "disconnect",
            json!({"reason": "completed", "outputVariables": {
                "action": "transfer", "handoff_id": handoff_id, "summary": summary}}),
        )
    }

    fn reply(&mut self, kind: &str, parameters: Value) -> String {
        self.server_seq += 1;
        json!({"version": "2", "type": kind, "seq": self.server_seq,
               "clientseq": self.client_seq, "id": self.id, "parameters": parameters})
        .to_string()
    }
}

/// The best offered media: stereo customer + agent, else the customer alone.
fn choose_media(parameters: &Value) -> Option<Value> {
    let offered = parameters["media"].as_array()?;
    let ok = |m: &&Value| {
        m["type"] == "audio"
            && m["format"] == "PCMU"
            && m["rate"] == 8000
            && m["channels"]
                .as_array()
                .is_some_and(|c| c.first().is_some_and(|c| c == "external"))
    };
    let pick = offered
        .iter()
        .filter(ok)
        .find(|m| m["channels"] == json!(["external", "internal"]))
        .or_else(|| {
            offered
                .iter()
                .filter(ok)
                .find(|m| m["channels"] == json!(["external"]))
        })?;
    Some(pick.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Genesys' documented signature example (../shared/reference/protocols.md §13).
    const KEY: &str = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";
    const SECRET: &str = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=";
    const INPUT: &str = r#"sig1=("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" "audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430"#;
    const SIG: &str = "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:";
    const CREATED: u64 = 1_641_013_200;

    fn headers(sig: &'static str, key: &'static str) -> impl Fn(&str) -> Option<&'static str> {
        move |name| match name {
            "host" => Some("audiohook.example.com"),
            "audiohook-organization-id" => Some("d7934305-0972-4844-938e-9060eef73d05"),
            "audiohook-session-id" => Some("30b0e395-84d3-4570-ac13-9a62d8f514c0"),
            "audiohook-correlation-id" => Some("e160e428-53e2-487c-977d-96989bf5c99d"),
            "x-api-key" => Some(key),
            "signature-input" => Some(INPUT),
            "signature" => Some(sig),
            _ => None,
        }
    }

    const TARGET: &str = "/api/v1/voicebiometrics/ws";

    #[test]
    fn the_documented_signature_verifies_and_tampering_does_not() {
        let ok = verify_signature(headers(SIG, KEY), TARGET, KEY, SECRET, CREATED + 3);
        assert_eq!(ok, Ok(()));
        let other_path = verify_signature(headers(SIG, KEY), "/x", KEY, SECRET, CREATED);
        assert_eq!(other_path, Err(SignatureError::Mismatch));
        let bad = "sig1=:AAAAyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:";
        assert_eq!(
            verify_signature(headers(bad, KEY), TARGET, KEY, SECRET, CREATED),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(headers(SIG, "wrong"), TARGET, KEY, SECRET, CREATED),
            Err(SignatureError::ApiKey)
        );
        assert_eq!(
            verify_signature(headers(SIG, KEY), TARGET, KEY, SECRET, CREATED + 11),
            Err(SignatureError::Expired),
            "a replay older than 10 s"
        );
        assert_eq!(
            verify_signature(headers(SIG, KEY), TARGET, KEY, "not base64!", CREATED),
            Err(SignatureError::Secret)
        );
        assert_eq!(
            verify_signature(|_| None, TARGET, KEY, SECRET, CREATED),
            Err(SignatureError::Missing("X-API-KEY"))
        );
    }

    #[test]
    fn a_signed_upgrade_verifies_and_the_documented_example_signs_the_same() {
        let h = [
            ("host", "audiohook.example.com"),
            (
                "audiohook-organization-id",
                "d7934305-0972-4844-938e-9060eef73d05",
            ),
            (
                "audiohook-session-id",
                "30b0e395-84d3-4570-ac13-9a62d8f514c0",
            ),
            (
                "audiohook-correlation-id",
                "e160e428-53e2-487c-977d-96989bf5c99d",
            ),
            ("x-api-key", KEY),
        ];
        let (input, sig) = sign(&h, TARGET, KEY, SECRET, 1_700_000_000).unwrap();
        let lookup = |n: &str| match n {
            "signature-input" => Some(input.as_str()),
            "signature" => Some(sig.as_str()),
            n => h.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        };
        assert_eq!(
            verify_signature(lookup, TARGET, KEY, SECRET, 1_700_000_002),
            Ok(())
        );
        assert_eq!(
            verify_signature(lookup, "/elsewhere", KEY, SECRET, 1_700_000_002),
            Err(SignatureError::Mismatch)
        );
    }

    const OPEN: &str = r#"{"version":"2","type":"open","seq":1,"serverseq":0,"id":"e160e428-53e2-487c-977d-96989bf5c99d","position":"PT0S","parameters":{"organizationId":"d7934305-0972-4844-938e-9060eef73d05","conversationId":"090eaa2f-72fa-480a-83e0-8667ff89c0ec","participant":{"id":"883efee8-3d6c-4537-b500-6d7ca4b92fa0","ani":"+1-555-555-1234","aniName":"John Doe","dnis":"+1-800-555-6789"},"media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000},{"type":"audio","format":"PCMU","channels":["external"],"rate":8000}],"language":"en-US"}}"#;

    #[test]
    fn open_picks_stereo_and_the_session_answers_in_sequence() {
        let mut s = Session::default();
        assert_eq!(s.on_binary(&[0xff; 4]), Err(SessionError::NotOpen("audio")));
        let (c, reply) = s.on_text(OPEN).unwrap();
        assert_eq!(
            c,
            Control::Opened {
                conversation_id: "090eaa2f-72fa-480a-83e0-8667ff89c0ec".into(),
                two_channels: true
            }
        );
        let r: Value = serde_json::from_str(&reply.unwrap()).unwrap();
        assert_eq!(r["type"], "opened");
        assert_eq!(
            (r["seq"].as_u64(), r["clientseq"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(r["id"], "e160e428-53e2-487c-977d-96989bf5c99d");
        assert_eq!(
            r["parameters"]["media"][0]["channels"],
            json!(["external", "internal"])
        );

        // Interleaved: customer (caller) first, agent second.
        let (caller, agent) = s.on_binary(&[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!((caller, agent), (vec![1, 3, 5], Some(vec![2, 4, 6])));
        assert_eq!(s.on_binary(&[1, 2, 3]), Err(SessionError::OddStereo(3)));
        assert_eq!(
            s.on_binary(&vec![0; MAX_FRAME_BYTES + 2]),
            Err(SessionError::TooLarge(MAX_FRAME_BYTES + 2))
        );

        let ping = r#"{"version":"2","type":"ping","seq":2,"serverseq":1,"id":"e160e428-53e2-487c-977d-96989bf5c99d","position":"PT1.5S","parameters":{}}"#;
        let (c, reply) = s.on_text(ping).unwrap();
        assert_eq!(c, Control::None);
        let r: Value = serde_json::from_str(&reply.unwrap()).unwrap();
        assert_eq!(
            (
                r["type"].as_str(),
                r["seq"].as_u64(),
                r["clientseq"].as_u64()
            ),
            (Some("pong"), Some(2), Some(2))
        );

        let pause = r#"{"version":"2","type":"paused","seq":3,"id":"x","parameters":{}}"#;
        assert_eq!(s.on_text(pause).unwrap().0, Control::Paused);
        let close =
            r#"{"version":"2","type":"close","seq":4,"id":"x","parameters":{"reason":"end"}}"#;
        let (c, reply) = s.on_text(close).unwrap();
        assert_eq!(c, Control::Closed);
        assert!(reply.unwrap().contains(r#""type":"closed""#));
    }

    #[test]
    fn mono_offers_and_bad_messages_are_clear_errors() {
        let mut s = Session::default();
        let mono = OPEN.replace(
            r#"{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000},"#,
            "",
        );
        assert!(matches!(
            s.on_text(&mono).unwrap().0,
            Control::Opened {
                two_channels: false,
                ..
            }
        ));
        assert_eq!(s.on_binary(&[7, 8, 9]).unwrap(), (vec![7, 8, 9], None));
        let d: Value = serde_json::from_str(&s.handoff("h1", "double charge")).unwrap();
        assert_eq!(d["type"], "disconnect");
        assert_eq!(d["parameters"]["outputVariables"]["handoff_id"], "h1");

        let mut s = Session::default();
        let l16 = OPEN.replace("PCMU", "L16");
        assert_eq!(s.on_text(&l16), Err(SessionError::NoMedia));
        assert!(matches!(s.on_text("{"), Err(SessionError::Message(_))));
        let v1 = OPEN.replace(r#""version":"2""#, r#""version":"1""#);
        assert!(matches!(s.on_text(&v1), Err(SessionError::Message(_))));
        let ping = r#"{"version":"2","type":"ping","seq":1,"id":"x","parameters":{}}"#;
        assert_eq!(
            s.on_text(ping),
            Err(SessionError::NotOpen("control message"))
        );
    }
}
