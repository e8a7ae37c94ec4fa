//! What operators and supervisors watch: `/metrics` after a real call, the dashboard's SSE feed
//! while a call streams, the recent-handoffs list, and the token gate in front of all of it.
//! The call is the bundled demo fixture (`fixtures/demo/escalating.*`) sent over a real
//! WebSocket as Twilio would, with its transcript posted over HTTP at its media times.

use crate::common::{TOKEN, TestServer, connect, test_config};
use axum::Router;
use axum::http::StatusCode;
use futures_util::SinkExt as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use warmline::event::{Event, EventKind, Signal};

/// The fixture is 36 s of media; this pace sends it in under 2 s.
const SPEED: f64 = 20.0;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A webhook receiver that answers 200 and counts what it got.
async fn webhook_receiver() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

async fn server_with_webhook() -> (TestServer, Arc<AtomicUsize>) {
    let (hook, hits) = webhook_receiver().await;
    let mut cfg = test_config();
    cfg.bridge.webhook = Some(warmline::bridge::WebhookConfig {
        url: format!("http://{hook}/handoff"),
        secret: "metrics-secret".into(),
        previous_secret: None,
    });
    cfg.bridge.initial_backoff_ms = 20;
    (TestServer::with_config(cfg).await, hits)
}

/// Streams the demo fixture into `server` at [`SPEED`], posting its transcript at the media
/// times; returns the call id and how many transcript lines were accepted.
async fn stream_demo_call(server: &TestServer) -> (String, u64) {
    let jsonl = fixture("escalating.twilio.jsonl");
    let mut lines: Vec<warmline::detect::TranscriptLine> = fixture("escalating.transcript.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.reverse();
    let http = reqwest::Client::new();
    let mut ws = connect(server, "twilio").await;
    let mut call_id = String::new();
    let mut posted = 0;
    let mut media_ms = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(0.020 / SPEED));
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains("\"event\":\"media\"") {
            tick.tick().await;
            media_ms += 20;
        }
        if call_id.is_empty()
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(c) = v["start"]["callSid"].as_str()
        {
            call_id = c.to_owned();
        }
        ws.send(Message::text(line.to_owned())).await.unwrap();
        while !call_id.is_empty()
            && lines
                .last()
                .is_some_and(|l| l.t_ms.unwrap_or(0) <= media_ms)
        {
            let l = lines.pop().unwrap();
            let r = http
                .post(format!(
                    "http://{}/v1/calls/{call_id}/transcript",
                    server.addr
                ))
                .bearer_auth(TOKEN)
                .json(&l)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "transcript line accepted");
            posted += 1;
        }
    }
    let _ = crate::common::close_code(&mut ws).await;
    (call_id, posted)
}

