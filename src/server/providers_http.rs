//! Provider callback routes: the status callbacks of warm-transfer legs and the providers' own
//! real-time transcription callbacks (mapped onto the same transcript lines as
//! `POST /v1/calls/{id}/transcript`). Authenticated by the provider's signature, not the API
//! token: Twilio signs the exact URL it was given plus the sorted form parameters.

// Handlers return their refusal as a ready `Response` on the error side; it is built once per
// rejected callback, so its size does not matter.
#![allow(clippy::result_large_err)]

use super::AppState;
use crate::bridge::warm::{Input, LegStatus};
use crate::bridge::warm_run::ReportError;
use crate::bridge::warm_telnyx::{self, Webhook};
use crate::bridge::warm_vonage;
use crate::detect::TranscriptLine;
use crate::event::Track;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

/// Largest callback body read; Twilio's are a few hundred bytes.
pub(super) const MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// 413 for a callback body over [`MAX_CALLBACK_BYTES`]: checked before anything is parsed.
pub(super) fn check_callback_size(body: &[u8]) -> Result<(), Response> {
    if body.len() > MAX_CALLBACK_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "callback body over 64 KiB",
        ));
    }
    Ok(())
}

/// The secret a route verifies its callbacks with, or 404 naming the key that turns it on.
fn configured(secret: Option<String>, missing: &'static str) -> Result<String, Response> {
    secret.ok_or_else(|| error(StatusCode::NOT_FOUND, "not_configured", missing))
}

/// The verified body as JSON, or 400 with `code`.
fn json_body(body: &[u8], code: &'static str) -> Result<serde_json::Value, Response> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, code, e.to_string()))
}

/// Seconds since the epoch, for the signatures' freshness windows.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A callback handed to the warm task: 204 (also when warm transfers are off); 503 when its
/// queue is full, which the providers retry later.
fn queued_response(queued: Result<(), ReportError>) -> Response {
    match queued {
        Ok(()) | Err(ReportError::Disabled) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

/// `application/x-www-form-urlencoded` pairs (also a URL query).
pub(super) fn form_pairs(text: &str) -> Vec<(String, String)> {
    let mut u = match reqwest::Url::parse("http://x/") {
        Ok(u) => u,
        Err(_) => return Vec::new(),
    };
    u.set_query(Some(text));
    u.query_pairs().into_owned().collect()
}

/// Checks `X-Twilio-Signature` of a form POST to `path_and_query` against the configured
/// callback origin (the URL warmline itself gave Twilio). Constant time.
pub(super) fn twilio_signed(
    st: &AppState,
    headers: &HeaderMap,
    path_and_query: &str,
    params: &[(String, String)],
) -> Result<(), Response> {
    let cfg = st.config();
    // The REST token of the account that placed the legs, else the one that signs streams.
    let token = cfg
        .bridge
        .twilio
        .as_ref()
        .map(|t| t.auth_token.clone())
        .or_else(|| cfg.auth.twilio.as_ref().map(|t| t.auth_token.clone()));
    let Some(token) = token else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "neither [bridge.twilio] nor [auth.twilio] is configured",
        ));
    };
    let Some(sig) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing X-Twilio-Signature",
        ));
    };
    let base = cfg
        .bridge
        .twilio
        .as_ref()
        .and_then(|t| t.callback_base.clone())
        .or_else(|| {
            cfg.server
                .public_url
                .as_deref()
                .map(crate::bridge::config::http_origin)
        })
        .unwrap_or_default();
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let expected = super::auth::twilio_signature(&token, &url, params);
    if token.is_empty() || !bool::from(expected.as_bytes().ct_eq(sig.trim().as_bytes())) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "unauthorized",
            "X-Twilio-Signature does not match",
        ));
    }
    Ok(())
}

/// The form parameters of a Twilio callback whose body size and signature are good.
fn twilio_form(
    st: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Response> {
    check_callback_size(body)?;
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "body is not UTF-8",
        ));
    };
    let params = form_pairs(text);
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    twilio_signed(st, headers, pq, &params)?;
    Ok(params)
}

