//! Asterisk AudioSocket through the real server: a real TCP client streams the bundled
//! escalating call (`fixtures/demo/escalating.*`) as AudioSocket frames, its transcript goes in
//! over HTTP, and the handoff reaches a real webhook receiver; a broken peer (audio before the
//! UUID, an oversized length, garbage) loses only its own connection while a neighbour call
//! goes on; admission, the first-message deadline and shutdown hold as for a WebSocket call.

use crate::common::{TOKEN, TestServer, test_config};
use axum::Router;
use axum::http::StatusCode;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use warmline::event::{EventKind, Track};
use warmline::protocol::audiosocket::{self, KIND_AUDIO, KIND_UUID, frame, parse_uuid, render};

const CALL: &str = "0d6c2b54-8f3e-4f0a-9b1d-3c2e7a9f5e10";

pub(crate) fn demo(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name)
}

/// The demo call's caller audio (8 kHz mono 16-bit).
pub(crate) fn demo_pcm() -> Vec<i16> {
    let mut r = hound::WavReader::open(demo("escalating.wav")).expect("fixtures/demo wav");
    assert_eq!(r.spec().sample_rate, 8000);
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// The demo call's transcript, one JSON line each.
pub(crate) fn demo_transcript() -> Vec<String> {
    std::fs::read_to_string(demo("escalating.transcript.jsonl"))
        .expect("fixtures/demo transcript")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A webhook receiver that answers 200 and keeps every body.
async fn webhook_receiver() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let b = bodies.clone();
    let app = Router::new().fallback(move |body: axum::body::Bytes| {
        let b = b.clone();
        async move {
            if let Ok(v) = serde_json::from_slice(&body) {
                b.lock().unwrap().push(v);
            }
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, bodies)
}

pub(crate) fn audiosocket_config() -> warmline::config::Config {
    let mut cfg = test_config();
    cfg.server.audiosocket_listen = Some("127.0.0.1:0".into());
    cfg
}

pub(crate) async fn dial(server: &TestServer) -> TcpStream {
    let addr = server.audiosocket.expect("the AudioSocket listener is on");
    TcpStream::connect(addr).await.expect("connect")
}

/// Dials and starts call `call`: its UUID and one 20 ms audio frame.
async fn start_call(server: &TestServer, call: &str) -> TcpStream {
    let mut tcp = dial(server).await;
    let uuid = parse_uuid(call).expect("a UUID");
    let start = [frame(KIND_UUID, &uuid), frame(KIND_AUDIO, &[0; 320])].concat();
    tcp.write_all(&start).await.expect("write");
    tcp
}

/// Waits until `call` has its first event (it is registered), up to 5 s.
async fn wait_started(server: &TestServer, call: &str) {
    for _ in 0..250 {
        if !server.events_for(call).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("call {call} never started");
}

/// The `call_ended` among `events`.
fn call_ended(events: &[warmline::event::Event]) -> warmline::event::CallEnded {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallEnded(c) => Some(c.clone()),
            _ => None,
        })
        .expect("call_ended")
}

/// Reads until the server closes the connection (EOF or reset), up to 10 s.
pub(crate) async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .is_ok()
}

/// Posts transcript lines until the call is registered (the first 202), then the rest.
pub(crate) async fn post_transcript(server: &TestServer, call: &str, lines: &[String]) {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/calls/{call}/transcript", server.addr);
    for (i, line) in lines.iter().enumerate() {
        let mut status = 0;
        for _ in 0..250 {
            status = http
                .post(&url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(line.clone())
                .send()
                .await
                .expect("post")
                .status()
                .as_u16();
            if status != 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, 202, "transcript line {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_call_over_audiosocket_is_handed_off_through_the_webhook() {
    let (hook, bodies) = webhook_receiver().await;
    let mut cfg = audiosocket_config();
    cfg.bridge.webhook = Some(warmline::bridge::WebhookConfig {
        url: format!("http://{hook}/handoff"),
        secret: "audiosocket-secret".into(),
        previous_secret: None,
    });
    cfg.bridge.initial_backoff_ms = 20;
    let server = TestServer::with_config(cfg).await;
    let pcm = demo_pcm();
    let uuid = parse_uuid(CALL).unwrap();
    let frames = render(&uuid, 8000, 20, &pcm, true).unwrap();

    let mut tcp = dial(&server).await;
    // The UUID and the first audio frame start the call (the audio kind names the rate).
    tcp.write_all(&frames[..2].concat()).await.unwrap();
    post_transcript(&server, CALL, &demo_transcript()).await;
    // The rest in writes that cut frames anywhere, as TCP may deliver them.
    let rest = frames[2..].concat();
    for piece in rest.chunks(1000) {
        tcp.write_all(piece).await.unwrap();
    }
    assert!(
        closed_by_server(&mut tcp).await,
        "the server ends the stream"
    );

    let events = server.wait_ended(CALL).await;
    let started = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallStarted(c) => Some(c.clone()),
            _ => None,
        })
        .expect("call_started");
    assert_eq!(started.provider.name(), "asterisk");
    let handoff_id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.handoff_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no handoff in {events:#?}"));
    let ended = call_ended(&events);
    assert_eq!(ended.reason, "stop", "the hangup frame ends it");
    assert!(ended.handoff);
    // Every sample arrived, in order, at its media time.
    assert_eq!(server.audio(CALL, Track::Caller), pcm);
    assert_eq!(ended.duration_ms, pcm.len() as u64 * 1000 / 8000);

    for _ in 0..250 {
        if !bodies.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["handoff_id"], handoff_id.as_str());
    assert_eq!(got[0]["call_id"], CALL);
    server.stop().await;
}

/// A neighbour call that is half streamed when `bad` arrives on another connection, and is
/// finished afterwards.
async fn neighbour_survives(bad: Vec<u8>, what: &str) {
    let server = TestServer::with_config(audiosocket_config()).await;
    let neighbour = "6f1f0c7e-93a4-4c55-8d2b-1a4e2f9b7c31";
    let pcm: Vec<i16> = (0..16_000)
        .map(|i| ((i * 29) % 8000 - 4000) as i16)
        .collect();
    let frames = render(&parse_uuid(neighbour).unwrap(), 8000, 20, &pcm, true).unwrap();
    let half = frames.len() / 2;
    let mut good = dial(&server).await;
    good.write_all(&frames[..half].concat()).await.unwrap();

    let mut evil = dial(&server).await;
    // The peer may see the close before it has written everything.
    let _ = evil.write_all(&bad).await;
    assert!(closed_by_server(&mut evil).await, "{what}: closed");

    good.write_all(&frames[half..].concat()).await.unwrap();
    let events = server.wait_ended(neighbour).await;
    let ended = call_ended(&events);
    assert_eq!(ended.reason, "stop", "{what}");
    assert_eq!(server.audio(neighbour, Track::Caller), pcm, "{what}");
    // Only the neighbour ever started.
    let started = server
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CallStarted(_)))
        .count();
    assert_eq!(started, 1, "{what}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_before_the_uuid_closes_only_that_connection() {
    let bad = [frame(KIND_AUDIO, &[0; 320]), frame(KIND_UUID, &[7; 16])].concat();
    neighbour_survives(bad, "audio before the UUID").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_length_closes_only_that_connection() {
    let mut bad = frame(KIND_UUID, &[7; 16]);
    // A header announcing 65,535 bytes, then a little of them: refused from the header.
    bad.extend_from_slice(&[KIND_AUDIO, 0xff, 0xff]);
    bad.extend_from_slice(&[0; 1000]);
    const { assert!(65_535 > audiosocket::MAX_PAYLOAD_BYTES) };
    neighbour_survives(bad, "oversized length").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_connection() {
    let bad = b"GET /v1/media/asterisk HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    neighbour_survives(bad, "garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_calls_share_max_calls_and_the_first_message_deadline() {
    let mut cfg = audiosocket_config();
    cfg.server.max_calls = 1;
    cfg.server.first_message_timeout_ms = 300;
    let server = TestServer::with_config(cfg).await;
    let first = "a3c1e0f2-5b6d-4e7f-8091-a2b3c4d5e6f7";
    let mut a = start_call(&server, first).await;
    // The one slot is taken: the next connection is refused and closed.
    let mut b = dial(&server).await;
    assert!(closed_by_server(&mut b).await, "over max_calls");
    assert_eq!(server.state.metrics().admission_rejections.get(), 1);
    // The first call goes on: a second of audio after the refusal is all heard.
    let more = render(
        &parse_uuid(first).unwrap(),
        8000,
        20,
        &[700i16; 8000],
        false,
    )
    .unwrap();
    a.write_all(&more[1..].concat()).await.unwrap();
    // The first call goes on until it says nothing for too long (idle) or hangs up.
    a.write_all(&frame(audiosocket::KIND_HANGUP, &[]))
        .await
        .unwrap();
    assert!(closed_by_server(&mut a).await);
    let ended = call_ended(&server.wait_ended(first).await);
    assert_eq!(ended.reason, "stop");
    assert_eq!(server.audio(first, Track::Caller).len(), 160 + 8000);
    // A connection that never sends its UUID is closed at the first-message deadline.
    let mut silent = dial(&server).await;
    let t0 = std::time::Instant::now();
    assert!(closed_by_server(&mut silent).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_an_open_audiosocket_call_with_its_call_ended() {
    let server = TestServer::with_config(audiosocket_config()).await;
    let call = "b4d2f1e3-6c7e-4f80-9102-b3c4d5e6f708";
    let mut tcp = start_call(&server, call).await;
    wait_started(&server, call).await;
    server.state.shutdown_token().cancel();
    assert!(closed_by_server(&mut tcp).await);
    let events = server.wait_ended(call).await;
    assert_eq!(call_ended(&events).reason, "shutdown");
    server.stop().await;
}

/// AudioSocket connections hold a place under `[server] max_connections` like HTTP and
/// WebSocket connections do (one descriptor budget for both listeners): with one place, an open
/// AudioSocket call leaves none for a WebSocket or a second AudioSocket connection; when it
/// ends, the place is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_connections_count_toward_max_connections() {
    let mut cfg = audiosocket_config();
    cfg.server.max_connections = Some(1);
    cfg.server.max_calls = 4;
    let server = TestServer::with_config(cfg).await;
    let first = "c5e3a2f4-7d8e-4f91-a213-c4d5e6f70819";
    let mut a = start_call(&server, first).await;
    wait_started(&server, first).await;
    let refused = || server.state.metrics().connections_refused.get();
    assert_eq!(refused(), 0);
    // An HTTP connection (the one a WebSocket upgrade starts on) finds no place: it is
    // closed before its request is read.
    let http = reqwest::get(format!("http://{}/healthz", server.addr)).await;
    assert!(
        http.is_err(),
        "an HTTP connection beyond max_connections: {http:?}"
    );
    assert_eq!(refused(), 1);
    // Nor does a second AudioSocket connection.
    let mut b = dial(&server).await;
    assert!(closed_by_server(&mut b).await, "over max_connections");
    assert_eq!(refused(), 2);
    assert_eq!(server.state.metrics().admission_rejections.get(), 0);
    // The first call's end frees the place for the next one.
    a.write_all(&frame(audiosocket::KIND_HANGUP, &[]))
        .await
        .unwrap();
    assert!(closed_by_server(&mut a).await);
    server.wait_ended(first).await;
    let second = "d6f4b3a5-8e9f-4a02-b324-d5e6f708192a";
    let mut c = None;
    for _ in 0..50 {
        let tcp = start_call(&server, second).await;
        c = Some(tcp);
        tokio::time::sleep(Duration::from_millis(40)).await;
        if !server.events_for(second).is_empty() {
            break;
        }
    }
    assert!(!server.events_for(second).is_empty(), "the place came back");
    drop(c);
    server.stop().await;
}
