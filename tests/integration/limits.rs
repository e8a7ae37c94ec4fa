//! Resource bounds on the media path (issue #16): absolute start deadline, an idle timeout that
//! only media resets, pacing of streams that run ahead of wall-clock time, and bounded
//! transcript queues, each against the real gateway on a loopback port.

use crate::common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use warmline::codec::Codec;
use warmline::event::EventKind;
use warmline::protocol::{Provider, RenderSpec, WireMessage};

/// Sends `keepalive` (if any) and a ping every 50 ms, answering the server's pings (by reading),
/// until the server closes; returns its close code and reason, or `None` after 5 s.
async fn keep_alive(mut ws: Ws, keepalive: Option<String>) -> Option<(CloseCode, String)> {
    let run = async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(k) = &keepalive
                        && ws.send(Message::text(k.clone())).await.is_err()
                    {
                        return None;
                    }
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return None;
                    }
                }
                m = ws.next() => match m {
                    Some(Ok(Message::Close(Some(f)))) => return Some((f.code, f.reason.to_string())),
                    Some(Ok(_)) => {}
                    _ => return None,
                },
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap_or(None)
}

fn twilio_call(call: &str, seconds: f32) -> Vec<WireMessage> {
    let pcm: Vec<i16> = (0..(seconds * 8000.0) as usize)
        .map(|i| ((i as f32 * 0.07).sin() * 6000.0) as i16)
        .collect();
    Provider::Twilio.render(&RenderSpec::new(call, Codec::Mulaw, 8000), &pcm, None)
}

