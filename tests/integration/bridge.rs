//! Handoff delivery against real local HTTP servers standing in for the webhook receiver and the
//! providers' REST APIs.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use warmline::bridge::outbox::OutboxEntry;
use warmline::bridge::{
    Bridge, BridgeConfig, HandoffRequest, PlivoConfig, SubmitError, TelnyxConfig, TwilioConfig,
    VonageConfig, WebhookConfig, verify,
};
use warmline::event::{Delivery, Event, EventKind, Handoff, Summary};

const SECRET: &str = "test-secret";
const WAIT: Duration = Duration::from_secs(5);

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A local HTTP server that records every request and answers with a settable status.
#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<AtomicU16>,
    /// How long each answer takes.
    delay_ms: Arc<AtomicU64>,
}

impl Fake {
    fn new(status: u16) -> Self {
        Self {
            seen: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.serve_on(listener)
    }

    fn serve_on(&self, listener: tokio::net::TcpListener) -> SocketAddr {
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(record).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count_by_idempotency_key(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in self.seen() {
            let k = s
                .headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }
}

async fn record(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    fake.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let delay_ms = fake.delay_ms.load(Ordering::SeqCst);
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    StatusCode::from_u16(fake.status.load(Ordering::SeqCst)).unwrap()
}

fn handoff(id: &str, call_id: &str, provider: &str) -> HandoffRequest {
    HandoffRequest {
        event: Event {
            call_id: call_id.into(),
            t_ms: 42_000,
            kind: EventKind::Handoff(Handoff {
                handoff_id: id.into(),
                reasons: vec![],
                score: 0.9,
                summary: Summary {
                    caller_intent: "cancel the subscription".into(),
                    why_now: "asked for a human twice".into(),
                    ..Summary::default()
                },
                provider: Some(provider.parse().unwrap()),
                route: None,
                pre_call: false,
            }),
        },
        provider: provider.parse().unwrap(),
    }
}

fn base_cfg(outbox: &Path) -> BridgeConfig {
    BridgeConfig {
        outbox_dir: outbox.to_owned(),
        max_attempts: 20,
        initial_backoff_ms: 5,
        max_backoff_ms: 40,
        request_timeout_ms: 1_000,
        ..BridgeConfig::default()
    }
}

fn webhook(addr: SocketAddr) -> Option<WebhookConfig> {
    Some(WebhookConfig {
        url: format!("http://{addr}/hooks/handoff"),
        secret: SECRET.into(),
        previous_secret: None,
    })
}

fn twilio(addr: SocketAddr, agent: &str) -> Option<TwilioConfig> {
    Some(TwilioConfig {
        api_base: format!("http://{addr}"),
        say: "One moment, connecting you.".into(),
        mode: warmline::bridge::TransferMode::Blind,
        ..TwilioConfig::new("AC123", "tok", agent)
    })
}

/// The next delivery event for `target`, skipping others.
async fn delivery_event(rx: &mut mpsc::Receiver<Event>, target: &str) -> (bool, Delivery) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no delivery event for {target} within {WAIT:?}"))
            .expect("event channel open");
        match ev.kind {
            EventKind::HandoffDelivered(d) if d.target == target => return (true, d),
            EventKind::HandoffFailed(d) if d.target == target => return (false, d),
            _ => {}
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn webhook_is_signed_verifiable_and_idempotent() {
    let receiver = Fake::new(200);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    let req = handoff("h-sig-1", "CA1", "twilio");
    bridge.submit(req.clone()).await.unwrap();

    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(ok, "{d:?}");
    assert_eq!(
        (d.handoff_id.as_str(), d.attempts, d.status),
        ("h-sig-1", 1, Some(200))
    );

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path, "/hooks/handoff");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["idempotency-key"], "h-sig-1");
    let sig = s.headers["x-warmline-signature"].to_str().unwrap();
    assert!(verify(SECRET, sig, &s.body, unix_now(), 300), "{sig}");
    assert!(!verify("wrong", sig, &s.body, unix_now(), 300));
    // The body is the handoff event itself.
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["event"], "handoff");
    assert_eq!(body["handoff_id"], "h-sig-1");
    assert_eq!(body["call_id"], "CA1");
    assert_eq!(body["summary"]["caller_intent"], "cancel the subscription");
    let back: Event = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(back, req.event);

    task.shutdown(Duration::from_secs(1)).await;
    assert!(
        json_files(dir.path()).is_empty(),
        "delivered handoff left in the outbox"
    );
}

#[tokio::test]
async fn twilio_call_is_updated_with_twiml_and_basic_auth() {
    let api = Fake::new(200);
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        twilio: twilio(addr, "+15551234567"),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    // A Telnyx call is not Twilio's to move: no request for it.
    bridge
        .submit(handoff("h-tx", "v3:abc", "telnyx"))
        .await
        .unwrap();
    bridge
        .submit(handoff("h-tw-1", "CA42", "twilio"))
        .await
        .unwrap();

    let (ok, d) = delivery_event(&mut events, "twilio").await;
    assert!(ok, "{d:?}");
    assert_eq!(d.handoff_id, "h-tw-1");
    let seen = api.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path, "/2010-04-01/Accounts/AC123/Calls/CA42.json");
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC123:tok")
    );
    assert_eq!(s.headers["authorization"], expected_auth.as_str());
    assert_eq!(
        s.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form = reqwest::Url::parse(&format!(
        "http://x/?{}",
        std::str::from_utf8(&s.body).unwrap()
    ))
    .unwrap();
    let fields: BTreeMap<String, String> = form.query_pairs().into_owned().collect();
    let twiml = &fields["Twiml"];
    let doc = roxmltree::Document::parse(twiml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "Response");
    let number = doc
        .descendants()
        .find(|n| n.has_tag_name("Number"))
        .unwrap_or_else(|| panic!("no <Number> in {twiml}"));
    assert_eq!(number.text(), Some("+15551234567"));
    assert_eq!(number.parent().unwrap().tag_name().name(), "Dial");

    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn telnyx_transfer_carries_the_handoff_id() {
    let api = Fake::new(200);
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        telnyx: Some(TelnyxConfig {
            api_base: format!("http://{addr}"),
            ..TelnyxConfig::new("KEY1", "sip:agent@pbx.example")
        }),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-tel-1", "v3:ctl/1", "telnyx"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "telnyx").await;
    assert!(ok, "{d:?}");
    let s = &api.seen()[0];
    assert_eq!(s.path, "/v2/calls/v3:ctl%2F1/actions/transfer");
    assert_eq!(s.headers["authorization"], "Bearer KEY1");
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["to"], "sip:agent@pbx.example");
    assert_eq!(body["command_id"], "h-tel-1");
    let state = base64::engine::general_purpose::STANDARD
        .decode(body["client_state"].as_str().unwrap())
        .unwrap();
    assert_eq!(state, b"h-tel-1");
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn receiver_down_then_up_gets_it_after_retries() {
    // Reserve a port, then leave it closed so the first attempts are refused.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);

    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-down-1", "CA7", "twilio"))
        .await
        .unwrap();

    // While the receiver is down the handoff sits in the outbox with its attempts counted.
    let pending = dir.path().join("h-down-1.json");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempts = std::fs::read(&pending)
            .ok()
            .and_then(|b| serde_json::from_slice::<OutboxEntry>(&b).ok())
            .map(|e| e.targets["webhook"].attempts)
            .unwrap_or(0);
        if attempts >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retries recorded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let receiver = Fake::new(200);
    receiver.serve_on(tokio::net::TcpListener::bind(addr).await.unwrap());
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(ok, "{d:?}");
    assert!(d.attempts >= 3, "{d:?}");
    assert_eq!(receiver.seen().len(), 1);
    task.shutdown(Duration::from_secs(1)).await;
    assert!(!pending.exists());
}

#[tokio::test]
async fn restart_resumes_pending_and_delivers_each_target_once() {
    let receiver = Fake::new(200);
    let hook_addr = receiver.serve().await;
    let api = Fake::new(503);
    let api_addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(hook_addr),
        twilio: twilio(api_addr, "sip:desk@pbx.example"),
        ..base_cfg(dir.path())
    };

    // First run: the webhook gets it, Twilio keeps answering 503; then the process stops.
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg.clone(), events_tx).await.unwrap();
    bridge
        .submit(handoff("h-rs-1", "CA9", "twilio"))
        .await
        .unwrap();
    let (ok, _) = delivery_event(&mut events, "webhook").await;
    assert!(ok);
    while api.seen().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.shutdown(Duration::from_millis(0)).await;
    drop(bridge);
    // Let a request cut off mid-flight land at the fake before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(json_files(dir.path()), ["h-rs-1.json"]);
    let kept: OutboxEntry =
        serde_json::from_slice(&std::fs::read(dir.path().join("h-rs-1.json")).unwrap()).unwrap();
    assert!(kept.targets["webhook"].delivered);
    assert!(kept.targets["twilio"].is_pending());
    let twilio_calls_before = api.seen().len();

    // Second run: Twilio is healthy again. Only Twilio is called; the webhook is not repeated.
    api.status.store(200, Ordering::SeqCst);
    let (events_tx, mut events) = mpsc::channel(16);
    let (_bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    let (ok, d) = delivery_event(&mut events, "twilio").await;
    assert!(ok, "{d:?}");
    // Attempts carry over the restart.
    assert_eq!(d.attempts, kept.targets["twilio"].attempts + 1, "{d:?}");
    task.shutdown(Duration::from_secs(1)).await;

    assert_eq!(
        receiver.count_by_idempotency_key(),
        BTreeMap::from([("h-rs-1".to_owned(), 1)])
    );
    let last = api.seen().pop().unwrap();
    let form = String::from_utf8(last.body.to_vec()).unwrap();
    assert!(form.contains("X-Handoff-Id%3Dh-rs-1"), "{form}");
    assert_eq!(api.seen().len(), twilio_calls_before + 1);
    assert!(json_files(dir.path()).is_empty());
}

