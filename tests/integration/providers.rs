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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_audiohook_stereo_call_hands_off() {
    streams_and_hands_off(Provider::Genesys, Codec::Mulaw, 8000, true).await;
}

/// Genesys AudioHook with `[auth.audiohook]`: an unsigned or wrongly keyed upgrade is refused;
/// a signed one is answered in-band (`opened`, `pong`) and, once warmline decides the handoff,
/// gets the `disconnect` that hands the call back to the Architect flow with the handoff id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiohook_is_signed_answered_and_handed_back_to_the_flow() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use warmline::event::EventKind;
    use warmline::protocol::audiohook::sign;
    use warmline::synth::{Segment, speech};
    const KEY: &str = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";
    const SECRET: &str = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=";
    let mut cfg = crate::common::test_config();
    cfg.auth.audiohook = Some(warmline::config::AudioHookAuth {
        api_key: KEY.into(),
        client_secret: Some(SECRET.into()),
    });
    let server = TestServer::with_config(cfg).await;
    let url = server.url("genesys");
    let host = server.addr.to_string();
    let request = |key: &str, signed: bool| {
        let mut req = url.as_str().into_client_request().unwrap();
        let h = [
            ("host", host.as_str()),
            (
                "audiohook-organization-id",
                "d7934305-0972-4844-938e-9060eef73d05",
            ),
            (
                "audiohook-session-id",
                "30b0e395-84d3-4570-ac13-9a62d8f514c0",
            ),
            (
                "audiohook-correlation-id",
                "e160e428-53e2-487c-977d-96989bf5c99d",
            ),
            ("x-api-key", key),
        ];
        for (k, v) in &h[1..] {
            req.headers_mut().insert(*k, v.parse().unwrap());
        }
        if signed {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let (input, sig) = sign(&h, "/v1/media/genesys", key, SECRET, now).unwrap();
            req.headers_mut()
                .insert("signature-input", input.parse().unwrap());
            req.headers_mut().insert("signature", sig.parse().unwrap());
        }
        req
    };
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(
        status(tokio_tungstenite::connect_async(request(KEY, false)).await),
        401
    );
    assert_eq!(
        status(tokio_tungstenite::connect_async(request("other-key", true)).await),
        403
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request(KEY, true))
        .await
        .expect("a signed upgrade is accepted");

    let call = "090eaa2f-72fa-480a-83e0-8667ff89c0ec";
    let caller = speech(
        &[Segment::calm(3.0, 120.0), Segment::agitated(5.0, 120.0)],
        8000,
        21,
    );
    let agent = speech(&[Segment::calm(3.0, 180.0)], 8000, 22);
    let spec = RenderSpec {
        send_stop: false,
        ..RenderSpec::new(call, Codec::Mulaw, 8000)
    };
    let msgs = Provider::Genesys.render(&spec, &caller, Some(&agent));
    // `open` → `opened`; `ping` → `pong`.
    ws.send(to_ws(&msgs[0])).await.unwrap();
    let opened = read_text(&mut ws).await;
    assert_eq!(opened["type"], "opened", "{opened}");
    assert_eq!(opened["parameters"]["media"][0]["format"], "PCMU");
    let ping =
        serde_json::json!({"version": "2", "type": "ping", "seq": 2, "id": "s", "parameters": {}});
    ws.send(Message::text(ping.to_string())).await.unwrap();
    assert_eq!(read_text(&mut ws).await["type"], "pong");

    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/v1/calls/{call}/transcript", server.addr))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"t_ms": 500, "speaker": "caller",
            "text": "Stop. Get me a real person, a human agent, now!", "final": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    for m in &msgs[1..] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let disconnect = read_text(&mut ws).await;
    assert_eq!(disconnect["type"], "disconnect", "{disconnect}");
    let vars = &disconnect["parameters"]["outputVariables"];
    assert_eq!(vars["action"], "transfer");
    let close = serde_json::json!({"version": "2", "type": "close", "seq": 3, "id": "s", "parameters": {"reason": "end"}});
    ws.send(Message::text(close.to_string())).await.unwrap();
    assert_eq!(read_text(&mut ws).await["type"], "closed");
    let events = server.wait_ended(call).await;
    let handoff_id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.handoff_id.clone()),
            _ => None,
        })
        .expect("the handoff event");
    assert_eq!(vars["handoff_id"], handoff_id.as_str());
    server.stop().await;
}

/// The next text frame the server sends, as JSON.
async fn read_text(ws: &mut crate::common::Ws) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// FreeSWITCH's `mod_audio_fork` asks for the `audio.drachtio.org` subprotocol and its
/// libwebsockets drops an upgrade that does not select it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeswitch_upgrade_selects_the_drachtio_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let server = TestServer::start().await;
    for asked in ["audio.drachtio.org", "audiostream.drachtio.org"] {
        let mut req = server.url("freeswitch").into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        h.insert("sec-websocket-protocol", asked.parse().unwrap());
        let (_ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(asked)
        );
    }
    server.stop().await;
}
