//! End to end, as in production: the real gateway on a loopback port, a real WebSocket client
//! streaming a recorded escalating Twilio call (10x faster than real time; set
//! `WARMLINE_E2E_REALTIME=1` for real time), transcript lines POSTed at their media times, a real
//! local webhook receiver and a fake Twilio REST API. Exactly one handoff, signed, after the
//! anger onset, and the call moved by a Twilio call update.

use crate::common::data_dir;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use futures_util::SinkExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use warmline::event::EventKind;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn record(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    seen.lock()
        .unwrap()
        .push((uri.path().to_owned(), headers, body));
    "{}"
}

async fn fake_http() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalating_twilio_call_hands_off_once_signed_and_moves_the_call() {
    let data = data_dir();
    let index = std::fs::read_to_string(data.join("calls/index.csv")).unwrap();
    let row: Vec<&str> = index
        .lines()
        .find(|l| l.starts_with("calls/ravdess_01_escalating.wav"))
        .expect("ravdess_01_escalating in calls/index.csv")
        .split(',')
        .collect();
    let onset_ms: u64 = row[6].parse().unwrap();
    let jsonl = std::fs::read_to_string(data.join(row[1])).unwrap();
    let transcript = std::fs::read_to_string(data.join(row[2])).unwrap();

    let (webhook_base, webhook_seen) = fake_http().await;
    let (twilio_base, twilio_seen) = fake_http().await;
    let outbox = tempfile::tempdir().unwrap();
    let cfg_text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_media_lead_s = 0.0 # recordings are streamed as fast as they go
[auth.twilio]
auth_token = "e2e-twilio-token"
[auth.token]
value = "e2e-token"
[store]
path = "" # no call records from a test run
[bridge]
outbox_dir = "{}"
initial_backoff_ms = 50
[bridge.webhook]
url = "{webhook_base}/handoff"
secret = "e2e-secret"
[bridge.twilio]
account_sid = "AC00000000000000000000000000000000"
auth_token = "twilio-rest-token"
api_base = "{twilio_base}"
agent = "+15551234567"
mode = "blind"
"#,
        outbox.path().display()
    );
    let cfg = warmline::config::Config::from_toml(&cfg_text).unwrap();
    cfg.validate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = warmline::server::Gateway::start(cfg, warmline::pipeline::PipelineSettings::default())
        .await
        .unwrap();
    let state = gw.state().clone();
    let mut events = state.subscribe();
    let server = tokio::spawn(gw.serve(listener));

    let url = format!("ws://{addr}/v1/media/twilio");
    let mut req = url.as_str().into_client_request().unwrap();
    let sig = warmline::server::auth::twilio_signature("e2e-twilio-token", &url, &[]);
    req.headers_mut()
        .insert("x-twilio-signature", sig.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let speed = if std::env::var_os("WARMLINE_E2E_REALTIME").is_some() {
        1.0
    } else {
        10.0
    };
    let mut lines: Vec<warmline::detect::TranscriptLine> = transcript
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.reverse();
    let http = reqwest::Client::new();
    let mut call_id = String::new();
    let mut media_ms = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(0.020 / speed));
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
        while lines
            .last()
            .is_some_and(|l| l.t_ms.unwrap_or(0) <= media_ms)
            && !call_id.is_empty()
        {
            let l = lines.pop().unwrap();
            let r = http
                .post(format!("http://{addr}/v1/calls/{call_id}/transcript"))
                .bearer_auth("e2e-token")
                .json(&l)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    }
    // Collect events until the call ends.
    let mut handoffs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("call_ended in time")
            .unwrap();
        match &e.kind {
            EventKind::Handoff(h) => handoffs.push((e.t_ms, h.clone())),
            EventKind::CallEnded(_) if e.call_id == call_id => break,
            _ => {}
        }
    }
    assert_eq!(handoffs.len(), 1, "exactly one handoff");
    let (t_ms, handoff) = &handoffs[0];
    assert!(
        *t_ms >= onset_ms,
        "handoff at {t_ms} ms, before the anger onset at {onset_ms} ms"
    );
    eprintln!(
        "handoff at {t_ms} ms, {} ms after the onset; reasons {:?}",
        t_ms - onset_ms,
        handoff
            .reasons
            .iter()
            .map(|r| r.signal.name())
            .collect::<Vec<_>>()
    );
    // The webhook and the Twilio call update arrive.
    for _ in 0..200 {
        if !webhook_seen.lock().unwrap().is_empty() && !twilio_seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hooks = webhook_seen.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "one webhook delivery");
    let (path, headers, body) = &hooks[0];
    assert_eq!(path, "/handoff");
    assert_eq!(headers["idempotency-key"], handoff.handoff_id.as_str());
    let sig = headers["x-warmline-signature"].to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        warmline::bridge::verify("e2e-secret", sig, body, now, 300),
        "valid signature"
    );
    let posted: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(posted["event"], "handoff");
    assert_eq!(posted["handoff_id"], handoff.handoff_id.as_str());
    let updates = twilio_seen.lock().unwrap().clone();
    assert_eq!(updates.len(), 1, "one Twilio call update");
    let (path, headers, body) = &updates[0];
    assert_eq!(
        path,
        &format!("/2010-04-01/Accounts/AC00000000000000000000000000000000/Calls/{call_id}.json")
    );
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let form = String::from_utf8_lossy(body);
    assert!(form.contains("Twiml="), "{form}");
    assert!(form.contains("15551234567"), "{form}");
    state.shutdown_token().cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
}
