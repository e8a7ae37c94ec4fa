//! HTTP routes: health, metrics, the media upgrade (auth and admission before any per-call
//! work), transcript posts and the active-call list; the API's access rule
//! ([`api_guard`]), the JSON-only rule for posts ([`require_json`]) and the security headers
//! every response carries.

use super::{
    AppState, auth, call, conn, dashboard, events, metrics, playbook, providers_http,
    providers_plivo,
};
use crate::detect::TranscriptLine;
use crate::protocol::{AuthRule, Provider};
use axum::Json;
use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

pub(super) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/media/{provider}", get(media))
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{call_id}/transcript", post(transcript))
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::app_js))
        .route("/dashboard/style.css", get(dashboard::style_css))
        .route("/v1/events", get(events::events))
        .route("/v1/handoffs", get(dashboard::handoffs))
        .route("/v1/handoffs/{handoff_id}", get(playbook::get_handoff))
        .route(
            "/v1/handoffs/{handoff_id}/feedback",
            post(playbook::post_feedback),
        )
        .route("/v1/reviews", get(playbook::get_reviews))
        .route("/v1/reviews/precision", get(playbook::get_precision))
        .route("/v1/reviews/{call_id}", post(playbook::post_review))
        .route(
            "/v1/providers/twilio/status",
            post(providers_http::twilio_status),
        )
        .route(
            "/v1/providers/twilio/transcription",
            post(providers_http::twilio_transcription_route),
        )
        .route(
            "/v1/providers/telnyx/webhook",
            post(providers_http::telnyx_webhook),
        )
        .route(
            "/v1/providers/plivo/xml",
            get(providers_plivo::plivo_xml).post(providers_plivo::plivo_xml),
        )
        .route(
            "/v1/providers/plivo/status",
            post(providers_plivo::plivo_status),
        )
        .route(
            "/v1/providers/vonage/event",
            post(providers_http::vonage_event),
        );
    if state.config().server.metrics_listen.is_none() {
        r = r.route("/metrics", get(metrics_text));
    }
    r.layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The dashboard's only sources are its own files; nothing may frame it (clickjacking), no
/// response is sniffed into another type, and the `?token=` in its URL is never sent on as a
/// referrer. Cheap enough to send on every response.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ] {
        h.entry(name).or_insert(value);
    }
    res
}

