//! One call path (issue #17): a recorded Twilio call with its transcript gives the same
//! events, field for field, through `replay` and through a real `serve` socket with the
//! transcript POSTed over HTTP. Only what the live path must make differently is normalised:
//! live handoff ids are random 128-bit values, replay's are derived from the call.

use crate::common::*;
use futures_util::SinkExt as _;
use std::path::Path;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;
use warmline::event::{Event, EventKind};
use warmline::pipeline::PipelineSettings;

fn demo(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(name)
}

fn normalised(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            if matches!(e.kind, EventKind::Handoff(_)) {
                v["handoff_id"] = "H".into();
            }
            v
        })
        .collect()
}

#[tokio::test]
async fn a_recorded_call_gives_the_same_events_live_and_in_replay() {
    let jsonl = demo("escalating.twilio.jsonl");
    let transcript = demo("escalating.transcript.jsonl");

    let server = TestServer::start().await;
    let cfg = test_config();
    let settings = Arc::new(PipelineSettings {
        playbook: Arc::new(cfg.playbook()),
        ..Default::default()
    });
    let replayed = warmline::replay::replay_file(&jsonl, Some(&transcript), None, &settings, false)
        .expect("replay");
    assert!(replayed.errors.is_empty(), "{:?}", replayed.errors);
    let call = replayed.call_id.clone();

    // Live: open the stream, hand over the whole transcript (each line waits in the call's
    // queue for the media clock to reach its t_ms), then the media as fast as it goes.
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines = text.lines();
    let mut ws = connect(&server, "twilio").await;
    for l in lines.by_ref().take(2) {
        ws.send(Message::Text(l.to_owned().into())).await.unwrap();
    }
    let http = reqwest::Client::new();
    let transcript_text = std::fs::read_to_string(&transcript).unwrap();
    for line in transcript_text.lines().filter(|l| !l.trim().is_empty()) {
        let mut status = 0;
        for _ in 0..200 {
            let r = http
                .post(format!("http://{}/v1/calls/{call}/transcript", server.addr))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(line.to_owned())
                .send()
                .await
                .unwrap();
            status = r.status().as_u16();
            if status != 404 {
                break;
            }
            // The start message is still on its way to the call task.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(status, 202, "transcript line refused: {line}");
    }
    for l in lines {
        ws.send(Message::Text(l.to_owned().into())).await.unwrap();
    }
    let live = server.wait_ended(&call).await;
    server.stop().await;

    let (a, b) = (normalised(&replayed.events), normalised(&live));
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!(
            "replay and serve differ at event {i} of {}/{}:\n replay: {}\n serve:  {}",
            a.len(),
            b.len(),
            a.get(i).map_or("(none)".into(), |v| v.to_string()),
            b.get(i).map_or("(none)".into(), |v| v.to_string()),
        );
    }
    assert!(
        live.iter().any(|e| matches!(e.kind, EventKind::Handoff(_))),
        "the demo call hands off"
    );
}