/// `POST /v1/providers/twilio/status?handoff_id=…&leg=agent|caller[&attempt=N]`.
pub(super) async fn twilio_status(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match twilio_form(&st, &uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let query = form_pairs(uri.query().unwrap_or(""));
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let p = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(handoff_id) = q("handoff_id") else {
        return error(StatusCode::BAD_REQUEST, "bad_callback", "no handoff_id");
    };
    let input = match q("leg") {
        Some("agent") => {
            let Some(attempt) = q("attempt").and_then(|a| a.parse::<u32>().ok()) else {
                return error(StatusCode::BAD_REQUEST, "bad_callback", "no attempt");
            };
            let status = LegStatus::from_twilio(p("CallStatus").unwrap_or(""));
            Input::LegStatus { attempt, status }
        }
        Some("caller") => {
            // Conference callbacks name the event; a caller leaving before the agent joined
            // hung up on hold (being routed elsewhere afterwards is ignored by the machine).
            let left = p("StatusCallbackEvent") == Some("participant-leave")
                || p("CallStatus") == Some("completed");
            if !left {
                return StatusCode::NO_CONTENT.into_response();
            }
            Input::CallerLeft
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_callback",
                "leg is agent or caller",
            );
        }
    };
    match st.warm().report(handoff_id, input) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // Twilio retries a failed callback (when so configured); a 503 says "later".
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
    }
}

/// Reads one Twilio real-time transcription callback (`<Start><Transcription
/// statusCallbackUrl=…>`): `transcription-content` events carry `TranscriptionData` (JSON with
/// `transcript` and `confidence`), `Track` (`inbound_track` is the caller) and `Final`. Other
/// events (`transcription-started`, `-stopped`, `-error`) give `Ok(None)`.
pub fn twilio_transcription(
    params: &[(String, String)],
) -> Result<Option<(String, TranscriptLine)>, String> {
    let p = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if p("TranscriptionEvent") != Some("transcription-content") {
        return Ok(None);
    }
    let call_sid = p("CallSid").ok_or("no CallSid")?;
    let data: serde_json::Value =
        serde_json::from_str(p("TranscriptionData").ok_or("no TranscriptionData")?)
            .map_err(|e| format!("TranscriptionData is not JSON: {e}"))?;
    let text = data["transcript"]
        .as_str()
        .ok_or("TranscriptionData has no transcript")?;
    if text.len() > 16 * 1024 {
        return Err("transcript longer than 16 KiB".into());
    }
    let speaker = match p("Track") {
        Some("inbound_track") => Track::Caller,
        Some("outbound_track") => Track::Agent,
        other => return Err(format!("unknown Track {other:?}")),
    };
    let confidence = data["confidence"]
        .as_f64()
        .map(|c| c as f32)
        .filter(|c| (0.0..=1.0).contains(c));
    Ok(Some((
        call_sid.to_owned(),
        TranscriptLine {
            // Twilio stamps wall time only; the call's own media clock stamps the line on arrival.
            t_ms: None,
            speaker,
            text: text.to_owned(),
            is_final: p("Final").is_none_or(|f| f.eq_ignore_ascii_case("true")),
            confidence,
        },
    )))
}