pub(super) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn healthz(State(st): State<AppState>) -> Response {
    let bridge = st.bridge_health();
    if st.shutdown_token().is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if bridge.is_degraded() {
        // Handoffs decided now may not survive a crash: take this gateway out of rotation.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "outbox": bridge})),
        )
            .into_response()
    } else if let Some(c) = st.cluster() {
        cluster_health(c)
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics().encode(),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

enum AuthOutcome {
    Ok,
    Missing(&'static str),
    Invalid(&'static str),
}

fn authenticate(
    st: &AppState,
    provider: Provider,
    headers: &HeaderMap,
    path_and_query: &str,
) -> AuthOutcome {
    let a = &st.config().auth;
    if !a.required {
        return AuthOutcome::Ok;
    }
    let rule = provider.spec().auth;
    if rule == AuthRule::TwilioSignature
        && let Some(tw) = &a.twilio
    {
        let Some(sig) = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
        else {
            return AuthOutcome::Missing("missing X-Twilio-Signature");
        };
        let urls = auth::twilio_candidate_urls(
            st.config().server.public_url.as_deref(),
            headers,
            path_and_query,
        );
        return if auth::verify_twilio(&tw.auth_token, sig, &urls) {
            AuthOutcome::Ok
        } else {
            AuthOutcome::Invalid("X-Twilio-Signature does not match")
        };
    }
    if rule == AuthRule::AudioHook
        && let Some(ah) = &a.audiohook
    {
        return audiohook_auth(ah, headers, path_and_query);
    }
    match &a.token {
        Some(t) => {
            let extra: &[&str] = match rule {
                AuthRule::Token { headers } => headers,
                AuthRule::TwilioSignature => &[],
                AuthRule::AudioHook => &["x-api-key"],
            };
            let has_creds = headers.contains_key(header::AUTHORIZATION)
                || extra.iter().any(|h| headers.contains_key(*h));
            let api_key_is_token = rule == AuthRule::AudioHook
                && headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|k| auth::token_eq(&t.value, k.trim()));
            if auth::token_matches(&t.value, headers) || api_key_is_token {
                AuthOutcome::Ok
            } else if has_creds {
                AuthOutcome::Invalid("credentials do not match [auth.token]")
            } else {
                AuthOutcome::Missing("missing Authorization")
            }
        }
        None => AuthOutcome::Missing("no credentials are configured for this provider"),
    }
}

/// A Genesys AudioHook upgrade under `[auth.audiohook]`: the API key, and the signature when a
/// client secret is configured.
fn audiohook_auth(
    ah: &crate::config::AudioHookAuth,
    headers: &HeaderMap,
    path_and_query: &str,
) -> AuthOutcome {
    use crate::protocol::audiohook::{SignatureError, verify_signature};
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(key) = get("x-api-key") else {
        return AuthOutcome::Missing("missing X-API-KEY");
    };
    let Some(secret) = &ah.client_secret else {
        return if auth::token_eq(&ah.api_key, key.trim()) {
            AuthOutcome::Ok
        } else {
            AuthOutcome::Invalid("X-API-KEY does not match [auth.audiohook] api_key")
        };
    };
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match verify_signature(get, path_and_query, &ah.api_key, secret, now_s) {
        Ok(()) => AuthOutcome::Ok,
        Err(SignatureError::Missing(_)) => AuthOutcome::Missing("missing AudioHook signature"),
        Err(SignatureError::ApiKey) => {
            AuthOutcome::Invalid("X-API-KEY does not match [auth.audiohook] api_key")
        }
        Err(SignatureError::Expired) => AuthOutcome::Invalid("AudioHook signature expired"),
        Err(_) => AuthOutcome::Invalid("AudioHook signature does not verify"),
    }
}

async fn media(
    State(st): State<AppState>,
    Path(provider): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    slot: Option<axum::Extension<conn::ConnectionSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let provider: Provider = match provider.parse() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::NOT_FOUND, "unknown_provider", e.to_string()),
    };
    if st.shutdown_token().is_cancelled() || st.cluster().is_some_and(|c| c.is_draining()) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the gateway is shutting down",
        );
    }
    let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let (status, reason, message) = match authenticate(&st, provider, &headers, pq) {
        AuthOutcome::Ok => (None, "", ""),
        AuthOutcome::Missing(m) => (Some(StatusCode::UNAUTHORIZED), "missing", m),
        AuthOutcome::Invalid(m) => (Some(StatusCode::FORBIDDEN), "invalid", m),
    };
    if let Some(status) = status {
        st.metrics()
            .auth_rejections
            .get_or_create(&metrics::AuthLabels {
                provider,
                reason: reason.to_owned(),
            })
            .inc();
        tracing::warn!(%provider, status = status.as_u16(), "refused media upgrade: {message}");
        return error(status, "unauthorized", message);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rej) => return rej.into_response(),
    };
    let Ok(permit) = st.inner.admission.clone().try_acquire_owned() else {
        st.metrics().admission_rejections.inc();
        tracing::warn!(%provider, max_calls = st.config().server.max_calls, "refused media upgrade: at capacity");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "at_capacity",
            format!(
                "max_calls ({}) calls are open",
                st.config().server.max_calls
            ),
        );
    };
    let max = st.config().server.max_message_bytes;
    let tracker = st.inner.tracker.clone();
    ws.protocols(provider.spec().subprotocols.iter().copied())
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(call::READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                call::run(socket, st, provider, permit).await;
                // The upgraded socket still counts against max_connections until here.
                drop(slot);
            })
        })
}

/// The API's access rule for the dashboard and `/v1/*`: `None` when the request may go on,
/// else the 401 to answer. With `[auth] required` (the default) the API is never open: it
/// needs `[auth.token]`, and without one it is closed to everyone. `query_token` is the
/// dashboard's `?token=` (a browser's `EventSource` cannot set headers).
pub(super) fn api_guard(
    st: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Option<Response> {
    let cfg = st.config();
    if !cfg.api_protected() {
        return None;
    }
    let Some(t) = &cfg.auth.token else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API is closed: the gateway has no [auth.token] value configured",
        ));
    };
    let ok = auth::token_matches(&t.value, headers)
        || query_token.is_some_and(|q| auth::token_eq(&t.value, q));
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong token (Authorization: Bearer, or ?token= for the dashboard)",
        )
    })
}

/// JSON posts must say so: a web page can send `text/plain` or a form cross-origin without
/// asking (CSRF), but not `application/json`. `None` when the body is declared JSON.
pub(super) fn require_json(headers: &HeaderMap) -> Option<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        None
    } else {
        Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be application/json, not {ct:?}"),
        ))
    }
}

