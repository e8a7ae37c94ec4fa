//! The live ingest path on the shared recordings: all 24 recorded Twilio streams go through the
//! real gateway at once over real WebSockets; the decoded caller audio must equal the WAV
//! (already G.711 round-tripped) sample for sample, and the media clock must match its length.

use crate::common::data_dir;
use futures_util::SinkExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use warmline::event::{EventKind, Track};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_twilio_recordings_decode_sample_for_sample() {
    let data = data_dir();
    let index = std::fs::read_to_string(data.join("calls/index.csv")).unwrap();
    let rows: Vec<Vec<String>> = index
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 24);
    let tap: Arc<Mutex<HashMap<String, Vec<i16>>>> = Arc::default();
    let t = tap.clone();
    let settings = warmline::pipeline::PipelineSettings {
        audio_tap: Some(Arc::new(move |call: &str, track: Track, pcm: &[i16]| {
            if track == Track::Caller {
                t.lock()
                    .unwrap()
                    .entry(call.to_owned())
                    .or_default()
                    .extend_from_slice(pcm);
            }
        })),
        ..Default::default()
    };
    let mut cfg = warmline::config::Config::default();
    // Recordings are streamed as fast as they go.
    cfg.server.max_media_lead_s = 0.0;
    cfg.auth.token = Some(warmline::config::TokenAuth { value: "t".into() });
    cfg.auth.twilio = Some(warmline::config::TwilioAuth {
        auth_token: "tw".into(),
        ..Default::default()
    });
    let outbox = tempfile::tempdir().unwrap();
    cfg.bridge.outbox_dir = outbox.path().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = warmline::server::Gateway::start(cfg, settings)
        .await
        .unwrap();
    let state = gw.state().clone();
    let mut events = state.subscribe();
    let server = tokio::spawn(gw.serve(listener));
    let url = format!("ws://{addr}/v1/media/twilio");
    let mut tasks = Vec::new();
    for row in &rows {
        let jsonl = std::fs::read_to_string(data.join(&row[1])).unwrap();
        let mut req = url.as_str().into_client_request().unwrap();
        let sig = warmline::server::auth::twilio_signature("tw", &url, &[]);
        req.headers_mut()
            .insert("x-twilio-signature", sig.parse().unwrap());
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
                ws.send(Message::text(line.to_owned())).await.unwrap();
            }
            let _ = ws.close(None).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut durations = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while durations.len() < rows.len() {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("all calls end")
            .unwrap();
        if let EventKind::CallEnded(c) = &e.kind {
            assert_eq!(c.dropped_frames, 0, "{}", e.call_id);
            durations.insert(e.call_id.clone(), c.duration_ms);
        }
    }
    // Map call ids to rows through the start messages.
    for row in &rows {
        let jsonl = std::fs::read_to_string(data.join(&row[1])).unwrap();
        let start: serde_json::Value = jsonl
            .lines()
            .find(|l| l.contains("\"start\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap();
        let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
        let wav: Vec<i16> = hound::WavReader::open(data.join(&row[0]))
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        let got = tap
            .lock()
            .unwrap()
            .get(&call_id)
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.len(), wav.len(), "{}: sample count", row[0]);
        assert!(got == wav, "{}: decoded audio differs from the WAV", row[0]);
        let want_ms = wav.len() as u64 * 1000 / 8000;
        assert_eq!(durations[&call_id], want_ms, "{}: media clock", row[0]);
    }
    state.shutdown_token().cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
}
