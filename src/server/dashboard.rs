//! The supervisor dashboard: the embedded single-page app at `GET /`, the batched
//! Server-Sent Events feed at `GET /v1/events?batch=1` it listens to, and the recent-handoffs list at
//! `GET /v1/handoffs` (with delivery status) it starts from. All follow the API's bearer-token
//! rule, also accepting `?token=` because a browser's `EventSource` cannot set headers.
//!
//! The feed never slows a call down: calls publish into a bounded broadcast ring and never
//! wait; a subscriber that falls behind loses the overwritten events and is told to resync
//! from `/v1/calls` and `/v1/handoffs`. Events are sent in batches at most four times a second,
//! keeping only the caller's latest prosody per call in each batch, so a page watching 500 calls
//! parses a few messages per second rather than a thousand.

use super::{AppState, metrics};
use crate::bridge::{BridgeConfig, Target};
use crate::event::{Event, EventKind, Track};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Longest an event waits in a subscriber's batch before it is sent.
const BATCH_INTERVAL: Duration = Duration::from_millis(250);
/// Events one batch may hold; a subscriber producing more between flushes is sent what it has
/// at once (the cap bounds per-subscriber memory, not the rate).
const MAX_BATCH_EVENTS: usize = 1024;
/// Transfer events kept per handoff (one per target tried, plus the end).
const MAX_TRANSFER_EVENTS: usize = 16;
/// Handoffs `GET /v1/handoffs` lists, newest first.
const RECENT_HANDOFFS: usize = 50;
/// Handoffs whose delivery latency is still being tracked; older ones fall out of the ring.
const TRACKED_HANDOFFS: usize = 512;

/// The optional `?token=` of dashboard requests.
#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
}

