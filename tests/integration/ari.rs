//! Asterisk ARI transfer through the real server: the bundled escalating call streamed over
//! `chan_websocket` and over AudioSocket hands off, and a fake ARI (a real HTTP server on
//! 127.0.0.1:0 that records every request) receives the two channel variables and then the
//! continue or redirect, with basic auth, on the call's channel, once. A 404 (channel gone)
//! fails the delivery at once; ARI down is retried until it is back.

use crate::audiosocket::{
    audiosocket_config, closed_by_server, demo_pcm, demo_transcript, dial, post_transcript,
};
use crate::common::{TestServer, connect, to_ws};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use futures_util::SinkExt as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use warmline::bridge::{AriMode, AsteriskConfig};
use warmline::codec::Codec;
use warmline::event::{Delivery, EventKind};
use warmline::protocol::audiosocket::{parse_uuid, render};
use warmline::protocol::{Provider, RenderSpec};

const USER: &str = "warmline";
const PASSWORD: &str = "ari-secret";

/// One request as the fake ARI saw it.
#[derive(Debug, Clone)]
struct AriReq {
    method: String,
    /// Raw (still percent-encoded) path.
    path: String,
    query: Vec<(String, String)>,
    authorization: String,
}

impl AriReq {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct FakeAri {
    reqs: Arc<Mutex<Vec<AriReq>>>,
    status: StatusCode,
}

async fn record(
    State(f): State<FakeAri>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> StatusCode {
    let query = reqwest::Url::parse(&format!("http://ari{uri}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    f.reqs.lock().unwrap().push(AriReq {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    });
    f.status
}

impl FakeAri {
    /// A fake ARI answering every request with `status`, on `listener`.
    fn serve(listener: tokio::net::TcpListener, status: StatusCode) -> Self {
        let f = FakeAri {
            reqs: Arc::default(),
            status,
        };
        let app = Router::new().fallback(record).with_state(f.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        f
    }

    async fn start(status: StatusCode) -> (Self, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (Self::serve(l, status), addr)
    }

    /// The requests once `n` have come (up to 10 s), then a little longer to catch extras.
    async fn settle(&self, n: usize) -> Vec<AriReq> {
        for _ in 0..500 {
            if self.reqs.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.reqs.lock().unwrap().clone()
    }
}

fn ari_config(api: SocketAddr, mode: AriMode) -> AsteriskConfig {
    let mut a = AsteriskConfig::new(&format!("http://{api}"), USER, PASSWORD, "agents");
    a.app = "warmline".into();
    match mode {
        AriMode::Continue => {
            a.extension = Some("support".into());
            a.priority = Some(1);
        }
        AriMode::Redirect => {
            a.mode = AriMode::Redirect;
            a.context = None;
            a.endpoint = Some("PJSIP/agent".into());
        }
    }
    a
}

fn gateway_config(api: SocketAddr, mode: AriMode) -> warmline::config::Config {
    let mut cfg = audiosocket_config();
    cfg.bridge.asterisk = Some(ari_config(api, mode));
    cfg.bridge.initial_backoff_ms = 50;
    cfg.bridge.max_backoff_ms = 200;
    cfg.bridge.request_timeout_ms = 2_000;
    cfg
}

/// Streams the demo call over `chan_websocket` as channel `call`, its transcript posted as it
/// goes, and returns the handoff id.
async fn chan_websocket_call(server: &TestServer, call: &str) -> String {
    let pcm = demo_pcm();
    let msgs = Provider::Asterisk.render(&RenderSpec::new(call, Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(server, "asterisk").await;
    ws.send(to_ws(&msgs[0])).await.expect("MEDIA_START");
    post_transcript(server, call, &demo_transcript()).await;
    for m in &msgs[1..] {
        if ws.send(to_ws(m)).await.is_err() {
            break;
        }
    }
    ws.close(None).await.ok();
    handoff_of(server, call).await
}

/// Streams the demo call over AudioSocket as UUID `call` and returns the handoff id.
async fn audiosocket_call(server: &TestServer, call: &str) -> String {
    let pcm = demo_pcm();
    let frames = render(&parse_uuid(call).unwrap(), 8000, 20, &pcm, true).unwrap();
    let mut tcp = dial(server).await;
    tcp.write_all(&frames[..2].concat()).await.unwrap();
    post_transcript(server, call, &demo_transcript()).await;
    tcp.write_all(&frames[2..].concat()).await.unwrap();
    assert!(closed_by_server(&mut tcp).await);
    handoff_of(server, call).await
}

async fn handoff_of(server: &TestServer, call: &str) -> String {
    let events = server.wait_ended(call).await;
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.handoff_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no handoff on {call}"))
}

/// The `asterisk` delivery verdict of `handoff_id` (delivered or failed), up to 10 s.
async fn verdict(server: &TestServer, handoff_id: &str) -> (&'static str, Delivery) {
    for _ in 0..500 {
        let found = server.events.lock().unwrap().iter().find_map(|e| {
            let (kind, d) = match &e.kind {
                EventKind::HandoffDelivered(d) => ("delivered", d),
                EventKind::HandoffFailed(d) => ("failed", d),
                _ => return None,
            };
            (d.handoff_id == handoff_id && d.target == "asterisk").then(|| (kind, d.clone()))
        });
        if let Some(v) = found {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no asterisk delivery verdict for {handoff_id}");
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// The exact sequence: `WARMLINE_HANDOFF_ID`, `WARMLINE_REASON`, then `last` on `channel`.
fn assert_sequence(reqs: &[AriReq], channel: &str, handoff_id: &str, last: &str) {
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    let base = format!("/ari/channels/{channel}");
    assert_eq!(
        paths,
        [
            format!("{base}/variable"),
            format!("{base}/variable"),
            format!("{base}/{last}")
        ],
        "{reqs:#?}"
    );
    for r in reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.authorization, basic());
    }
    assert_eq!(reqs[0].q("variable"), Some("WARMLINE_HANDOFF_ID"));
    assert_eq!(reqs[0].q("value"), Some(handoff_id));
    assert_eq!(reqs[1].q("variable"), Some("WARMLINE_REASON"));
    let reason = reqs[1].q("value").unwrap_or("");
    assert!(
        !reason.is_empty() && reason.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chan_websocket_handoff_sets_the_variables_then_continues_in_the_dialplan() {
    let (ari, api) = FakeAri::start(StatusCode::NO_CONTENT).await;
    let server = TestServer::with_config(gateway_config(api, AriMode::Continue)).await;
    // Asterisk channel ids carry a dot (`uniqueid`); `:` stays literal, as in every provider.
    let call = "1761245643.17";
    let hid = chan_websocket_call(&server, call).await;
    let reqs = ari.settle(3).await;
    assert_sequence(&reqs, call, &hid, "continue");
    assert_eq!(reqs[2].q("context"), Some("agents"));
    assert_eq!(reqs[2].q("extension"), Some("support"));
    assert_eq!(reqs[2].q("priority"), Some("1"));
    let (kind, d) = verdict(&server, &hid).await;
    assert_eq!((kind, d.attempts, d.status), ("delivered", 1, Some(204)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_handoff_redirects_the_channel_named_by_the_uuid() {
    let (ari, api) = FakeAri::start(StatusCode::NO_CONTENT).await;
    let server = TestServer::with_config(gateway_config(api, AriMode::Redirect)).await;
    let call = "5e0c1f7a-2b3d-4c8e-9f10-a1b2c3d4e5f6";
    let hid = audiosocket_call(&server, call).await;
    let reqs = ari.settle(3).await;
    assert_sequence(&reqs, call, &hid, "redirect");
    assert_eq!(reqs[2].q("endpoint"), Some("PJSIP/agent"));
    assert_eq!(verdict(&server, &hid).await.0, "delivered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_channel_fails_at_once_without_retries() {
    let (ari, api) = FakeAri::start(StatusCode::NOT_FOUND).await;
    let server = TestServer::with_config(gateway_config(api, AriMode::Continue)).await;
    let call = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let hid = audiosocket_call(&server, call).await;
    let (kind, d) = verdict(&server, &hid).await;
    assert_eq!((kind, d.attempts, d.status), ("failed", 1, Some(404)));
    assert!(
        d.error
            .as_deref()
            .unwrap_or("")
            .contains("channel not found"),
        "{d:?}"
    );
    // One request: the first variable; nothing after it, and no second attempt.
    let reqs = ari.settle(1).await;
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert!(reqs[0].path.ends_with("/variable"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_down_is_retried_until_it_comes_back() {
    // A port nobody listens on yet: attempts are refused until the fake ARI starts on it.
    let api = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = TestServer::with_config(gateway_config(api, AriMode::Continue)).await;
    let call = "8b2c3d4e-5f60-4b7c-9d8e-0f1a2b3c4d5e";
    let hid = audiosocket_call(&server, call).await;
    // Long enough for the first attempts (backoff 50 ms, doubling to 200 ms) to be refused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listener = tokio::net::TcpListener::bind(api).await.unwrap();
    let ari = FakeAri::serve(listener, StatusCode::NO_CONTENT);
    let (kind, d) = verdict(&server, &hid).await;
    assert_eq!(kind, "delivered", "{d:?}");
    assert!(d.attempts >= 2, "{d:?}");
    // Exactly one whole sequence reached ARI: the continue went out once.
    let reqs = ari.settle(3).await;
    assert_sequence(&reqs, call, &hid, "continue");
    server.stop().await;
}
