//! The supervisor dashboard: the embedded single-page app at `GET /` and the Server-Sent
//! Events feed at `GET /v1/events` it listens to. Both follow the API's bearer-token rule,
//! also accepting `?token=` because a browser's `EventSource` cannot set headers.

use super::{AppState, auth};
use crate::event::{Event, EventKind};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The optional `?token=` of dashboard requests.
#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

fn authorized(st: &AppState, headers: &HeaderMap, query: &TokenQuery) -> bool {
    match (&st.config().auth.token, st.config().api_protected()) {
        (Some(t), true) => {
            auth::token_matches(&t.value, headers)
                || query
                    .token
                    .as_deref()
                    .is_some_and(|q| auth::token_eq(&t.value, q))
        }
        _ => true,
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error": "unauthorized",
            "message": "missing or wrong token (Authorization: Bearer or ?token=)",
        })),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page. The assets carry no secrets, but the page is gated with the API so an
/// unprotected listing of who is calling is never one click away.
pub(super) async fn index(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/app.js`.
pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/style.css`.
pub(super) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// Whether the dashboard shows this kind of event.
fn wanted(e: &Event) -> bool {
    matches!(
        e.kind,
        EventKind::CallStarted(_)
            | EventKind::Prosody(_)
            | EventKind::Signal(_)
            | EventKind::Handoff(_)
            | EventKind::HandoffDelivered(_)
            | EventKind::HandoffFailed(_)
            | EventKind::CallEnded(_)
    )
}

fn sse_event(e: &Event) -> Option<axum::response::sse::Event> {
    let name = match &e.kind {
        EventKind::CallStarted(_) => "call_started",
        EventKind::Prosody(_) => "prosody",
        EventKind::Signal(_) => "signal",
        EventKind::Handoff(_) => "handoff",
        EventKind::HandoffDelivered(_) => "handoff_delivered",
        EventKind::HandoffFailed(_) => "handoff_failed",
        EventKind::CallEnded(_) => "call_ended",
    };
    let json = serde_json::to_string(e).ok()?;
    Some(axum::response::sse::Event::default().event(name).data(json))
}

/// Next event for the feed: a wanted event, or `resync` after the receiver lagged (the page
/// then refetches `/v1/calls`); `None` once the gateway's sender is gone.
async fn next_event(
    rx: &mut broadcast::Receiver<Arc<Event>>,
) -> Option<axum::response::sse::Event> {
    loop {
        match rx.recv().await {
            Ok(e) if wanted(&e) => {
                if let Some(ev) = sse_event(&e) {
                    return Some(ev);
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                return Some(
                    axum::response::sse::Event::default()
                        .event("resync")
                        .data(skipped.to_string()),
                );
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// `GET /v1/events`: the dashboard's live feed as Server-Sent Events.
pub(super) async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    let rx = st.subscribe();
    let shutdown = st.shutdown_token();
    let stream = futures_util::stream::unfold(rx, move |mut rx| {
        let shutdown = shutdown.clone();
        async move {
            // Ends the stream on shutdown so graceful shutdown does not wait on open feeds.
            let ev = tokio::select! {
                ev = next_event(&mut rx) => ev?,
                () = shutdown.cancelled() => return None,
            };
            Some((Ok::<_, Infallible>(ev), rx))
        }
    });
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}