#[tokio::test]
async fn restart_with_a_pending_file_delivers_exactly_once() {
    let receiver = Fake::new(200);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    // A file left by a previous process that stopped before delivering.
    let outbox = warmline::bridge::outbox::Outbox::open(dir.path()).unwrap();
    let mut entry = OutboxEntry {
        version: warmline::bridge::outbox::OUTBOX_VERSION,
        handoff_id: "h-file-1".into(),
        request: handoff("h-file-1", "CA3", "twilio"),
        targets: BTreeMap::new(),
    };
    entry.targets.insert("webhook".into(), Default::default());
    outbox.write(&entry).unwrap();
    // The process that wrote it is gone: so is its lock.
    drop(outbox);

    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg.clone(), events_tx).await.unwrap();
    let (ok, _) = delivery_event(&mut events, "webhook").await;
    assert!(ok);
    // A further restart finds nothing to redo.
    task.shutdown(Duration::from_secs(1)).await;
    drop(bridge);
    let (events_tx, _events) = mpsc::channel(16);
    let (_bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.count_by_idempotency_key(),
        BTreeMap::from([("h-file-1".to_owned(), 1)])
    );
}

#[tokio::test]
async fn receiver_failing_forever_ends_in_failed_after_max_attempts() {
    let receiver = Fake::new(500);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        max_attempts: 3,
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-fail-1", "CA5", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok, "{d:?}");
    assert_eq!(d.handoff_id, "h-fail-1");
    assert_eq!(d.attempts, 3);
    assert_eq!(d.status, Some(500));
    assert_eq!(receiver.seen().len(), 3);
    let stats = bridge.stats();
    assert_eq!((stats.delivered, stats.failed, stats.retried), (0, 1, 2));
    task.shutdown(Duration::from_secs(1)).await;

    assert!(json_files(dir.path()).is_empty());
    let kept: OutboxEntry =
        serde_json::from_slice(&std::fs::read(dir.path().join("failed/h-fail-1.json")).unwrap())
            .unwrap();
    let state = &kept.targets["webhook"];
    assert!(state.failed && !state.delivered);
    assert_eq!((state.attempts, state.last_status), (3, Some(500)));
    assert_eq!(kept.request.handoff_id(), Some("h-fail-1"));
}

