//! The playbook's HTTP API: a handoff with its outcome and feedback, feedback from the human
//! who took the call, the review queue of ended calls and reviewers' labels, and per-reason
//! precision for the dashboard. Authenticated like the rest of the API; every database call
//! runs on the store's own thread.

use super::{AppState, metrics, routes};
use crate::store::{Feedback, ReviewFilter, StoreError};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Longest `note` and `agent` accepted.
const MAX_NOTE_CHARS: usize = 2000;
const MAX_AGENT_CHARS: usize = 200;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

fn store_error(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "store request failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// The store, or the response saying why there is none; checks the API's access rule
/// ([`routes::api_guard`]) first.
#[allow(clippy::result_large_err)] // the Err is the reply itself, returned at once
fn guard<'a>(st: &'a AppState, headers: &HeaderMap) -> Result<&'a crate::store::Store, Response> {
    if let Some(denied) = routes::api_guard(st, headers, None) {
        return Err(denied);
    }
    store_of(st)
}

/// [`guard`] for a POST: the body must also be declared JSON ([`routes::require_json`]).
#[allow(clippy::result_large_err)] // the Err is the reply itself, returned at once
fn guard_json<'a>(
    st: &'a AppState,
    headers: &HeaderMap,
) -> Result<&'a crate::store::Store, Response> {
    if let Some(denied) =
        routes::api_guard(st, headers, None).or_else(|| routes::require_json(headers))
    {
        return Err(denied);
    }
    store_of(st)
}

#[allow(clippy::result_large_err)] // the Err is the reply itself, returned at once
fn store_of(st: &AppState) -> Result<&crate::store::Store, Response> {
    st.store().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_off",
            "the call-record store is off ([store] path = \"\")",
        )
    })
}

#[allow(clippy::result_large_err)] // the Err is the reply itself, returned at once
fn parse_feedback(body: &[u8]) -> Result<Feedback, Response> {
    let fb: Feedback = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_feedback", e.to_string()))?;
    let long = |s: &Option<String>, max: usize| s.as_ref().is_some_and(|s| s.chars().count() > max);
    if long(&fb.note, MAX_NOTE_CHARS) || long(&fb.agent, MAX_AGENT_CHARS) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_feedback",
            format!(
                "note is limited to {MAX_NOTE_CHARS} and agent to {MAX_AGENT_CHARS} characters"
            ),
        ));
    }
    Ok(fb)
}

/// `GET /v1/handoffs/{handoff_id}`.
pub(super) async fn get_handoff(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let store = match guard(&st, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let key = id.clone();
    match store.run(move |db| db.handoff(&key)).await {
        Ok(Some(row)) => {
            let mut v = row.event;
            if let Value::Object(m) = &mut v {
                m.insert("outcome".into(), json!(row.outcome));
                m.insert("feedback".into(), json!(row.feedback));
            }
            Json(v).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown_handoff",
            format!("no handoff {id:?}"),
        ),
        Err(e) => store_error(&e),
    }
}

/// `POST /v1/handoffs/{handoff_id}/feedback`.
pub(super) async fn post_feedback(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let store = match guard_json(&st, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fb = match parse_feedback(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let needed = fb.needed;
    let key = id.clone();
    let result = store
        .run(move |db| {
            let reason = db.add_feedback(&key, &fb)?;
            let tally = match &reason {
                Some(r) => db.precision()?.into_iter().find(|t| &t.reason == r),
                None => None,
            };
            Ok((reason, tally))
        })
        .await;
    match result {
        Ok((Some(reason), tally)) => {
            let m = st.metrics();
            m.handoff_feedback
                .get_or_create(&metrics::FeedbackLabels {
                    reason: reason.clone(),
                    needed: needed.to_string(),
                })
                .inc();
            if let Some(t) = tally.filter(|t| t.total > 0) {
                m.handoff_precision
                    .get_or_create(&metrics::ReasonLabel { reason })
                    .set(t.needed as f64 / t.total as f64);
            }
            (StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response()
        }
        Ok((None, _)) => error(
            StatusCode::NOT_FOUND,
            "unknown_handoff",
            format!("no handoff {id:?}"),
        ),
        Err(e) => store_error(&e),
    }
}

/// `GET /v1/reviews?why=&provider=&unlabelled=&limit=&min_score=`.
pub(super) async fn get_reviews(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let store = match guard(&st, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter: ReviewFilter = match serde_urlencoded_filter(query.as_deref().unwrap_or_default()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_filter", e),
    };
    let threshold = st.settings().detector.policy.handoff_threshold;
    match store.run(move |db| db.reviews(&filter, threshold)).await {
        Ok(items) => Json(items).into_response(),
        Err(e) => store_error(&e),
    }
}

/// The query string as a [`ReviewFilter`] (values typed by their key).
fn serde_urlencoded_filter(q: &str) -> Result<ReviewFilter, String> {
    let mut map = serde_json::Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| format!("{k}: bad percent-encoding"))?;
        let value = match k {
            "why" | "provider" => json!(v),
            "unlabelled" => json!(v.parse::<bool>().map_err(|e| format!("unlabelled: {e}"))?),
            "limit" => json!(v.parse::<usize>().map_err(|e| format!("limit: {e}"))?),
            "min_score" => json!(v.parse::<f64>().map_err(|e| format!("min_score: {e}"))?),
            other => return Err(format!("unknown filter {other:?}")),
        };
        map.insert(k.to_owned(), value);
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /v1/reviews/{call_id}`: a reviewer's label (`needed`: a handoff was, or would have
/// been, needed).
pub(super) async fn post_review(
    State(st): State<AppState>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let store = match guard_json(&st, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fb = match parse_feedback(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let key = call_id.clone();
    match store.run(move |db| db.label_call(&key, &fb)).await {
        Ok(true) => (StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "unknown_call",
            format!("no ended call {call_id:?}"),
        ),
        Err(e) => store_error(&e),
    }
}

/// `GET /v1/reviews/precision`: feedback counts and precision per reason (dashboard).
pub(super) async fn get_precision(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let store = match guard(&st, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match store.run(|db| db.precision()).await {
        Ok(t) => {
            let rows: Vec<Value> = t
                .into_iter()
                .map(|t| {
                    json!({
                        "reason": t.reason,
                        "needed": t.needed,
                        "total": t.total,
                        "precision": if t.total > 0 { t.needed as f64 / t.total as f64 } else { 0.0 },
                    })
                })
                .collect();
            Json(rows).into_response()
        }
        Err(e) => store_error(&e),
    }
}