fn text(m: &WireMessage) -> String {
    match m {
        WireMessage::Text(t) => t.clone(),
        WireMessage::Binary(_) => unreachable!("twilio is JSON"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_answer_pings_but_never_start_are_closed_and_free_their_slots() {
    // Issue #16: pongs reset the start deadline, so max_calls such sockets held every slot.
    let mut cfg = test_config();
    cfg.server.max_calls = 2;
    cfg.server.first_message_timeout_ms = 300;
    cfg.server.ping_interval_ms = 50;
    let server = TestServer::with_config(cfg).await;
    let squatters = [
        connect(&server, "twilio").await,
        connect(&server, "twilio").await,
    ];
    let closes = futures_util::future::join_all(squatters.map(|ws| keep_alive(ws, None))).await;
    for c in closes {
        let (code, reason) = c.expect("closed at the start deadline");
        assert_eq!(code, CloseCode::from(4408));
        assert!(
            reason.contains("no start message within 300 ms"),
            "{reason}"
        );
    }
    // The slots are free again (once the closed tasks finish their teardown): a real call is
    // admitted and runs to its stop.
    let msgs = twilio_call("CAafter", 0.5);
    let mut ws = None;
    for _ in 0..150 {
        let url = server.url("twilio");
        let mut req = url.as_str().into_client_request().unwrap();
        let sig = warmline::server::auth::twilio_signature(TWILIO_TOKEN, &url, &[]);
        req.headers_mut()
            .insert("x-twilio-signature", sig.parse().unwrap());
        if let Ok((w, _)) = tokio_tungstenite::connect_async(req).await {
            ws = Some(w);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = ws.expect("a slot frees within 3 s of the squatters' close");
    assert_eq!(send_all(&mut ws, &msgs).await, Some(CloseCode::Normal));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_media_keepalives_do_not_reset_the_idle_timeout() {
    let mut cfg = test_config();
    cfg.server.idle_timeout_ms = 300;
    cfg.server.ping_interval_ms = 50;
    let server = TestServer::with_config(cfg).await;
    let msgs = twilio_call("CAidle", 0.2);
    let mut ws = connect(&server, "twilio").await;
    // connected, start, one media chunk; then only marks and pings.
    for m in &msgs[..3] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let mark =
        r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{"name":"keepalive"}}"#;
    let (code, reason) = keep_alive(ws, Some(mark.to_owned()))
        .await
        .expect("closed at the idle timeout");
    assert_eq!(code, CloseCode::from(4408));
    assert!(reason.contains("no media for 300 ms"), "{reason}");
    let ended = server.wait_ended("CAidle").await;
    let reason = ended.iter().find_map(|e| match &e.kind {
        EventKind::CallEnded(c) => Some(c.reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("idle_timeout"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_non_media_messages_still_meets_the_idle_timeout() {
    // The read loop polls the socket first: a peer that never lets it run dry must still be
    // timed out (the deadline is checked at every turn, not only when the socket is empty).
    let mut cfg = test_config();
    cfg.server.idle_timeout_ms = 300;
    let server = TestServer::with_config(cfg).await;
    let msgs = twilio_call("CAflood", 0.2);
    let ws = connect(&server, "twilio").await;
    let (mut tx, mut rx) = ws.split();
    for m in &msgs[..3] {
        tx.send(to_ws(m)).await.unwrap();
    }
    let mark = r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{"name":"flood"}}"#;
    // As fast as the socket takes them, 500 per write, until the gateway closes.
    let flood = tokio::spawn(async move {
        'flood: for _ in 0..100_000 {
            for _ in 0..500 {
                if tx.feed(Message::text(mark)).await.is_err() {
                    break 'flood;
                }
            }
            if tx.flush().await.is_err() {
                break;
            }
        }
    });
    let flooding = Instant::now();
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = rx.next().await {
            if let Ok(Message::Close(Some(f))) = m {
                return Some((f.code, f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed within 10 s")
    .expect("a close frame");
    assert_eq!(close.0, CloseCode::from(4408));
    assert!(close.1.contains("no media for 300 ms"), "{}", close.1);
    // Ten times the timeout: a functional bound (the deadline fired while the flood went on),
    // not a speed figure. Before the per-turn check it came only when the socket happened to
    // run dry (seconds later, or never under a faster sender).
    let waited = flooding.elapsed();
    eprintln!("closed after {waited:?}");
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    flood.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_running_ahead_of_wall_clock_time_is_paced() {
    // 1.5 s of audio sent at once with a 0.5 s lead: the gateway reads the last second no faster
    // than real time. A lower bound on elapsed time only: a slow machine cannot fail it.
    let mut cfg = test_config();
    cfg.server.max_media_lead_s = 0.5;
    let server = TestServer::with_config(cfg).await;
    let msgs = twilio_call("CApaced", 1.5);
    let mut ws = connect(&server, "twilio").await;
    let sent = Instant::now();
    assert_eq!(send_all(&mut ws, &msgs).await, Some(CloseCode::Normal));
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "1.5 s of media with a 0.5 s lead took only {elapsed:?}"
    );
    assert!(server.state.metrics().media_lead_pauses.get() > 0);
    // Nothing was dropped on the way: backpressure, not loss.
    assert_eq!(
        server
            .audio("CApaced", warmline::event::Track::Caller)
            .len(),
        12_000
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_lines_are_bounded_per_call() {
    // Issue #16: lines with a future t_ms waited in an unbounded queue (10,000 x 16 KiB lines
    // added 153 MB to one call).
    let mut cfg = test_config();
    cfg.server.max_transcript_lead_ms = 5_000;
    cfg.server.max_pending_transcript_lines = 2;
    let server = TestServer::with_config(cfg).await;
    let msgs = twilio_call("CAlines", 0.2);
    let mut ws = connect(&server, "twilio").await;
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/calls/CAlines/transcript", server.addr);
    let post = |t_ms: u64| {
        http.post(&url)
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"speaker":"caller","text":"hello there","t_ms":t_ms}))
            .send()
    };
    // Wait for the call to be registered.
    let mut status = 404;
    for _ in 0..250 {
        status = post(4_000).await.unwrap().status().as_u16();
        if status != 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 202);
    // Far ahead of the media clock: refused, naming the limit.
    let far = post(60_000).await.unwrap();
    assert_eq!(far.status(), 400);
    let body: serde_json::Value = far.json().await.unwrap();
    assert_eq!(body["error"], "transcript_too_far_ahead");
    let detail = body.to_string();
    assert!(
        detail.contains("server.max_transcript_lead_ms = 5000"),
        "{detail}"
    );
    // Within the lead but beyond the per-call count: the call drops the extra lines.
    for t in [4_100, 4_200, 4_300] {
        assert_eq!(post(t).await.unwrap().status(), 202);
    }
    let dropped = &server.state.metrics().transcript_lines_dropped;
    for _ in 0..250 {
        if dropped.get() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dropped.get(), 2);
    let stop = text(msgs.last().unwrap());
    ws.send(Message::text(stop)).await.unwrap();
    server.wait_ended("CAlines").await;
    server.stop().await;
}