#[tokio::test]
async fn client_error_is_permanent_at_once() {
    let receiver = Fake::new(401);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-401", "CA6", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok);
    assert_eq!((d.attempts, d.status), (1, Some(401)));
    task.shutdown(Duration::from_secs(1)).await;
    assert!(dir.path().join("failed/h-401.json").is_file());
}

#[tokio::test]
async fn shutdown_refuses_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let (events_tx, _events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(base_cfg(dir.path()), events_tx)
        .await
        .unwrap();
    task.shutdown(Duration::from_millis(100)).await;
    assert!(matches!(
        bridge.submit(handoff("h-late", "CA1", "twilio")).await,
        Err(SubmitError::Closed(_))
    ));
}

#[tokio::test]
async fn invalid_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: Some(WebhookConfig {
            url: "not a url".into(),
            secret: SECRET.into(),
            previous_secret: None,
        }),
        ..base_cfg(dir.path())
    };
    let (events_tx, _events) = mpsc::channel(1);
    let err = Bridge::start(cfg, events_tx).await.unwrap_err();
    assert!(err.to_string().contains("bridge.webhook.url"), "{err}");
}

#[tokio::test]
async fn vonage_and_plivo_transfers_hit_their_apis() {
    let api = Fake::new(204);
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        vonage: Some(VonageConfig {
            api_base: format!("http://{addr}"),
            say: String::new(),
            ..VonageConfig::new("JWT1", "+15550001111")
        }),
        plivo: Some(PlivoConfig {
            api_base: format!("http://{addr}"),
            ..PlivoConfig::new("MA1", "ptok", "https://xml.example/agent")
        }),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-vo", "uuid-1", "vonage"))
        .await
        .unwrap();
    assert!(delivery_event(&mut events, "vonage").await.0);
    bridge
        .submit(handoff("h-pl", "uuid-2", "plivo"))
        .await
        .unwrap();
    assert!(delivery_event(&mut events, "plivo").await.0);
    task.shutdown(Duration::from_secs(1)).await;

    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let vo = &seen[0];
    assert_eq!(vo.method, Method::PUT);
    assert_eq!(vo.path, "/v1/calls/uuid-1");
    assert_eq!(vo.headers["authorization"], "Bearer JWT1");
    let body: serde_json::Value = serde_json::from_slice(&vo.body).unwrap();
    assert_eq!(body["action"], "transfer");
    let connect = &body["destination"]["ncco"][0];
    assert_eq!(connect["action"], "connect");
    assert_eq!(connect["endpoint"][0]["number"], "15550001111");

    let pl = &seen[1];
    assert_eq!(pl.method, Method::POST);
    assert_eq!(pl.path, "/v1/Account/MA1/Call/uuid-2/");
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("MA1:ptok")
    );
    assert_eq!(pl.headers["authorization"], expected_auth.as_str());
    let form = reqwest::Url::parse(&format!(
        "http://x/?{}",
        std::str::from_utf8(&pl.body).unwrap()
    ))
    .unwrap();
    let fields: BTreeMap<String, String> = form.query_pairs().into_owned().collect();
    assert_eq!(fields["legs"], "aleg");
    assert_eq!(fields["aleg_method"], "POST");
    assert_eq!(
        fields["aleg_url"],
        "https://xml.example/agent?handoff_id=h-pl"
    );
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_delivery_finish_within_grace() {
    let receiver = Fake::new(200);
    receiver.delay_ms.store(200, Ordering::SeqCst);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-slow", "CA8", "twilio"))
        .await
        .unwrap();
    while receiver.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The answer is still 200 ms away; the grace covers it.
    task.shutdown(Duration::from_secs(2)).await;
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(ok, "{d:?}");
    assert!(json_files(dir.path()).is_empty());
}