/// The API rule ([`super::routes::api_guard`]) with the dashboard's `?token=`.
pub(super) fn guard(st: &AppState, headers: &HeaderMap, query: &TokenQuery) -> Option<Response> {
    super::routes::api_guard(st, headers, query.token.as_deref())
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
    if let Some(denied) = guard(&st, &headers, &q) {
        return denied;
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

// --- recent handoffs ----------------------------------------------------------------------

/// Delivery state of one handoff at one target.
#[derive(Debug, Clone, Serialize)]
struct TargetDelivery {
    target: String,
    /// `pending`, `delivered` or `failed`.
    status: &'static str,
    attempts: u32,
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One handoff as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
struct RecentHandoff {
    /// The handoff event itself (`call_id`, `t_ms`, `handoff_id`, `reasons`, `summary`, …).
    #[serde(flatten)]
    event: Event,
    /// Wall-clock time of the decision.
    decided_at: String,
    /// One entry per configured target; empty when no target is configured for the provider.
    deliveries: Vec<TargetDelivery>,
    /// The warm transfer's `handoff_connected`/`_fallback`/`_abandoned` events so far.
    transfer: Vec<Event>,
    #[serde(skip)]
    decided: Instant,
}

impl RecentHandoff {
    fn id(&self) -> &str {
        match &self.event.kind {
            EventKind::Handoff(h) => &h.handoff_id,
            _ => "",
        }
    }
}

/// The last handoffs and how their deliveries went, fed by every published event.
#[derive(Debug, Default)]
pub(super) struct RecentHandoffs {
    list: Mutex<VecDeque<RecentHandoff>>,
}

impl RecentHandoffs {
    /// Records handoffs and delivery outcomes; observes the delivery latency by target.
    pub(super) fn on_event(&self, bridge: &BridgeConfig, m: &metrics::Metrics, e: &Event) {
        match &e.kind {
            EventKind::Handoff(h) => {
                let deliveries = h
                    .provider
                    .and_then(crate::event::CallSource::provider)
                    .map(|p| Target::for_provider(bridge, p))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| TargetDelivery {
                        target: t.name().to_owned(),
                        status: "pending",
                        attempts: 0,
                        http_status: None,
                        error: None,
                    })
                    .collect();
                let entry = RecentHandoff {
                    event: e.clone(),
                    decided_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    deliveries,
                    transfer: Vec::new(),
                    decided: Instant::now(),
                };
                if let Ok(mut l) = self.list.lock() {
                    if l.iter().any(|r| r.id() == h.handoff_id) {
                        return;
                    }
                    l.push_front(entry);
                    l.truncate(TRACKED_HANDOFFS);
                }
            }
            EventKind::HandoffDelivered(d) | EventKind::HandoffFailed(d) => {
                let ok = matches!(e.kind, EventKind::HandoffDelivered(_));
                let Ok(mut l) = self.list.lock() else { return };
                let Some(entry) = l.iter_mut().find(|r| r.id() == d.handoff_id) else {
                    return;
                };
                m.handoff_delivery_latency
                    .get_or_create(&metrics::TargetLabel {
                        target: d.target.clone(),
                    })
                    .observe(entry.decided.elapsed().as_secs_f64());
                let state = TargetDelivery {
                    target: d.target.clone(),
                    status: if ok { "delivered" } else { "failed" },
                    attempts: d.attempts,
                    http_status: d.status,
                    error: d.error.clone(),
                };
                match entry.deliveries.iter_mut().find(|t| t.target == d.target) {
                    Some(t) => *t = state,
                    None => entry.deliveries.push(state),
                }
            }
            EventKind::HandoffConnected(_)
            | EventKind::HandoffFallback(_)
            | EventKind::HandoffAbandoned(_) => {
                let id = match &e.kind {
                    EventKind::HandoffConnected(c) => &c.handoff_id,
                    EventKind::HandoffFallback(f) => &f.handoff_id,
                    EventKind::HandoffAbandoned(a) => &a.handoff_id,
                    _ => return,
                };
                let Ok(mut l) = self.list.lock() else { return };
                if let Some(entry) = l.iter_mut().find(|r| r.id() == id.as_str())
                    && entry.transfer.len() < MAX_TRANSFER_EVENTS
                {
                    entry.transfer.push(e.clone());
                }
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> Vec<RecentHandoff> {
        self.list
            .lock()
            .map(|l| l.iter().take(RECENT_HANDOFFS).cloned().collect())
            .unwrap_or_default()
    }
}

/// `GET /v1/handoffs`: the last handoffs, newest first, each with its delivery status per
/// target. The page loads it at start so a handoff that happened before it opened still shows.
pub(super) async fn handoffs(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Some(denied) = guard(&st, &headers, &q) {
        return denied;
    }
    axum::Json(st.inner.recent_handoffs.snapshot()).into_response()
}

// --- the event feed -----------------------------------------------------------------------

/// One SSE message: events since the last one, and whether some were lost (the page then
/// reloads `/v1/calls` and `/v1/handoffs`).
#[derive(Debug, Serialize)]
struct Batch<'a> {
    resync: bool,
    events: Vec<&'a Event>,
}

/// One subscriber's feed: events wait here until the batch is due.
struct Feed {
    rx: broadcast::Receiver<Arc<Event>>,
    shutdown: CancellationToken,
    pending: Vec<Arc<Event>>,
    /// Index in `pending` of each call's caller prosody, which a newer one replaces.
    prosody_at: HashMap<String, usize>,
    /// When the oldest pending event (or lost-events notice) arrived.
    first_at: Option<Instant>,
    resync: bool,
    closed: bool,
}

impl Feed {
    fn new(rx: broadcast::Receiver<Arc<Event>>, shutdown: CancellationToken) -> Self {
        Self {
            rx,
            shutdown,
            pending: Vec::new(),
            prosody_at: HashMap::new(),
            first_at: None,
            resync: false,
            closed: false,
        }
    }

    /// Keeps what the page shows: no agent prosody, one caller prosody per call per batch.
    fn add(&mut self, e: Arc<Event>) {
        match &e.kind {
            EventKind::Prosody(p) if p.track != Track::Caller => return,
            EventKind::Prosody(_) => {
                if let Some(&i) = self.prosody_at.get(&e.call_id) {
                    self.pending[i] = e;
                    return;
                }
                self.prosody_at
                    .insert(e.call_id.clone(), self.pending.len());
            }
            _ => {}
        }
        self.first_at.get_or_insert_with(Instant::now);
        self.pending.push(e);
    }

    /// The pending events as one batch's JSON.
    fn take_batch(&mut self) -> Option<String> {
        let batch = Batch {
            resync: self.resync,
            events: self.pending.iter().map(AsRef::as_ref).collect(),
        };
        let json = serde_json::to_string(&batch);
        self.pending.clear();
        self.prosody_at.clear();
        self.first_at = None;
        self.resync = false;
        match json {
            Ok(json) => Some(json),
            Err(err) => {
                tracing::warn!("dashboard batch not serialisable: {err}");
                None
            }
        }
    }

    /// The next batch's JSON; `None` on shutdown or once the gateway's sender is gone.
    async fn next(&mut self) -> Option<String> {
        loop {
            if self.pending.len() >= MAX_BATCH_EVENTS
                && let Some(b) = self.take_batch()
            {
                return Some(b);
            }
            let due = self.first_at.map(|t| t + BATCH_INTERVAL);
            if self.closed && due.is_none() {
                return None;
            }
            let sleep = tokio::time::sleep_until(
                due.unwrap_or_else(|| Instant::now() + BATCH_INTERVAL)
                    .into(),
            );
            tokio::select! {
                biased;
                // Ends the stream on shutdown so graceful shutdown does not wait on open feeds.
                () = self.shutdown.cancelled() => return None,
                () = sleep, if due.is_some() => {
                    if let Some(b) = self.take_batch() {
                        return Some(b);
                    }
                }
                r = self.rx.recv(), if !self.closed => match r {
                    Ok(e) => self.add(e),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.resync = true;
                        self.first_at.get_or_insert_with(Instant::now);
                    }
                    Err(broadcast::error::RecvError::Closed) => self.closed = true,
                },
            }
        }
    }
}

/// `GET /v1/events?batch=1`: the dashboard's live feed as Server-Sent Events named `batch`, each a
/// JSON object `{"resync": bool, "events": [<contract event>, …]}`.
pub(super) async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Some(denied) = guard(&st, &headers, &q) {
        return denied;
    }
    let feed = Feed::new(st.subscribe(), st.shutdown_token());
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let json = feed.next().await?;
        let ev = axum::response::sse::Event::default()
            .event("batch")
            .data(json);
        Some((Ok::<_, Infallible>(ev), feed))
    });
    sse_response(stream)
}

