//! Time from the handoff decision to the warm transfer's agent leg being requested, at N
//! concurrent handoffs, against a local fake Twilio REST API (loopback only). The path is the
//! gateway's own: bridge queue → caller put on hold (call update) → delivery result → warm task
//! → `POST Calls.json`. Only the media WebSocket and the detector are left out.
//!
//! `cargo run --example warm_latency -- [N]` (default 1000). Prints p50/p99/max in ms.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warmline::bridge::{Bridge, BridgeConfig, HandoffRequest, TwilioConfig, WarmTransfers};
use warmline::event::{Event, EventKind, Handoff, Summary};
use warmline::protocol::Provider;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn fake(State(seen): State<Seen>, uri: Uri, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().ends_with("/Calls.json") {
        let text = String::from_utf8_lossy(&body);
        // The handoff id is in the StatusCallback query (…handoff_id%3DhN%26…).
        if let Some(i) = text.find("handoff_id%3D") {
            let rest = &text[i + "handoff_id%3D".len()..];
            let id: String = rest.chars().take_while(|c| *c != '%').collect();
            seen.lock().unwrap().entry(id).or_insert_with(Instant::now);
        }
        return axum::Json(serde_json::json!({"sid": "CAagent"})).into_response();
    }
    axum::Json(serde_json::json!({"sid": "CAcaller"})).into_response()
}

fn handoff(i: usize) -> HandoffRequest {
    HandoffRequest {
        event: Event {
            call_id: format!("CA{i}"),
            t_ms: 10_000,
            kind: EventKind::Handoff(Handoff {
                handoff_id: format!("h{i}"),
                reasons: vec![],
                score: 0.9,
                summary: Summary {
                    whisper: "Caller is upset about a double charge.".into(),
                    ..Summary::default()
                },
                provider: Some(Provider::Twilio.into()),
                route: None,
                pre_call: false,
            }),
        },
        provider: Provider::Twilio,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let seen: Seen = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = l.local_addr().unwrap();
    let app = Router::new().fallback(fake).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(l, app).await });

    let dir = tempfile_dir();
    let cfg = BridgeConfig {
        outbox_dir: dir.clone(),
        queue_capacity: n.max(1),
        twilio: Some(TwilioConfig {
            api_base: format!("http://{api}"),
            caller_id: Some("+15550000000".into()),
            callback_base: Some("http://127.0.0.1:9".into()),
            ..TwilioConfig::new("AC1", "tok", "+15551112222")
        }),
        ..BridgeConfig::default()
    };
    let (tx, mut rx) = mpsc::channel::<Event>(n.max(1024));
    let (bridge, task) = Bridge::start(cfg.clone(), tx.clone()).await.unwrap();
    let (warm, warm_task) = WarmTransfers::start(&cfg, reqwest::Client::new(), tx)
        .await
        .unwrap();
    let w = warm.clone();
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            w.on_event(&e);
        }
    });
    let mut decided = HashMap::new();
    for i in 0..n {
        let req = handoff(i);
        decided.insert(format!("h{i}"), Instant::now());
        warm.register(&req, &cfg);
        bridge.submit(req).await.unwrap();
    }
    let start = Instant::now();
    while seen.lock().unwrap().len() < n && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let mut ms: Vec<f64> = seen
        .iter()
        .filter_map(|(id, t)| Some(t.duration_since(*decided.get(id)?).as_secs_f64() * 1000.0))
        .collect();
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "handoffs {n}, agent legs requested {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    task.shutdown(Duration::from_secs(1)).await;
    if let Some(t) = warm_task {
        t.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warmline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
