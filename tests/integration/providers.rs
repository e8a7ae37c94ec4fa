//! Provider adapters through the real server: call-id validation at `start` (issue 16, defect
//! 7) and, per added platform, a synthesised call streamed over a real WebSocket that hands off.

use crate::common::{TOKEN, TestServer, connect, to_ws};
use futures_util::{SinkExt as _, StreamExt as _};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use warmline::codec::Codec;
use warmline::protocol::{Provider, RenderSpec, WireMessage};

/// Sends `msgs` and returns the server's close code and reason.
async fn close_of(
    server: &TestServer,
    provider: Provider,
    msgs: &[WireMessage],
) -> (CloseCode, String) {
    let mut ws = connect(server, provider.name()).await;
    for m in msgs {
        if ws.send(to_ws(m)).await.is_err() {
            break;
        }
    }
    let read = async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(Some(f))) = m {
                return Some((f.code, f.reason.to_string()));
            }
            if m.is_err() {
                return None;
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
        .expect("the server closes with a close frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_call_id_is_refused_with_1008_and_a_reason_for_every_provider() {
    let server = TestServer::start().await;
    for provider in Provider::ALL {
        let spec = RenderSpec::new("CA1\n2026-12-06T00:00:00Z INFO forged", Codec::L16, 8000);
        let msgs = provider.render(&spec, &[0i16; 1600], None);
        let (code, reason) = close_of(&server, provider, &msgs).await;
        assert_eq!(code, CloseCode::Policy, "{provider}: {reason}");
        assert!(
            reason.contains("call id has byte 0x0a at offset 3"),
            "{provider}: {reason}"
        );
        assert!(!reason.contains("forged"), "{provider}: {reason}");
    }
    // No call was registered under the forged id.
    assert!(
        server
            .events_for("CA1\n2026-12-06T00:00:00Z INFO forged")
            .is_empty()
    );
    server.stop().await;
}

/// Streams a synthesised, escalating call as `provider` sends it, posts the caller asking for a
/// human through the transcript API once the call is registered, and expects a handoff.
async fn streams_and_hands_off(provider: Provider, codec: Codec, rate: u32, stereo: bool) {
    use warmline::event::EventKind;
    use warmline::synth::{Segment, speech};
    let server = TestServer::start().await;
    let call = format!("{}-e2e-1", provider.name());
    let caller = speech(
        &[Segment::calm(4.0, 120.0), Segment::agitated(6.0, 120.0)],
        rate,
        11,
    );
    let agent = speech(&[Segment::calm(3.0, 180.0)], rate, 12);
    let msgs = provider.render(
        &RenderSpec::new(&call, codec, rate),
        &caller,
        stereo.then_some(&agent[..]),
    );
    let mut ws = connect(&server, provider.name()).await;
    ws.send(to_ws(&msgs[0])).await.expect("start");
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/calls/{call}/transcript", server.addr);
    let mut posted = false;
    for _ in 0..250 {
        let r = http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"t_ms":500,"speaker":"caller","text":"This is useless, get me a human.","final":true}))
            .send()
            .await
            .expect("post");
        if r.status() == 202 {
            posted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(posted, "{provider}: the call never registered");
    let r = http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"t_ms":1500,"speaker":"caller","text":"I said get me a human, a real person, now!","final":true}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    for m in &msgs[1..] {
        ws.send(to_ws(m)).await.expect("media");
    }
    ws.close(None).await.ok();
    let events = server.wait_ended(&call).await;
    let started = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallStarted(c) => Some(c.clone()),
            _ => None,
        })
        .expect("call_started");
    assert_eq!(started.provider.name(), provider.name());
    assert_eq!(
        started.tracks.len(),
        if stereo { 2 } else { 1 },
        "{provider}"
    );
    let handoff = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{provider}: no handoff in {events:#?}"));
    assert_eq!(handoff.provider.and_then(|p| p.provider()), Some(provider));
    let heard = server.audio(&call, warmline::event::Track::Caller);
    assert!(
        heard.len() >= caller.len() * 9 / 10,
        "{provider}: {} samples",
        heard.len()
    );
    if stereo {
        assert!(
            !server
                .audio(&call, warmline::event::Track::Agent)
                .is_empty()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeswitch_audio_fork_stereo_call_hands_off() {
    streams_and_hands_off(Provider::Freeswitch, Codec::L16, 16000, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asterisk_chan_websocket_call_hands_off() {
    streams_and_hands_off(Provider::Asterisk, Codec::Mulaw, 8000, false).await;
}