/// `POST /v1/providers/twilio/transcription`.
pub(super) async fn twilio_transcription_route(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match twilio_form(&st, &uri, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (call_sid, line) = match twilio_transcription(&params) {
        Ok(Some(x)) => x,
        Ok(None) => return StatusCode::NO_CONTENT.into_response(),
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_transcription", e),
    };
    super::routes::accept_transcript(&st, &call_sid, line).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, x)| ((*k).to_owned(), (*x).to_owned()))
            .collect()
    }

    #[test]
    fn twilio_transcription_content_maps_track_final_and_confidence() {
        // Shape of Twilio's documented real-time transcription callback.
        let p = params(&[
            ("AccountSid", "AC1"),
            ("CallSid", "CA42"),
            ("TranscriptionSid", "GT1"),
            ("TranscriptionEvent", "transcription-content"),
            ("LanguageCode", "en-US"),
            ("Track", "inbound_track"),
            (
                "TranscriptionData",
                r#"{"transcript":"I want a person","confidence":0.91}"#,
            ),
            ("Final", "true"),
            ("SequenceId", "3"),
            ("Timestamp", "2025-01-01T00:00:00.000Z"),
        ]);
        let (call, line) = twilio_transcription(&p).unwrap().unwrap();
        assert_eq!(call, "CA42");
        assert_eq!(line.speaker, Track::Caller);
        assert_eq!(line.text, "I want a person");
        assert!(line.is_final);
        assert_eq!(line.confidence, Some(0.91));

        let mut p2 = p.clone();
        p2[5].1 = "outbound_track".into();
        p2[7].1 = "false".into();
        let (_, line) = twilio_transcription(&p2).unwrap().unwrap();
        assert_eq!(line.speaker, Track::Agent);
        assert!(!line.is_final);

        let started = params(&[
            ("TranscriptionEvent", "transcription-started"),
            ("CallSid", "CA42"),
        ]);
        assert!(twilio_transcription(&started).unwrap().is_none());
        let mut bad = p.clone();
        bad[6].1 = "not json".into();
        assert!(twilio_transcription(&bad).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn form_pairs_decode_plus_and_percent() {
        assert_eq!(
            form_pairs("a=b+c&d=%7B%22x%22%7D"),
            [
                ("a".to_owned(), "b c".to_owned()),
                ("d".to_owned(), "{\"x\"}".to_owned())
            ]
        );
    }
}

/// Oldest `telnyx-timestamp` accepted, against replays of a captured webhook.
const TELNYX_MAX_SKEW_S: u64 = 300;

/// Checks a Telnyx webhook: Ed25519 over `"{timestamp}|{body}"` with the account's public key,
/// the timestamp within [`TELNYX_MAX_SKEW_S`] of `now_s`.
pub fn telnyx_signed(
    public_key_b64: &str,
    signature_b64: &str,
    timestamp: &str,
    body: &[u8],
    now_s: u64,
) -> Result<(), &'static str> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "bad telnyx-timestamp")?;
    if now_s.abs_diff(ts) > TELNYX_MAX_SKEW_S {
        return Err("telnyx-timestamp too far from now");
    }
    let key = b64
        .decode(public_key_b64.trim())
        .map_err(|_| "bad public key")?;
    let sig = b64
        .decode(signature_b64.trim())
        .map_err(|_| "bad telnyx-signature-ed25519")?;
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.trim().as_bytes());
    signed.push(b'|');
    signed.extend_from_slice(body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&signed, &sig)
        .map_err(|_| "telnyx-signature-ed25519 does not match")
}

/// Reads a Telnyx `call.transcription` webhook into the call id and transcript line; other
/// event types give `Ok(None)`.
pub fn telnyx_transcription(
    body: &serde_json::Value,
) -> Result<Option<(String, TranscriptLine)>, String> {
    let data = &body["data"];
    if data["event_type"] != "call.transcription" {
        return Ok(None);
    }
    let p = &data["payload"];
    let call = p["call_control_id"].as_str().ok_or("no call_control_id")?;
    let t = &p["transcription_data"];
    let text = t["transcript"]
        .as_str()
        .ok_or("no transcription_data.transcript")?;
    if text.len() > 16 * 1024 {
        return Err("transcript longer than 16 KiB".into());
    }
    // `transcription_track` is `inbound` (the caller) unless the call transcribes both legs.
    let speaker = match t["transcription_track"].as_str().unwrap_or("inbound") {
        "inbound" => Track::Caller,
        "outbound" => Track::Agent,
        other => return Err(format!("unknown transcription_track {other:?}")),
    };
    Ok(Some((
        call.to_owned(),
        TranscriptLine {
            t_ms: None,
            speaker,
            text: text.to_owned(),
            is_final: t["is_final"].as_bool().unwrap_or(true),
            confidence: t["confidence"]
                .as_f64()
                .map(|c| c as f32)
                .filter(|c| (0.0..=1.0).contains(c)),
        },
    )))
}

/// `POST /v1/providers/telnyx/webhook`: Call Control webhooks; `call.transcription` feeds the
/// call's transcript, the legs of warm transfers go to the warm task, the rest is acknowledged.
pub(super) async fn telnyx_webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = st
        .config()
        .bridge
        .telnyx
        .as_ref()
        .and_then(|t| t.public_key.clone());
    let key = match check_callback_size(&body)
        .and_then(|()| configured(secret, "[bridge.telnyx] public_key is not configured"))
    {
        Ok(k) => k,
        Err(r) => return r,
    };
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let (Some(sig), Some(ts)) = (h("telnyx-signature-ed25519"), h("telnyx-timestamp")) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing telnyx-signature-ed25519 or telnyx-timestamp",
        );
    };
    if let Err(why) = telnyx_signed(&key, sig, ts, &body, now_s()) {
        return error(StatusCode::FORBIDDEN, "unauthorized", why);
    }
    let v = match json_body(&body, "bad_webhook") {
        Ok(v) => v,
        Err(r) => return r,
    };
    match telnyx_transcription(&v) {
        Ok(Some((call, line))) => return super::routes::accept_transcript(&st, &call, line).await,
        Ok(None) => {}
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_transcription", e),
    }
    let warm = st.warm();
    queued_response(match warm_telnyx::read_webhook(&v) {
        Some(Webhook::Inputs { handoff_id, inputs }) => inputs
            .into_iter()
            .try_for_each(|i| warm.report(&handoff_id, i)),
        Some(Webhook::Step(step)) => warm.telnyx_step(step),
        Some(Webhook::Hangup { call_id }) => warm.report_call(&call_id, Input::CallerLeft),
        None => Ok(()),
    })
}

