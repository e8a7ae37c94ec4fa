//! The HTTP/auth/WebSocket edge under attack (issue 16): an API that is never open with
//! `[auth] required`, JSON-only posts, dashboard security headers, slowloris and connection
//! floods, RFC 6455 close frames for protocol violations, and Twilio `start` checks that a
//! replayed upgrade signature cannot pass. Every test drives the real gateway over loopback
//! with raw sockets where a library client would hide the bytes.

use crate::common::*;
use futures_util::SinkExt as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use warmline::codec::Codec;
use warmline::event::EventKind;
use warmline::protocol::{Provider, RenderSpec};

fn twilio_only() -> warmline::config::Config {
    let mut cfg = test_config();
    cfg.auth.token = None;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_the_twilio_token_the_api_is_closed_not_open() {
    let server = TestServer::with_config(twilio_only()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    for path in ["/", "/v1/calls", "/v1/handoffs", "/v1/events"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // The forged "get me a human" of the issue.
    let r = http
        .post(format!("{base}/v1/calls/CAvictim/transcript"))
        .json(&serde_json::json!({"speaker":"caller","text":"get me a human agent now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("[auth.token]"),
        "{body}"
    );
    // Health and metrics stay reachable.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[test]
fn start_up_refuses_an_unprotected_api_on_a_public_address() {
    let mut cfg = twilio_only();
    cfg.server.listen = "0.0.0.0:8080".into();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("auth.token.value"), "{err}");
    // Loopback starts, with the API closed.
    cfg.server.listen = "127.0.0.1:8080".into();
    cfg.validate().unwrap();
    assert!(cfg.api_protected());
    // `protect_api = false` cannot open it while auth is required.
    let mut cfg = test_config();
    cfg.auth.protect_api = Some(false);
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("auth.protect_api"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_posts_must_be_json_and_pages_carry_security_headers() {
    let server = TestServer::start().await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let line = r#"{"speaker":"caller","text":"get me a human agent now"}"#;
    // What a cross-site form or `fetch(no-cors)` can send without asking.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = http
            .post(format!("{base}/v1/calls/CAx/transcript"))
            .bearer_auth(TOKEN)
            .body(line);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unsupported_media_type");
    }
    let r = http
        .post(format!("{base}/v1/calls/CAx/transcript"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "JSON passes the check (no such call)");

    let page = http
        .get(format!("{base}/?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    server.stop().await;
}

/// Reads until the peer closes; `true` when it did within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn healthz_on(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"ok\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("healthz answered")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed_after_the_header_timeout() {
    let mut cfg = test_config();
    cfg.server.header_read_timeout_ms = 300;
    let server = TestServer::with_config(cfg).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-a: ")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    // A few header bytes now and then do not extend the deadline.
    let dribble = async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
        closed_within(&mut slow, Duration::from_secs(5)).await
    };
    assert!(dribble.await, "a half-sent request head stays open");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "a silent connection stays open"
    );
    // A keep-alive connection is served, then closed once idle for the same time.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut kept).await.starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_connections_new_sockets_are_closed_and_admitted_ones_work() {
    let mut cfg = test_config();
    cfg.server.max_connections = Some(3);
    let server = TestServer::with_config(cfg).await;
    let mut admitted = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut admitted).await.starts_with("HTTP/1.1 200"));
    let mut idle1 = TcpStream::connect(server.addr).await.unwrap();
    let idle2 = TcpStream::connect(server.addr).await.unwrap();
    // Give the accept loop the two idle sockets before the flood.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..20 {
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)).await,
            "connection {i} beyond the cap was kept"
        );
    }
    assert!(healthz_on(&mut admitted).await.starts_with("HTTP/1.1 200"));
    let text = server.state.metrics().encode();
    assert!(
        text.contains("warmline_connections_refused_total 20"),
        "{text}"
    );
    assert!(text.contains("warmline_connections_open 3"), "{text}");
    // A closed connection frees its place.
    idle1.shutdown().await.unwrap();
    assert!(closed_within(&mut idle1, Duration::from_secs(2)).await);
    let mut next = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        if !closed_within(&mut s, Duration::from_millis(100)).await {
            next = Some(s);
            break;
        }
    }
    let mut next = next.expect("a place freed");
    assert!(healthz_on(&mut next).await.starts_with("HTTP/1.1 200"));
    drop(idle2);
    server.stop().await;
}