#[tokio::test]
async fn shutdown_past_grace_keeps_the_handoff_pending() {
    let receiver = Fake::new(200);
    receiver.delay_ms.store(2_000, Ordering::SeqCst);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        request_timeout_ms: 5_000,
        ..base_cfg(dir.path())
    };
    let (events_tx, _events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-cut", "CA8", "twilio"))
        .await
        .unwrap();
    while receiver.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t0 = std::time::Instant::now();
    task.shutdown(Duration::from_millis(100)).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let kept: OutboxEntry =
        serde_json::from_slice(&std::fs::read(dir.path().join("h-cut.json")).unwrap()).unwrap();
    assert!(kept.targets["webhook"].is_pending());
}

/// A receiver whose every answer `respond` builds; records arrival times and Idempotency-Keys.
async fn custom_receiver(
    respond: impl Fn(usize) -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<(std::time::Instant, HeaderMap)>>>) {
    let seen: Arc<Mutex<Vec<(std::time::Instant, HeaderMap)>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let s = s.clone();
        let respond = respond.clone();
        async move {
            let n = {
                let mut g = s.lock().unwrap();
                g.push((std::time::Instant::now(), headers));
                g.len()
            };
            respond(n)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn answer(
    status: u16,
    headers: &[(&'static str, String)],
    body: axum::body::Body,
) -> axum::response::Response {
    let mut b = axum::response::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(body).unwrap()
}

#[tokio::test]
async fn redirects_are_not_followed_and_fail_with_a_clear_status() {
    let (addr, seen) = custom_receiver(|_| {
        answer(
            307,
            &[("location", "http://127.0.0.1:9/elsewhere".into())],
            axum::body::Body::empty(),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-307", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok);
    assert_eq!((d.attempts, d.status), (1, Some(307)));
    let error = d.error.unwrap_or_default();
    assert!(
        error.contains("http://127.0.0.1:9/elsewhere") && error.contains("not followed"),
        "{error}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn gone_is_final_at_the_first_attempt() {
    let (addr, seen) = custom_receiver(|_| answer(410, &[], "call is over".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-410", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok);
    assert_eq!((d.attempts, d.status), (1, Some(410)));
    assert_eq!(d.error.as_deref(), Some("HTTP 410: call is over"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "410 was retried");
    task.shutdown(Duration::from_secs(1)).await;
    assert!(dir.path().join("failed/h-410.json").is_file());
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_within_the_cap() {
    // First answer: 429 asking for 1 s (far above this config's own 5 ms backoff); then 200.
    let (addr, seen) = custom_receiver(|n| {
        if n == 1 {
            answer(
                429,
                &[("retry-after", "1".into())],
                axum::body::Body::empty(),
            )
        } else {
            answer(200, &[], axum::body::Body::empty())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        max_backoff_ms: 5_000,
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-429", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(ok && d.attempts == 2, "{d:?}");
    let times: Vec<std::time::Instant> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After ignored: {gap:?}"
    );

    // A Retry-After above max_backoff_ms is cut to it.
    let (addr, seen) = custom_receiver(|n| {
        if n == 1 {
            answer(
                503,
                &[("retry-after", "3600".into())],
                axum::body::Body::empty(),
            )
        } else {
            answer(200, &[], axum::body::Body::empty())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        max_backoff_ms: 200,
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    task.shutdown(Duration::from_secs(1)).await;
    let (bridge2, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge2
        .submit(handoff("h-503", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, _) = delivery_event(&mut events, "webhook").await;
    assert!(ok);
    assert_eq!(seen.lock().unwrap().len(), 2);
    task.shutdown(Duration::from_secs(1)).await;
    drop(bridge);
}

#[tokio::test]
async fn huge_and_endless_refusal_bodies_are_read_only_in_part() {
    // A 500 whose body never ends: 64 KiB chunks forever, counting what the socket took.
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    let (addr, _seen) = custom_receiver(move |_| {
        let p = p.clone();
        let chunks = futures_util::stream::repeat_with(move || {
            p.fetch_add(65_536, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 65_536]))
        });
        answer(500, &[], axum::body::Body::from_stream(chunks))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        max_attempts: 1,
        request_timeout_ms: 2_000,
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-huge", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok);
    let error = d.error.unwrap_or_default();
    assert!(
        error.starts_with("HTTP 500: xxx") && error.len() < 300,
        "{error}"
    );
    // Read whole, the body would never end; read in part, the server stops once the socket's
    // buffers are full.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = produced.load(Ordering::Relaxed);
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes produced");
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_slow_refusal_body_is_cut_by_the_request_timeout() {
    let (addr, _seen) = custom_receiver(|_| {
        let slow = futures_util::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"y")), n + 1))
        });
        answer(502, &[], axum::body::Body::from_stream(slow))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: webhook(addr),
        max_attempts: 1,
        request_timeout_ms: 1_000,
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    let t0 = std::time::Instant::now();
    bridge
        .submit(handoff("h-slow-body", "CA1", "twilio"))
        .await
        .unwrap();
    let (ok, d) = delivery_event(&mut events, "webhook").await;
    assert!(!ok && d.status == Some(502), "{d:?}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn rotation_signs_with_the_new_and_the_previous_secret() {
    let receiver = Fake::new(200);
    let addr = receiver.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        webhook: Some(WebhookConfig {
            url: format!("http://{addr}/hook"),
            secret: "new-secret".into(),
            previous_secret: Some("old-secret".into()),
        }),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(16);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    bridge
        .submit(handoff("h-rot", "CA1", "twilio"))
        .await
        .unwrap();
    assert!(delivery_event(&mut events, "webhook").await.0);
    let s = receiver.seen().pop().unwrap();
    let sig = s.headers["x-warmline-signature"].to_str().unwrap();
    assert_eq!(sig.matches(",v1=").count(), 2, "{sig}");
    assert!(verify("new-secret", sig, &s.body, unix_now(), 300));
    assert!(verify("old-secret", sig, &s.body, unix_now(), 300));
    assert!(!verify("other", sig, &s.body, unix_now(), 300));
    task.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn hostile_call_ids_never_change_the_provider_api_path() {
    let api = Fake::new(200);
    let addr = api.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = BridgeConfig {
        twilio: twilio(addr, "+15550001111"),
        telnyx: Some(TelnyxConfig {
            api_base: format!("http://{addr}"),
            ..TelnyxConfig::new("KEY", "+15550002222")
        }),
        vonage: Some(VonageConfig {
            api_base: format!("http://{addr}"),
            say: String::new(),
            ..VonageConfig::new("JWT1", "+15550001111")
        }),
        plivo: Some(PlivoConfig {
            api_base: format!("http://{addr}"),
            ..PlivoConfig::new("MA1", "ptok", "https://xml.example/agent")
        }),
        ..base_cfg(dir.path())
    };
    let (events_tx, mut events) = mpsc::channel(64);
    let (bridge, task) = Bridge::start(cfg, events_tx).await.unwrap();
    let hostile = ["..", ".", "a/../..", "%2e%2e", "x?y=1#z", "a b\\c"];
    let mut n = 0;
    for provider in ["twilio", "telnyx", "vonage", "plivo"] {
        for id in hostile {
            n += 1;
            bridge
                .submit(handoff(&format!("h-{provider}-{n}"), id, provider))
                .await
                .unwrap();
            let (ok, d) = delivery_event(&mut events, provider).await;
            if matches!(id, "." | "..") {
                // Refused before any request: no encoding makes a dot segment safe.
                assert!(!ok && d.status.is_none(), "{provider} {id:?}: {d:?}");
                assert!(d.error.unwrap_or_default().contains("cannot be used"));
            } else {
                assert!(ok, "{provider} {id:?}: {d:?}");
            }
        }
    }
    task.shutdown(Duration::from_secs(1)).await;
    let paths: Vec<String> = api.seen().into_iter().map(|s| s.path).collect();
    // Every request landed on its provider's call resource, the id as one encoded segment.
    let expected = [
        "/2010-04-01/Accounts/AC123/Calls/a%2F..%2F...json",
        "/2010-04-01/Accounts/AC123/Calls/%252e%252e.json",
        "/2010-04-01/Accounts/AC123/Calls/x%3Fy%3D1%23z.json",
        "/2010-04-01/Accounts/AC123/Calls/a%20b%5Cc.json",
        "/v2/calls/a%2F..%2F../actions/transfer",
        "/v2/calls/%252e%252e/actions/transfer",
        "/v2/calls/x%3Fy%3D1%23z/actions/transfer",
        "/v2/calls/a%20b%5Cc/actions/transfer",
        "/v1/calls/a%2F..%2F..",
        "/v1/calls/%252e%252e",
        "/v1/calls/x%3Fy%3D1%23z",
        "/v1/calls/a%20b%5Cc",
        "/v1/Account/MA1/Call/a%2F..%2F../",
        "/v1/Account/MA1/Call/%252e%252e/",
        "/v1/Account/MA1/Call/x%3Fy%3D1%23z/",
        "/v1/Account/MA1/Call/a%20b%5Cc/",
    ];
    assert_eq!(paths, expected);
}