/// `POST /v1/providers/vonage/event[?handoff_id=…&attempt=N]`: the agent legs' events (with
/// the query warmline gave them) and, when the application's event URL points here, the
/// callers' own (a held caller's `completed` is an abandonment). Checked by Vonage's signed JWT.
pub(super) async fn vonage_event(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = st
        .config()
        .bridge
        .vonage
        .as_ref()
        .and_then(|v| v.signature_secret.clone());
    let secret = match check_callback_size(&body)
        .and_then(|()| configured(secret, "[bridge.vonage] signature_secret is not configured"))
    {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing the signed JWT",
        );
    };
    if let Err(why) = warm_vonage::verify_jwt(&secret, auth, &body, now_s()) {
        return error(StatusCode::FORBIDDEN, "unauthorized", why);
    }
    let v = match json_body(&body, "bad_event") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let query = form_pairs(uri.query().unwrap_or(""));
    queued_response(match warm_vonage::read_event(&query, &v) {
        Some(warm_vonage::Event::Leg { handoff_id, input }) => st.warm().report(&handoff_id, input),
        Some(warm_vonage::Event::CallEnded { uuid }) => {
            st.warm().report_call(&uuid, Input::CallerLeft)
        }
        None => Ok(()),
    })
}

#[cfg(test)]
mod telnyx_tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn telnyx_signature_checks_key_body_and_age() {
        let kp = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        use ring::signature::KeyPair as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let pk = b64.encode(kp.public_key().as_ref());
        let body = br#"{"data":{"event_type":"call.transcription"}}"#;
        let sig = b64.encode(
            kp.sign(&[b"1700000000|".as_slice(), body].concat())
                .as_ref(),
        );
        assert_eq!(
            telnyx_signed(&pk, &sig, "1700000000", body, 1_700_000_100),
            Ok(())
        );
        assert!(telnyx_signed(&pk, &sig, "1700000000", b"{}", 1_700_000_100).is_err());
        assert!(telnyx_signed(&pk, &sig, "1700000001", body, 1_700_000_100).is_err());
        assert_eq!(
            telnyx_signed(&pk, &sig, "1700000000", body, 1_700_001_000),
            Err("telnyx-timestamp too far from now")
        );
        assert!(telnyx_signed("not base64!", &sig, "1700000000", body, 1_700_000_000).is_err());
    }

    #[test]
    fn telnyx_call_transcription_maps_to_a_line() {
        // Shape of Telnyx's documented `call.transcription` webhook.
        let v: serde_json::Value = serde_json::from_str(
            r#"{"data":{"event_type":"call.transcription","id":"e1","occurred_at":"2025-01-01T00:00:00Z",
            "payload":{"call_control_id":"v3:abc","call_leg_id":"l1","call_session_id":"s1",
            "client_state":null,"connection_id":"c1",
            "transcription_data":{"confidence":0.97,"is_final":true,"transcript":"get me a supervisor",
            "transcription_track":"inbound"}}},"meta":{"attempt":1}}"#,
        )
        .unwrap();
        let (call, line) = telnyx_transcription(&v).unwrap().unwrap();
        assert_eq!(call, "v3:abc");
        assert_eq!(line.speaker, Track::Caller);
        assert_eq!(line.text, "get me a supervisor");
        assert!(line.is_final);
        let other: serde_json::Value =
            serde_json::from_str(r#"{"data":{"event_type":"call.answered","payload":{}}}"#)
                .unwrap();
        assert!(telnyx_transcription(&other).unwrap().is_none());
    }
}
