//! The live ingest path end to end: every provider's real wire format in, decoded audio and
//! media clock checked sample for sample; the bad-input matrix; isolation between calls.

use crate::common::*;
use futures_util::SinkExt as _;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use warmline::codec::Codec;
use warmline::event::{EventKind, Track};
use warmline::protocol::{Provider, RenderSpec, WireMessage};
use warmline::synth::{Segment, speech};

fn voice(seconds: f32, rate: u32, seed: u64) -> Vec<i16> {
    speech(&[Segment::calm(seconds, 140.0)], rate, seed)
}

fn ended(events: &[warmline::event::Event]) -> warmline::event::CallEnded {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallEnded(c) => Some(c.clone()),
            _ => None,
        })
        .expect("call_ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_streams_decode_sample_for_sample() {
    let server = TestServer::start().await;
    let cases: Vec<(Provider, Codec, u32)> = vec![
        (Provider::Twilio, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Mulaw, 8000),
        (Provider::Telnyx, Codec::Alaw, 8000),
        (Provider::Telnyx, Codec::L16, 16000),
        (Provider::Plivo, Codec::L16, 8000),
        (Provider::Plivo, Codec::Mulaw, 8000),
        (Provider::Exotel, Codec::L16, 8000),
        (Provider::Exotel, Codec::L16, 24000),
        (Provider::Vonage, Codec::L16, 16000),
        (Provider::Vonage, Codec::L16, 8000),
    ];
    for (i, (provider, codec, rate)) in cases.into_iter().enumerate() {
        let call_id = format!("call-{}-{}-{rate}-{i}", provider.name(), codec.name());
        let pcm = voice(2.0, rate, i as u64 + 1);
        let mut spec = RenderSpec::new(&call_id, codec, rate);
        if provider == Provider::Exotel {
            spec.chunk_ms = 100;
        }
        let msgs = provider.render(&spec, &pcm, None);
        assert!(!msgs.is_empty(), "{provider} renders nothing");
        let mut ws = connect(&server, provider.name()).await;
        for m in &msgs {
            ws.send(to_ws(m)).await.unwrap();
        }
        if provider == Provider::Vonage {
            // Vonage has no stop message: the call ends when the socket closes.
            ws.close(None).await.unwrap();
        }
        let code = close_code(&mut ws).await;
        let events = server.wait_ended(&call_id).await;
        let got = server.audio(&call_id, Track::Caller);
        let want = round_trip(codec, &pcm);
        assert_eq!(
            got.len(),
            want.len(),
            "{provider} {codec:?} {rate}: sample count"
        );
        assert!(
            got == want,
            "{provider} {codec:?} {rate}: decoded audio differs from the source"
        );
        let c = ended(&events);
        assert_eq!(
            c.duration_ms, 2000,
            "{provider} {codec:?} {rate}: media clock"
        );
        assert_eq!(c.dropped_frames, 0);
        if spec.send_stop && provider != Provider::Vonage {
            assert_eq!(
                code,
                Some(CloseCode::Normal),
                "{provider}: close after stop"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_tracks_stay_apart() {
    let server = TestServer::start().await;
    let caller = voice(1.0, 8000, 1);
    let agent = speech(&[Segment::calm(1.0, 220.0)], 8000, 2);
    let msgs = Provider::Twilio.render(
        &RenderSpec::new("CAboth", Codec::Mulaw, 8000),
        &caller,
        Some(&agent),
    );
    let mut ws = connect(&server, "twilio").await;
    send_all(&mut ws, &msgs).await;
    server.wait_ended("CAboth").await;
    assert_eq!(
        server.audio("CAboth", Track::Caller),
        round_trip(Codec::Mulaw, &caller)
    );
    assert_eq!(
        server.audio("CAboth", Track::Agent),
        round_trip(Codec::Mulaw, &agent)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_just_closes_is_a_normal_end() {
    let server = TestServer::start().await;
    let pcm = voice(1.0, 8000, 3);
    let mut spec = RenderSpec::new("CAnostop", Codec::Mulaw, 8000);
    spec.send_stop = false;
    let msgs = Provider::Twilio.render(&spec, &pcm, None);
    let mut ws = connect(&server, "twilio").await;
    for m in &msgs {
        ws.send(to_ws(m)).await.unwrap();
    }
    ws.close(None).await.unwrap();
    let events = server.wait_ended("CAnostop").await;
    let c = ended(&events);
    assert_eq!((c.reason.as_str(), c.duration_ms), ("closed", 1000));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_streams_one_sends_garbage() {
    let server = TestServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let url_server = &server;
        let mut ws = connect(url_server, "twilio").await;
        let call_id = format!("CAconc{i:02}");
        let pcm = voice(3.0, 8000, 100 + i);
        let mut msgs =
            Provider::Twilio.render(&RenderSpec::new(&call_id, Codec::Mulaw, 8000), &pcm, None);
        if i == 7 {
            let half = msgs.len() / 2;
            msgs.truncate(half);
            msgs.push(WireMessage::Text(
                "{\"event\":\"media\",\"media\":{garbage".into(),
            ));
        }
        tasks.push(tokio::spawn(async move {
            for m in &msgs {
                if ws.send(to_ws(m)).await.is_err() {
                    break;
                }
                // Interleave the streams.
                tokio::task::yield_now().await;
            }
            (call_id, pcm, close_code(&mut ws).await)
        }));
    }
    for t in tasks {
        let (call_id, pcm, code) = t.await.unwrap();
        let events = server.wait_ended(&call_id).await;
        let c = ended(&events);
        if call_id == "CAconc07" {
            assert_eq!(code, Some(CloseCode::Invalid), "garbage closes with 1007");
            assert_eq!(c.reason, "protocol_error");
        } else {
            assert_eq!(code, Some(CloseCode::Normal), "{call_id}");
            assert_eq!(
                server.audio(&call_id, Track::Caller),
                round_trip(Codec::Mulaw, &pcm),
                "{call_id}"
            );
            assert_eq!(c.duration_ms, 3000, "{call_id}");
        }
    }
    server.stop().await;
}

/// One row of the bad-input matrix: what is sent, and the close code expected.
async fn expect_close(server: &TestServer, provider: &str, msgs: Vec<Message>, want: CloseCode) {
    let mut ws = connect(server, provider).await;
    for m in msgs {
        if ws.send(m).await.is_err() {
            break;
        }
    }
    let got = close_code(&mut ws).await;
    assert_eq!(got, Some(want), "{provider}: expected close {want:?}");
}

fn twilio_start(call: &str) -> String {
    let spec = RenderSpec::new(call, Codec::Mulaw, 8000);
    let msgs = Provider::Twilio.render(&spec, &[0i16; 160], None);
    match &msgs[1] {
        WireMessage::Text(t) => t.clone(),
        WireMessage::Binary(_) => unreachable!(),
    }
}

fn twilio_media(payload: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_matrix() {
    let mut cfg = test_config();
    cfg.server.idle_timeout_ms = 300;
    cfg.server.first_message_timeout_ms = 300;
    let server = TestServer::with_config(cfg).await;
    let t = |s: &str| Message::text(s.to_owned());

    // Malformed JSON.
    expect_close(&server, "twilio", vec![t("{not json")], CloseCode::Invalid).await;
    // Media before start.
    expect_close(
        &server,
        "twilio",
        vec![t(&twilio_media("//8="))],
        CloseCode::Policy,
    )
    .await;
    // Duplicate start.
    expect_close(
        &server,
        "twilio",
        vec![t(&twilio_start("CAdup1")), t(&twilio_start("CAdup1"))],
        CloseCode::Policy,
    )
    .await;
    // Bad base64.
    expect_close(
        &server,
        "twilio",
        vec![t(&twilio_start("CAb64")), t(&twilio_media("@@@@"))],
        CloseCode::Invalid,
    )
    .await;
    // Unknown codec.
    expect_close(
        &server,
        "twilio",
        vec![t(
            &twilio_start("CAopus").replace("audio/x-mulaw", "audio/opus")
        )],
        CloseCode::Unsupported,
    )
    .await;
    // Binary frame on a JSON protocol.
    expect_close(
        &server,
        "twilio",
        vec![Message::binary(vec![1u8, 2, 3])],
        CloseCode::Unsupported,
    )
    .await;
    // A 10 MB message.
    expect_close(
        &server,
        "twilio",
        vec![t(&"x".repeat(10 * 1024 * 1024))],
        CloseCode::Size,
    )
    .await;
    // Odd-length L16 (Plivo streams L16 by default).
    let plivo = Provider::Plivo.render(
        &RenderSpec::new("plivo-odd", Codec::L16, 8000),
        &[0i16; 160],
        None,
    );
    let WireMessage::Text(plivo_start) = &plivo[0] else {
        panic!()
    };
    let odd = warmline::protocol::WireMessage::Text(
        r#"{"event":"media","sequenceNumber":2,"streamId":"s","media":{"track":"inbound","timestamp":"1","chunk":1,"payload":"AAEC"}}"#.into(),
    );
    let WireMessage::Text(odd) = odd else {
        panic!()
    };
    expect_close(
        &server,
        "plivo",
        vec![t(plivo_start), t(&odd)],
        CloseCode::Invalid,
    )
    .await;
    // Text that is not Vonage JSON on Vonage's binary audio protocol.
    expect_close(
        &server,
        "vonage",
        vec![t("this is not json")],
        CloseCode::Invalid,
    )
    .await;
    // A sender that stalls after start: idle timeout.
    expect_close(
        &server,
        "twilio",
        vec![t(&twilio_start("CAstall"))],
        CloseCode::from(4408),
    )
    .await;
    // A sender that never says anything: first-message timeout.
    expect_close(&server, "twilio", vec![], CloseCode::from(4408)).await;

    // Unknown event: skipped, the call carries on to a normal stop.
    let pcm = voice(1.0, 8000, 9);
    let mut msgs = Provider::Twilio.render(
        &RenderSpec::new("CAunknown", Codec::Mulaw, 8000),
        &pcm,
        None,
    );
    msgs.insert(
        3,
        WireMessage::Text(r#"{"event":"somethingNew","x":1}"#.into()),
    );
    let mut ws = connect(&server, "twilio").await;
    assert_eq!(send_all(&mut ws, &msgs).await, Some(CloseCode::Normal));
    assert_eq!(
        server.audio("CAunknown", Track::Caller),
        round_trip(Codec::Mulaw, &pcm)
    );

    // Abrupt TCP close mid-message: write half a frame on a raw socket and drop it.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut ws = connect(&server, "twilio").await;
        ws.send(Message::text(twilio_start("CAabrupt")))
            .await
            .unwrap();
        let tcp = match ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(s) => s,
            _ => unreachable!(),
        };
        // A masked text frame header announcing 1000 bytes, then only 10.
        tcp.write_all(&[0x81, 0xFE, 0x03, 0xE8, 1, 2, 3, 4])
            .await
            .unwrap();
        tcp.write_all(&[0u8; 10]).await.unwrap();
        drop(ws);
        let events = server.wait_ended("CAabrupt").await;
        assert!(matches!(
            ended(&events).reason.as_str(),
            "transport_error" | "closed"
        ));
    }

    // The server still serves after all of that.
    let resp = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in [
        "malformed",
        "media_before_start",
        "duplicate_start",
        "bad_base64",
        "unsupported_codec",
        "unexpected_binary",
        "message_too_big",
        "bad_payload",
        "idle_timeout",
        "first_message_timeout",
        "unknown_event",
    ] {
        assert!(
            metrics.contains(&format!("kind=\"{kind}\"")),
            "metrics lack {kind}:\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_without_valid_credentials_are_refused() {
    let server = TestServer::start().await;
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    };
    // Twilio: missing and wrong signature.
    let url = server.url("twilio");
    let req = url.as_str().into_client_request().unwrap();
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 401);
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "x-twilio-signature",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().unwrap(),
    );
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 403);
    // Signed for another URL.
    let mut req = url.as_str().into_client_request().unwrap();
    let sig = warmline::server::auth::twilio_signature(
        TWILIO_TOKEN,
        "wss://elsewhere.example/v1/media/twilio",
        &[],
    );
    req.headers_mut()
        .insert("x-twilio-signature", sig.parse().unwrap());
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 403);
    // Token providers.
    let url = server.url("telnyx");
    let req = url.as_str().into_client_request().unwrap();
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 401);
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 403);
    // Unknown provider.
    let req = server.url("skype").into_client_request().unwrap();
    assert_eq!(status(tokio_tungstenite::connect_async(req).await), 404);
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("warmline_auth_rejections_total{provider=\"twilio\",reason=\"invalid\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_past_max_calls() {
    let mut cfg = test_config();
    cfg.server.max_calls = 2;
    let server = TestServer::with_config(cfg).await;
    let _a = connect(&server, "telnyx").await;
    let _b = connect(&server, "telnyx").await;
    let mut req = server.url("telnyx").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    drop(_a);
    // The slot frees once the first call's task ends.
    let mut ok = false;
    for _ in 0..100 {
        let mut req = server.url("telnyx").into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        if tokio_tungstenite::connect_async(req).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed slot admits a new call");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_api_and_call_list() {
    let server = TestServer::start().await;
    let pcm = voice(2.0, 8000, 5);
    let msgs = Provider::Twilio.render(&RenderSpec::new("CAlist", Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(&server, "twilio").await;
    // Everything but stop, so the call stays active.
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let mut listed = serde_json::Value::Null;
    for _ in 0..100 {
        listed = http
            .get(format!("{base}/v1/calls"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let call = &listed[0];
    assert_eq!(call["call_id"], "CAlist");
    assert_eq!(call["provider"], "twilio");
    assert!(call["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(call["handoff"].is_null());
    let ok = http
        .post(format!("{base}/v1/calls/CAlist/transcript"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"speaker":"caller","text":"hello","final":true,"confidence":0.9}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let unknown = http
        .post(format!("{base}/v1/calls/nope/transcript"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"speaker":"caller","text":"hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = http
        .post(format!("{base}/v1/calls/CAlist/transcript"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"speaker\":\"bob\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_transcript");
    ws.send(to_ws(msgs.last().unwrap())).await.unwrap();
    server.wait_ended("CAlist").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_calls_with_their_bookkeeping() {
    let server = TestServer::start().await;
    let pcm = voice(1.0, 8000, 6);
    let msgs = Provider::Twilio.render(&RenderSpec::new("CAshut", Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(&server, "twilio").await;
    for m in &msgs[..20] {
        ws.send(to_ws(m)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = server.events.clone();
    let state = server.state.clone();
    state.shutdown_token().cancel();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
    server.stop().await;
    let ev = events.lock().unwrap();
    let c = ev
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallEnded(c) if e.call_id == "CAshut" => Some(c.clone()),
            _ => None,
        })
        .expect("call_ended on shutdown");
    assert_eq!(c.reason, "shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_page_and_event_stream_are_served() {
    let server = TestServer::start().await;
    let base = format!("http://{}", server.addr);
    let page = reqwest::get(format!("{base}/?token={TOKEN}"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("warmline"));
    let sse = reqwest::get(format!("{base}/v1/events?token={TOKEN}"))
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    assert!(
        sse.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(sse);
    server.stop().await;
}
