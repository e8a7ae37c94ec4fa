//! `GET /v1/events`: every event of every call as Server-Sent Events, one contract event as JSON
//! per `data:` line, in the order the gateway published them. Authenticated like the rest of
//! the API (bearer token, or `?token=` for a browser's `EventSource`).
//!
//! Bounded per subscriber: each one reads from the gateway's broadcast ring and never makes it
//! grow; a subscriber that falls so far behind that the ring overwrote events it had not read is
//! disconnected (it reconnects and resynchronises from `GET /v1/calls`), rather than being sent a
//! stream with holes. `?batch=1` serves the dashboard's batched feed instead.

use super::AppState;
use super::dashboard::{self, TokenQuery};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use std::convert::Infallible;
use tokio::sync::broadcast;

/// The query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    token: Option<String>,
    /// `1`: the dashboard's batches (`{"resync", "events"}`) instead of one event per message.
    batch: Option<String>,
}

/// `GET /v1/events`.
pub(super) async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let token = TokenQuery { token: q.token };
    if q.batch.as_deref().is_some_and(|b| b == "1" || b == "true") {
        return dashboard::events(State(st), headers, Query(token)).await;
    }
    if let Some(denied) = dashboard::guard(&st, &headers, &token) {
        return denied;
    }
    let rx = st.subscribe();
    let shutdown = st.shutdown_token();
    let stream = futures_util::stream::unfold((rx, shutdown), |(mut rx, shutdown)| async move {
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                r = rx.recv() => r,
            };
            match next {
                Ok(e) => match serde_json::to_string(&*e) {
                    Ok(json) => {
                        let ev = axum::response::sse::Event::default().data(json);
                        return Some((Ok::<_, Infallible>(ev), (rx, shutdown)));
                    }
                    Err(err) => tracing::warn!("event not serialisable: {err}"),
                },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event subscriber too slow; disconnected");
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    dashboard::sse_response(stream)
}