/// A raw WebSocket upgrade to `/v1/media/telnyx` with the bearer token; returns the socket
/// after the 101.
async fn raw_upgrade(server: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "GET /v1/media/telnyx HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "upgrade answered");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// A client frame: FIN, `opcode`, masked with a fixed key unless `masked` is false.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        f.push(mask_bit | payload.len() as u8);
    } else {
        f.push(mask_bit | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// The close code of the server's close frame, if one arrives before TCP ends.
async fn read_close_code(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            // Server frames are unmasked; a close frame's payload starts with the code.
            let mut at = 0;
            while buf.len() >= at + 2 {
                let len = usize::from(buf[at + 1] & 0x7f);
                if buf[at] & 0x0f == 0x8 && buf.len() >= at + 4 {
                    return;
                }
                at += 2 + len;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let mut at = 0;
    while buf.len() >= at + 2 {
        let len = usize::from(buf[at + 1] & 0x7f);
        if buf[at] & 0x0f == 0x8 && buf.len() >= at + 4 {
            return Some(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        }
        at += 2 + len;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_get_their_close_code_and_count_as_protocol_errors() {
    let server = TestServer::start().await;
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("unmasked text frame", frame(0x1, b"{}", false), 1002),
        (
            "invalid UTF-8 text",
            frame(0x1, &[0x7b, 0xff, 0xfe], true),
            1007,
        ),
        ("reserved opcode 0x3", frame(0x3, b"x", true), 1002),
        ("ping of 200 bytes", frame(0x9, &[0u8; 200], true), 1002),
        (
            "reserved bit set",
            {
                let mut f = frame(0x1, b"{}", true);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
    ];
    for (what, bytes, want) in &cases {
        let mut s = raw_upgrade(&server).await;
        s.write_all(bytes).await.unwrap();
        assert_eq!(read_close_code(&mut s).await, Some(*want), "{what}");
    }
    let text = server.state.metrics().encode();
    assert!(
        text.contains(&format!(
            "warmline_stream_errors_total{{kind=\"protocol_error\"}} {}",
            cases.len()
        )),
        "{text}"
    );
    assert!(!text.contains("kind=\"transport_error\""), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_twilio_signature_cannot_open_another_account_or_call() {
    let mut cfg = test_config();
    let tw = cfg.auth.twilio.as_mut().unwrap();
    tw.account_sid = Some("AC00000000000000000000000000000000".into());
    tw.call_token_secret = Some("per-call-secret".into());
    let server = TestServer::with_config(cfg).await;
    let pcm = vec![0i16; 1600];
    let stream = |call: &str, token: Option<String>, account: Option<&str>| {
        let mut spec = RenderSpec::new(call, Codec::Mulaw, 8000);
        if let Some(t) = token {
            spec.custom_parameters
                .insert(warmline::server::auth::CALL_TOKEN_PARAMETER.into(), t);
        }
        let mut msgs = Provider::Twilio.render(&spec, &pcm, None);
        if let Some(acct) = account {
            for m in &mut msgs {
                if let warmline::protocol::WireMessage::Text(t) = m {
                    *t = t.replace("AC00000000000000000000000000000000", acct);
                }
            }
        }
        msgs
    };
    let token = |call: &str| warmline::server::auth::call_token("per-call-secret", call);
    let cases = [
        ("no token", stream("CAa", None, None)),
        (
            "another call's token",
            stream("CAb", Some(token("CAvictim")), None),
        ),
        (
            "another account",
            stream(
                "CAc",
                Some(token("CAc")),
                Some("AC99999999999999999999999999999999"),
            ),
        ),
    ];
    for (what, msgs) in &cases {
        let mut ws = connect(&server, "twilio").await;
        assert_eq!(
            send_all(&mut ws, msgs).await,
            Some(CloseCode::Policy),
            "{what}"
        );
    }
    // The real call, with its token, streams and ends normally; its handoff id is random.
    let mut ws = connect(&server, "twilio").await;
    let msgs = stream("CAok", Some(token("CAok")), None);
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let http = reqwest::Client::new();
    let mut accepted = false;
    for _ in 0..100 {
        let r = http
            .post(format!("http://{}/v1/calls/CAok/transcript", server.addr))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"speaker":"caller","text":"I want to speak to a human agent now","final":true}))
            .send()
            .await
            .unwrap();
        if r.status() == 202 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted, "transcript accepted for the started call");
    ws.send(to_ws(msgs.last().unwrap())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal));
    let events = server.wait_ended("CAok").await;
    let id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.handoff_id.clone()),
            _ => None,
        })
        .expect("handoff");
    assert_eq!(id.len(), 3 + 32, "{id}");
    assert_ne!(
        id,
        warmline::detect::policy::handoff_id("CAok", events_t(&events))
    );
    let text = server.state.metrics().encode();
    for reason in ["call_token_missing", "call_token_invalid", "account_sid"] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {text}"
        );
    }
    server.stop().await;
}

fn events_t(events: &[warmline::event::Event]) -> u64 {
    events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Handoff(_)))
        .map_or(0, |e| e.t_ms)
}