async fn transcript(
    State(st): State<AppState>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(denied) = api_guard(&st, &headers, None).or_else(|| require_json(&headers)) {
        return denied;
    }
    let line: TranscriptLine = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_transcript", e.to_string()),
    };
    if line.text.len() > 16 * 1024 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_transcript",
            "text longer than 16 KiB",
        );
    }
    if let Some(c) = line.confidence
        && !(0.0..=1.0).contains(&c)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_transcript",
            "confidence must be within 0..1",
        );
    }
    accept_transcript(&st, &call_id, line).await
}

/// Queues a validated transcript line for `call_id` (the API's and the providers' callbacks);
/// in a fleet, a call held by another instance gets it forwarded there.
pub(super) async fn accept_transcript(
    st: &AppState,
    call_id: &str,
    line: TranscriptLine,
) -> Response {
    let Some((tx, media_ms)) = st.transcript_sender(call_id) else {
        if let Some(c) = st.cluster() {
            return forward_transcript(st, c, call_id, &line).await;
        }
        return error(
            StatusCode::NOT_FOUND,
            "unknown_call",
            format!("no active call {call_id:?}"),
        );
    };
    // A line waits in the call until its media clock reaches `t_ms`: far-future lines would
    // only pile up there.
    let max_lead_ms = st.config().server.max_transcript_lead_ms;
    if let Some(t_ms) = line.t_ms
        && t_ms > media_ms.saturating_add(max_lead_ms)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "transcript_too_far_ahead",
            format!(
                "t_ms {t_ms} is more than server.max_transcript_lead_ms = {max_lead_ms} ahead of \
                 the call's media clock ({media_ms} ms)"
            ),
        );
    }
    match tx.try_send(line) {
        Ok(()) => {
            st.metrics().transcript_lines.inc();
            (StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response()
        }
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "transcript_queue_full",
            "the call is not keeping up; retry",
        ),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => error(
            StatusCode::NOT_FOUND,
            "unknown_call",
            format!("call {call_id:?} has ended"),
        ),
    }
}

async fn list_calls(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = api_guard(&st, &headers, None) {
        return denied;
    }
    let calls: Vec<serde_json::Value> = st
        .calls()
        .into_iter()
        .map(|(id, v)| {
            let scores: serde_json::Map<String, serde_json::Value> = v
                .scores
                .iter()
                .map(|(k, x)| (k.name().to_owned(), json!(x)))
                .collect();
            json!({
                "call_id": id,
                "provider": v.provider,
                "started_at": humantime::format_rfc3339_millis(v.started_at).to_string(),
                "t_ms": v.t_ms,
                "scores": scores,
                "handoff": v.handoff,
            })
        })
        .collect();
    Json(with_fleet(&st, calls)).into_response()
}

/// `/healthz` of a fleet member: 503 while draining; 200 with `degraded` while NATS is away
/// (its calls are still analysed; ownership and handoffs catch up on reconnect).
fn cluster_health(c: &crate::cluster::Cluster) -> Response {
    if c.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else if c.is_connected() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::OK, "degraded: NATS disconnected\n").into_response()
    }
}

/// The 404 branch of a transcript post in a fleet: the call may be held elsewhere.
async fn forward_transcript(
    st: &AppState,
    c: &crate::cluster::Cluster,
    call_id: &str,
    line: &TranscriptLine,
) -> Response {
    use crate::cluster::Forward;
    match c.forward_transcript(call_id, line).await {
        Forward::Sent(instance) => {
            st.metrics().transcript_lines.inc();
            (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": true, "instance": instance})),
            )
                .into_response()
        }
        Forward::NoOwner => error(
            StatusCode::NOT_FOUND,
            "unknown_call",
            format!("no instance holds call {call_id:?}"),
        ),
        Forward::Unavailable(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "fleet_unavailable",
            format!("cannot reach the fleet to find call {call_id:?}: {e}"),
        ),
    }
}

/// Marks local calls with this instance and appends the other instances' calls, with the
/// scores and handoff their holders last published.
fn with_fleet(st: &AppState, mut calls: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let Some(c) = st.cluster() else { return calls };
    for v in &mut calls {
        v["instance"] = json!(c.instance());
    }
    for r in c.remote_calls() {
        let (t_ms, scores, handoff) = match r.summary {
            Some(s) => (json!(s.t_ms), json!(s.scores), json!(s.handoff)),
            None => (serde_json::Value::Null, json!({}), serde_json::Value::Null),
        };
        calls.push(json!({
            "call_id": r.call_id,
            "provider": r.owner.provider,
            "started_at": r.owner.started_at,
            "t_ms": t_ms,
            "scores": scores,
            "handoff": handoff,
            "instance": r.owner.instance,
        }));
    }
    calls
}