/// Waits until `pred` holds over the server's events, up to 10 s.
async fn wait_for(server: &TestServer, what: &str, pred: impl Fn(&[Event]) -> bool) {
    for _ in 0..500 {
        if pred(&server.events.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Parsed exposition: `name` → list of (labels, value).
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let body = rest.trim_end_matches('}');
                    let labels = body
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (n.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push((name, labels, value.parse().expect("number")));
        }
        Self { samples, text }
    }

    /// Sum of the samples of `name` carrying every label in `with`.
    fn get(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name && with.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has_help(&self, family: &str) {
        assert!(
            self.text.contains(&format!("# HELP {family} ")),
            "HELP for {family}"
        );
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let r = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    Scrape::parse(r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_a_real_call_escalates_and_is_handed_off() {
    let (server, webhook_hits) = server_with_webhook().await;
    let before = scrape(&server).await;
    assert_eq!(before.get("warmline_active_calls", &[]), 0.0);
    assert_eq!(before.get("warmline_calls_started_total", &[]), 0.0);

    let (call_id, posted) = stream_demo_call(&server).await;
    let events = server.wait_ended(&call_id).await;
    wait_for(&server, "the webhook delivery", |ev| {
        ev.iter()
            .any(|e| matches!(e.kind, EventKind::HandoffDelivered(_)))
    })
    .await;
    assert_eq!(webhook_hits.load(Ordering::SeqCst), 1);
    let handoff = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some((e.t_ms, h.clone())),
            _ => None,
        })
        .expect("the escalating call is handed off");
    let crossings: BTreeMap<Signal, usize> = events.iter().fold(BTreeMap::new(), |mut m, e| {
        if let EventKind::Signal(s) = &e.kind {
            *m.entry(s.signal).or_default() += 1;
        }
        m
    });
    assert!(!crossings.is_empty(), "signals crossed before the handoff");

    let m = scrape(&server).await;
    for family in [
        "warmline_active_calls",
        "warmline_calls_started",
        "warmline_calls_ended",
        "warmline_frames",
        "warmline_frame_processing_seconds",
        "warmline_signal_crossings",
        "warmline_handoffs",
        "warmline_handoff_after_call_start_seconds",
        "warmline_handoff_after_first_crossing_seconds",
        "warmline_handoff_deliveries",
        "warmline_handoff_delivery_attempts",
        "warmline_handoff_delivery_seconds",
        "warmline_transcript_lines",
    ] {
        m.has_help(family);
    }
    // Calls by provider; the call ended on the provider's stop, handed off (not contained).
    assert_eq!(m.get("warmline_active_calls", &[]), 0.0);
    assert_eq!(
        m.get("warmline_calls_started_total", &[("provider", "twilio")]),
        1.0
    );
    assert_eq!(
        m.get(
            "warmline_calls_ended_total",
            &[
                ("provider", "twilio"),
                ("reason", "stop"),
                ("handoff", "true")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.get("warmline_calls_ended_total", &[("handoff", "false")]),
        0.0
    );
    // Every media chunk of the fixture was counted on the caller track, none dropped or on the
    // agent's.
    let chunks = fixture("escalating.twilio.jsonl")
        .lines()
        .filter(|l| l.contains("\"event\":\"media\""))
        .count() as f64;
    assert_eq!(
        m.get("warmline_frames_total", &[("track", "caller")]),
        chunks
    );
    assert_eq!(m.get("warmline_frames_total", &[("track", "agent")]), 0.0);
    assert_eq!(m.get("warmline_frames_dropped_total", &[]), 0.0);
    // One latency observation per audio message, in some bucket.
    let observed = m.get("warmline_frame_processing_seconds_count", &[]);
    assert!(
        observed > 0.0 && observed <= chunks,
        "{observed} of {chunks}"
    );
    assert_eq!(
        m.get(
            "warmline_frame_processing_seconds_bucket",
            &[("le", "+Inf")]
        ),
        observed
    );
    assert!(m.get("warmline_frame_processing_seconds_sum", &[]) > 0.0);
    // Signal crossings match the events, by signal.
    for (signal, n) in &crossings {
        assert_eq!(
            m.get(
                "warmline_signal_crossings_total",
                &[("signal", signal.name())]
            ),
            *n as f64,
            "{signal:?}"
        );
    }
    // One handoff, counted under its primary reason, with both time-to-handoff histograms.
    let (handoff_t_ms, h) = handoff;
    let primary = h.reasons[0].signal.name();
    assert_eq!(
        m.get("warmline_handoffs_total", &[("reason", primary)]),
        1.0
    );
    assert_eq!(m.get("warmline_handoffs_total", &[]), 1.0);
    assert_eq!(
        m.get("warmline_handoff_after_call_start_seconds_count", &[]),
        1.0
    );
    let after_start = m.get("warmline_handoff_after_call_start_seconds_sum", &[]);
    assert!(
        (after_start - handoff_t_ms as f64 / 1000.0).abs() < 1e-9,
        "{after_start} s vs handoff at {handoff_t_ms} ms"
    );
    assert_eq!(
        m.get("warmline_handoff_after_first_crossing_seconds_count", &[]),
        1.0
    );
    let first_from_ms = h.reasons.iter().map(|r| r.evidence.from_ms).min().unwrap();
    let after_first = m.get("warmline_handoff_after_first_crossing_seconds_sum", &[]);
    assert!(
        (after_first - (handoff_t_ms - first_from_ms) as f64 / 1000.0).abs() < 1e-9,
        "{after_first} s"
    );
    assert!(after_first <= after_start);
    // Delivered to the webhook on the first attempt, with its latency observed.
    assert_eq!(
        m.get(
            "warmline_handoff_deliveries_total",
            &[("target", "webhook"), ("outcome", "delivered")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "warmline_handoff_deliveries_total",
            &[("outcome", "failed")]
        ),
        0.0
    );
    assert_eq!(
        m.get(
            "warmline_handoff_delivery_attempts_total",
            &[("target", "webhook")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "warmline_handoff_delivery_seconds_count",
            &[("target", "webhook")]
        ),
        1.0
    );
    assert!(
        m.get(
            "warmline_handoff_delivery_seconds_sum",
            &[("target", "webhook")]
        ) > 0.0
    );
    // Every transcript line posted was counted.
    assert!(posted > 0);
    assert_eq!(m.get("warmline_transcript_lines_total", &[]), posted as f64);
    // No errors on a clean call.
    assert_eq!(m.get("warmline_stream_errors_total", &[]), 0.0);
    assert_eq!(m.get("warmline_auth_rejections_total", &[]), 0.0);
    server.stop().await;
}

/// Reads SSE `batch` messages from a streaming response until `done` says so (or 15 s pass).
async fn read_batches(
    resp: &mut reqwest::Response,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> (Vec<serde_json::Value>, usize) {
    let mut buf = String::new();
    let mut events = Vec::new();
    let mut batches = 0;
    let fut = async {
        while let Some(chunk) = resp.chunk().await.expect("sse chunk") {
            buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
            while let Some(end) = buf.find("\n\n") {
                let msg: String = buf.drain(..end + 2).collect();
                let mut name = "";
                let mut data = String::new();
                for line in msg.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if name != "batch" {
                    continue;
                }
                batches += 1;
                let b: serde_json::Value = serde_json::from_str(&data).expect("batch json");
                assert_eq!(b["resync"], false, "a reading subscriber never lags");
                events.extend(b["events"].as_array().expect("events").iter().cloned());
                if done(&events) {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .expect("the feed delivered in time");
    (events, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_feed_streams_a_call_from_start_to_delivered_handoff() {
    let (server, _) = server_with_webhook().await;
    let base = format!("http://{}", server.addr);
    let mut feed = reqwest::get(format!("{base}/v1/events?batch=1&token={TOKEN}"))
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    // A subscriber that never reads must not hold up the call.
    let stalled = reqwest::get(format!("{base}/v1/events?batch=1&token={TOKEN}"))
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);

    let reader = tokio::spawn(async move {
        let has = |ev: &[serde_json::Value], name: &str| ev.iter().any(|e| e["event"] == name);
        read_batches(&mut feed, |ev| {
            has(ev, "call_ended") && has(ev, "handoff_delivered")
        })
        .await
    });
    let (call_id, _) = stream_demo_call(&server).await;
    let (events, batches) = reader.await.unwrap();
    let has = |ev: &[serde_json::Value], name: &str| ev.iter().any(|e| e["event"] == name);
    assert!(events.iter().all(|e| e["call_id"] == call_id.as_str()));
    assert_eq!(events[0]["event"], "call_started");
    assert_eq!(events[0]["provider"], "twilio");
    for name in ["prosody", "signal", "handoff", "call_ended"] {
        assert!(has(&events, name), "{name} in the feed");
    }
    // Batched: far fewer messages than events, and only the caller's prosody.
    assert!(
        batches < events.len(),
        "{batches} batches for {} events",
        events.len()
    );
    let prosody: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "prosody").collect();
    assert!(prosody.iter().all(|p| p["track"] == "caller"));
    assert!(prosody.len() >= 5, "{} prosody updates", prosody.len());
    // The tone the page draws rises from the calm start to the agitated end.
    let tone = |p: &&serde_json::Value| p["tone_score"].as_f64().unwrap();
    let early = prosody[..3].iter().map(tone).fold(0.0, f64::max);
    let late = prosody.iter().map(tone).fold(0.0, f64::max);
    assert!(
        late > early + 0.1,
        "tone {early:.2} early, {late:.2} at most"
    );
    let handoff = events.iter().find(|e| e["event"] == "handoff").unwrap();
    assert!(!handoff["reasons"].as_array().unwrap().is_empty());
    assert!(!handoff["summary"]["why_now"].as_str().unwrap().is_empty());
    let handoff_id = handoff["handoff_id"].as_str().unwrap();

    // The recent-handoffs list the page starts from has it, delivered.
    let recent: serde_json::Value = reqwest::get(format!("{base}/v1/handoffs?token={TOKEN}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["handoff_id"], handoff_id);
    assert_eq!(recent[0]["call_id"], call_id.as_str());
    assert_eq!(recent[0]["reasons"], handoff["reasons"]);
    assert_eq!(recent[0]["deliveries"][0]["target"], "webhook");
    assert_eq!(recent[0]["deliveries"][0]["status"], "delivered");
    assert_eq!(recent[0]["deliveries"][0]["http_status"], 200);
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_api_need_the_token_when_protected() {
    // `[auth] required` (the default) protects the API; no switch is needed.
    let server = TestServer::start().await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    for path in ["/", "/v1/events", "/v1/calls", "/v1/handoffs"] {
        let none = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(status(none), 401, "{path} without a token");
        let wrong = http
            .get(format!("{base}{path}"))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(status(wrong), 401, "{path} with a wrong token");
        let bearer = http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(status(bearer), 200, "{path} with the bearer token");
    }
    // The browser's way in: the page and its EventSource carry `?token=`.
    for path in ["/", "/v1/events", "/v1/handoffs"] {
        let q = http
            .get(format!("{base}{path}?token={TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(q), 200, "{path}?token=");
        let bad = http
            .get(format!("{base}{path}?token=nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(bad), 401, "{path}?token=nope");
    }
    let feed = http
        .get(format!("{base}/v1/events?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert!(
        feed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(feed);
    // Static assets carry no call data; Prometheus scrapes without the dashboard token.
    for path in ["/dashboard/app.js", "/dashboard/style.css", "/metrics"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(status(r), 200, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_live_on_their_own_address() {
    // A free port for the metrics listener (the gateway binds it itself).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = test_config();
    cfg.server.metrics_listen = Some(format!("127.0.0.1:{port}"));
    let server = TestServer::with_config(cfg).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut scraped = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&url).await {
            scraped = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = scraped.expect("the metrics listener answers");
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("warmline_active_calls"), "{text}");
    // The public listener no longer serves them.
    let public = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    server.stop().await;
}