/// An SSE response with a comment every 15 s, so proxies keep an idle feed open.
pub(super) fn sse_response<S>(stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CallEnded, Prosody};

    fn prosody(call: &str, t_ms: u64, track: Track, tone: f64) -> Arc<Event> {
        Arc::new(Event {
            call_id: call.into(),
            t_ms,
            kind: EventKind::Prosody(Prosody {
                track,
                f0_hz: Some(180.0),
                energy_db: -20.0,
                rate_sps: 4.0,
                tone_score: tone,
                vad_ratio: 1.0,
                f0_rel_st: None,
                energy_rel_db: None,
                baseline_ready: false,
            }),
        })
    }

    fn ended(call: &str) -> Arc<Event> {
        Arc::new(Event {
            call_id: call.into(),
            t_ms: 9_000,
            kind: EventKind::CallEnded(CallEnded {
                duration_ms: 9_000,
                handoff: false,
                frames: 450,
                dropped_frames: 0,
                reason: "stop".into(),
            }),
        })
    }

    fn parse(json: String) -> serde_json::Value {
        serde_json::from_str(&json).expect("batch json")
    }

    #[tokio::test]
    async fn a_batch_keeps_the_callers_latest_prosody_per_call_and_every_other_event() {
        let (_tx, rx) = broadcast::channel(64);
        let mut feed = Feed::new(rx, CancellationToken::new());
        feed.add(prosody("A", 1_000, Track::Caller, 0.1));
        feed.add(prosody("A", 1_000, Track::Agent, 0.9));
        feed.add(prosody("B", 1_000, Track::Caller, 0.2));
        feed.add(prosody("A", 2_000, Track::Caller, 0.3));
        feed.add(ended("B"));
        let b = parse(feed.take_batch().expect("a batch"));
        assert_eq!(b["resync"], false);
        let events = b["events"].as_array().unwrap();
        let summary: Vec<(String, String, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["call_id"].as_str().unwrap().to_owned(),
                    e["event"].as_str().unwrap().to_owned(),
                    e["t_ms"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("A".into(), "prosody".into(), 2_000),
                ("B".into(), "prosody".into(), 1_000),
                ("B".into(), "call_ended".into(), 9_000),
            ]
        );
        assert!(events.iter().all(|e| e["track"] != "agent"));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync_and_never_blocks_the_sender() {
        let (tx, rx) = broadcast::channel(4);
        let mut feed = Feed::new(rx, CancellationToken::new());
        // The publisher never waits for this subscriber: all sends succeed at once.
        for i in 0..20 {
            tx.send(ended(&format!("C{i}"))).unwrap();
        }
        let first = parse(feed.next().await.expect("a batch"));
        assert_eq!(first["resync"], true);
        // What survived is the newest events, in order (normally all in that first batch).
        let mut ids: Vec<String> = Vec::new();
        let mut b = first;
        loop {
            ids.extend(
                b["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["call_id"].as_str().unwrap().to_owned()),
            );
            if ids.len() >= 4 {
                break;
            }
            b = parse(feed.next().await.expect("the rest"));
        }
        assert_eq!(ids, ["C16", "C17", "C18", "C19"]);
        drop(tx);
        assert!(
            feed.next().await.is_none(),
            "the feed ends with the gateway"
        );
    }
}
