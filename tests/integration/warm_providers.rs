//! Warm transfer end to end for the Call Control providers: a real Telnyx call over the
//! WebSocket asks for a human; the gateway puts the caller on hold and dials the agent against a
//! fake Telnyx REST API, which records every request and plays Ed25519-signed webhooks back to
//! `POST /v1/providers/telnyx/webhook` as Telnyx would (answer, whisper ended, hang-up causes).
//! Each path (answered, no answer → next target, busy → queue, caller hangs up on hold, no
//! webhook at all → timeout) is checked by its exact requests, events, metrics and outcome.

use crate::common::*;
use crate::warm::{metric, wait_event};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use base64::Engine as _;
use futures_util::SinkExt as _;
use ring::signature::KeyPair as _;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warmline::bridge::warm::{Outcome, whisper_text};
use warmline::bridge::{PlivoConfig, TelnyxConfig, VonageConfig};
use warmline::codec::Codec;
use warmline::event::EventKind;
use warmline::protocol::{Provider, RenderSpec};
use warmline::synth::{Segment, speech};

const AGENT: &str = "+15550001111";
const SEED: [u8; 32] = [9; 32];

/// What the fake Telnyx does with the next agent leg.
#[derive(Debug, Clone, Copy)]
enum Leg {
    /// `call.answered`, and `call.speak.ended` once the whisper is spoken.
    Answer,
    /// `call.hangup` with this `hangup_cause`.
    HangUp(&'static str),
    /// Never calls back.
    Silent,
}

#[derive(Debug, Clone)]
struct Req {
    path: String,
    body: Value,
}

#[derive(Clone)]
struct FakeTelnyx {
    seen: Arc<Mutex<Vec<Req>>>,
    script: Arc<Mutex<VecDeque<Leg>>>,
    /// Where the gateway wants webhooks (the agent leg's `webhook_url`).
    webhook: Arc<Mutex<Option<String>>>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn key_pair() -> ring::signature::Ed25519KeyPair {
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&SEED).unwrap()
}

/// POSTs a Telnyx webhook signed as Telnyx signs it.
async fn webhook(url: &str, event: &str, call: &str, client_state: &Value, cause: &str) -> u16 {
    let body = json!({"data": {"event_type": event, "id": "ev1", "record_type": "event",
        "occurred_at": "2026-01-01T00:00:00Z", "payload": {
            "call_control_id": call, "call_leg_id": "l1", "call_session_id": "s1",
            "client_state": client_state, "connection_id": "conn-1", "hangup_cause": cause,
        }}, "meta": {"attempt": 1}})
    .to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = b64().encode(key_pair().sign(format!("{ts}|{body}").as_bytes()).as_ref());
    reqwest::Client::new()
        .post(url)
        .header("telnyx-signature-ed25519", sig)
        .header("telnyx-timestamp", ts)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The decoded `client_state` of a request body.
fn state(body: &Value) -> Value {
    let raw = b64()
        .decode(body["client_state"].as_str().unwrap_or(""))
        .unwrap_or_default();
    serde_json::from_slice(&raw).unwrap_or(Value::Null)
}

async fn record(State(f): State<FakeTelnyx>, uri: Uri, body: Bytes) -> axum::Json<Value> {
    let req = Req {
        path: uri.path().to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let n = {
        let mut seen = f.seen.lock().unwrap();
        seen.push(req.clone());
        seen.iter().filter(|r| r.path == "/v2/calls").count()
    };
    if req.path == "/v2/calls" {
        let url = req.body["webhook_url"].as_str().unwrap().to_owned();
        *f.webhook.lock().unwrap() = Some(url.clone());
        let leg = f.script.lock().unwrap().pop_front().unwrap_or(Leg::Silent);
        let id = format!("v3:agent{n}");
        let (cs, call) = (req.body["client_state"].clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let (event, cause) = match leg {
                Leg::Answer => ("call.answered", ""),
                Leg::HangUp(cause) => ("call.hangup", cause),
                Leg::Silent => return,
            };
            assert_eq!(webhook(&url, event, &call, &cs, cause).await, 204);
        });
        return axum::Json(json!({"data": {"call_control_id": id, "call_leg_id": "l",
            "call_session_id": "s", "is_alive": false, "record_type": "call"}}));
    }
    // A whisper (agent leg) or a voicemail prompt ends: Telnyx says so on that call.
    let speak_ends = req.path.ends_with("/actions/speak")
        && matches!(
            state(&req.body)["leg"].as_str(),
            Some("agent" | "voicemail")
        );
    if speak_ends && let Some(url) = f.webhook.lock().unwrap().clone() {
        let call = req.path.split('/').nth(3).unwrap_or("").to_owned();
        let cs = req.body["client_state"].clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert_eq!(webhook(&url, "call.speak.ended", &call, &cs, "").await, 204);
        });
    }
    axum::Json(json!({"data": {"result": "ok"}}))
}

impl FakeTelnyx {
    async fn start(script: &[Leg]) -> (Self, SocketAddr) {
        let f = Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            webhook: Arc::default(),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(record).with_state(f.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        (f, addr)
    }

    /// The requests once `n` arrived and nothing more followed.
    async fn settle(&self, n: usize) -> Vec<Req> {
        for _ in 0..200 {
            if self.seen.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.seen.lock().unwrap().clone()
    }
}

async fn telnyx_gateway(api: SocketAddr, fallback: &[&str], answer_timeout_s: u64) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = test_config();
    cfg.bridge.initial_backoff_ms = 20;
    cfg.bridge.telnyx = Some(TelnyxConfig {
        api_base: format!("http://{api}"),
        public_key: Some(b64().encode(key_pair().public_key().as_ref())),
        caller_id: Some("+15559990000".into()),
        connection_id: Some("conn-1".into()),
        callback_base: Some(format!("http://{addr}")),
        fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
        answer_timeout_s,
        say: "Please hold.".into(),
        ..TelnyxConfig::new("KEY1", AGENT)
    });
    TestServer::with_config_on(cfg, listener).await
}

/// Opens a call of `provider` with calm speech and asks for a human until the gateway hands
/// off; returns the handoff id, its whisper and the still-open socket.
async fn ask_for_a_human(server: &TestServer, provider: Provider, call: &str) -> (String, Ws) {
    let pcm = speech(&[Segment::calm(3.0, 140.0)], 8000, 7);
    let msgs = provider.render(&RenderSpec::new(call, Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(server, provider.name()).await;
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let http = reqwest::Client::new();
    for _ in 0..250 {
        let _ = http
            .post(format!("http://{}/v1/calls/{call}/transcript", server.addr))
            .bearer_auth(TOKEN)
            .json(&json!({"speaker": "caller", "text": "I want to talk to a human right now", "final": true}))
            .send()
            .await
            .unwrap();
        if let Some(id) = server.events_for(call).iter().find_map(|e| match &e.kind {
            EventKind::Handoff(h) => Some(h.handoff_id.clone()),
            _ => None,
        }) {
            return (id, ws);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("no handoff for {call}");
}

fn paths(reqs: &[Req]) -> Vec<&str> {
    reqs.iter().map(|r| r.path.as_str()).collect()
}

/// The caller's hold: the `say` line spoken on the caller's call, marked as the caller's.
fn assert_hold(r: &Req, call: &str, hid: &str) {
    assert_eq!(r.path, format!("/v2/calls/{call}/actions/speak"));
    assert_eq!(r.body["payload"], "Please hold.");
    assert_eq!(state(&r.body), json!({"handoff_id": hid, "leg": "caller"}));
}

fn assert_dial(r: &Req, to: &str, attempt: u32, call: &str, hid: &str, server: &TestServer) {
    assert_eq!(r.path, "/v2/calls");
    let b = &r.body;
    assert_eq!(b["to"], to);
    assert_eq!(b["from"], "+15559990000");
    assert_eq!(b["connection_id"], "conn-1");
    assert_eq!(b["timeout_secs"], 30);
    assert_eq!(
        b["webhook_url"],
        format!("http://{}/v1/providers/telnyx/webhook", server.addr)
    );
    assert_eq!(
        b["custom_headers"],
        json!([{"name": "X-Handoff-Id", "value": hid}])
    );
    assert_eq!(
        state(b),
        json!({"handoff_id": hid, "leg": "agent", "attempt": attempt, "caller": call})
    );
}

/// The whisper (the handoff summary's brief) to `leg`, then the bridge of `leg` to the caller.
fn assert_whisper_then_bridge(server: &TestServer, reqs: &[Req], leg: &str, call: &str) {
    let summary = server
        .events_for(call)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Handoff(h) => Some(h.summary),
            _ => None,
        })
        .unwrap();
    let w = &reqs[reqs.len() - 2];
    assert_eq!(w.path, format!("/v2/calls/{leg}/actions/speak"));
    assert_eq!(w.body["payload"], whisper_text(&summary), "{w:?}");
    let b = &reqs[reqs.len() - 1];
    assert_eq!(b.path, format!("/v2/calls/{call}/actions/bridge"));
    assert_eq!(b.body, json!({"call_control_id": leg}));
}

async fn transfers(server: &TestServer, outcome: &str) -> f64 {
    metric(
        server,
        "warmline_transfers_total",
        &[("provider", "telnyx"), ("outcome", outcome)],
    )
    .await
}

/// The hold and the first dial go out concurrently; the rest of the requests follow in order.
fn hold_and_first_dial<'a>(reqs: &'a [Req], call: &str) -> (&'a Req, &'a Req) {
    let hold = reqs
        .iter()
        .find(|r| r.path == format!("/v2/calls/{call}/actions/speak"))
        .unwrap_or_else(|| panic!("no hold: {reqs:#?}"));
    let dial = reqs
        .iter()
        .find(|r| r.path == "/v2/calls")
        .unwrap_or_else(|| panic!("no dial: {reqs:#?}"));
    (hold, dial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_answered_agent_hears_the_brief_then_is_bridged() {
    let (fake, api) = FakeTelnyx::start(&[Leg::Answer]).await;
    let server = telnyx_gateway(api, &[], 30).await;
    let call = "v3:tx-warm-1";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Telnyx, call).await;
    let e = wait_event(&server, call, "handoff_connected", |e| {
        matches!(e.kind, EventKind::HandoffConnected(_))
    })
    .await;
    let EventKind::HandoffConnected(c) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (
            c.handoff_id.as_str(),
            c.target.as_str(),
            c.provider.as_str()
        ),
        (hid.as_str(), AGENT, "telnyx")
    );
    let reqs = fake.settle(4).await;
    assert_eq!(reqs.len(), 4, "{:#?}", paths(&reqs));
    let (hold, dial) = hold_and_first_dial(&reqs, call);
    assert_hold(hold, call, &hid);
    assert_dial(dial, AGENT, 1, call, &hid, &server);
    assert_whisper_then_bridge(&server, &reqs, "v3:agent1", call);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Connected));
    assert_eq!(transfers(&server, "connected").await, 1.0);
    assert_eq!(
        metric(&server, "warmline_time_to_agent_seconds_count", &[]).await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_no_answer_falls_back_to_the_next_target() {
    let (fake, api) = FakeTelnyx::start(&[Leg::HangUp("timeout"), Leg::Answer]).await;
    let server = telnyx_gateway(api, &["sip:b@pbx.example", "queue:support"], 30).await;
    let call = "v3:tx-warm-2";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Telnyx, call).await;
    wait_event(
        &server,
        call,
        "handoff_connected",
        |e| matches!(&e.kind, EventKind::HandoffConnected(c) if c.target == "sip:b@pbx.example"),
    )
    .await;
    let fb: Vec<_> = server
        .events_for(call)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HandoffFallback(f) => Some((f.from, f.to, f.reason, f.provider)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fb,
        [(
            AGENT.to_owned(),
            "sip:b@pbx.example".to_owned(),
            "no_answer".to_owned(),
            "telnyx".to_owned()
        )]
    );
    let reqs = fake.settle(5).await;
    assert_eq!(reqs.len(), 5, "{:#?}", paths(&reqs));
    let (hold, _) = hold_and_first_dial(&reqs, call);
    assert_hold(hold, call, &hid);
    let dials: Vec<&Req> = reqs.iter().filter(|r| r.path == "/v2/calls").collect();
    assert_dial(dials[0], AGENT, 1, call, &hid, &server);
    assert_dial(dials[1], "sip:b@pbx.example", 2, call, &hid, &server);
    assert_whisper_then_bridge(&server, &reqs, "v3:agent2", call);
    assert_eq!(transfers(&server, "connected").await, 1.0);
    assert_eq!(
        metric(
            &server,
            "warmline_transfer_fallbacks_total",
            &[("provider", "telnyx"), ("reason", "no_answer")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_busy_agent_sends_the_caller_to_the_queue() {
    let (fake, api) = FakeTelnyx::start(&[Leg::HangUp("user_busy")]).await;
    let server = telnyx_gateway(api, &["queue:support"], 30).await;
    let call = "v3:tx-warm-3";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Telnyx, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "queue", "busy")
    );
    let reqs = fake.settle(4).await;
    assert_eq!(reqs.len(), 4, "{:#?}", paths(&reqs));
    let (hold, dial) = hold_and_first_dial(&reqs, call);
    assert_hold(hold, call, &hid);
    assert_dial(dial, AGENT, 1, call, &hid, &server);
    assert_eq!(
        reqs[2].path,
        format!("/v2/calls/{call}/actions/speak"),
        "the caller hears why"
    );
    assert_eq!(reqs[3].path, format!("/v2/calls/{call}/actions/enqueue"));
    assert_eq!(reqs[3].body, json!({"queue_name": "support"}));
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(transfers(&server, "fallback").await, 1.0);
    server.stop().await;
}

/// The caller's hang-up comes without warmline's `client_state` (another app on the call set
/// its own): the transfer is found by the caller's call id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_caller_hanging_up_on_hold_is_abandoned_and_the_agent_leg_hung_up() {
    let (fake, api) = FakeTelnyx::start(&[Leg::Silent]).await;
    let server = telnyx_gateway(api, &[], 30).await;
    let call = "v3:tx-warm-4";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Telnyx, call).await;
    let reqs = fake.settle(2).await;
    assert_eq!(reqs.len(), 2, "{:#?}", paths(&reqs));
    let url = format!("http://{}/v1/providers/telnyx/webhook", server.addr);
    // A webhook not signed by the account's key is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("telnyx-signature-ed25519", b64().encode([0u8; 64]))
        .header("telnyx-timestamp", "1")
        .body(
            r#"{"data":{"event_type":"call.hangup","payload":{"call_control_id":"v3:tx-warm-4"}}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Pending));
    let code = webhook(&url, "call.hangup", call, &Value::Null, "normal_clearing").await;
    assert_eq!(code, 204);
    let e = wait_event(&server, call, "handoff_abandoned", |e| {
        matches!(e.kind, EventKind::HandoffAbandoned(_))
    })
    .await;
    let EventKind::HandoffAbandoned(a) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (a.handoff_id.as_str(), a.provider.as_str()),
        (hid.as_str(), "telnyx")
    );
    let reqs = fake.settle(3).await;
    assert_eq!(reqs.len(), 3, "{:#?}", paths(&reqs));
    assert_eq!(reqs[2].path, "/v2/calls/v3:agent1/actions/hangup");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Abandoned));
    assert_eq!(transfers(&server, "abandoned").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_webhook_that_never_comes_times_out_into_voicemail() {
    let (fake, api) = FakeTelnyx::start(&[Leg::Silent]).await;
    let server = telnyx_gateway(api, &["voicemail"], 1).await;
    let call = "v3:tx-warm-5";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Telnyx, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "voicemail", "timeout")
    );
    // Hold, dial, the ringing leg hung up, the prompt, and the recording once it ended.
    let reqs = fake.settle(5).await;
    assert_eq!(reqs.len(), 5, "{:#?}", paths(&reqs));
    let (hold, dial) = hold_and_first_dial(&reqs, call);
    assert_hold(hold, call, &hid);
    assert_eq!(dial.body["timeout_secs"], 1);
    // The hang-up and the prompt go out concurrently; the recording waits for the prompt.
    let rest = paths(&reqs[2..]);
    assert!(
        rest.contains(&"/v2/calls/v3:agent1/actions/hangup"),
        "{rest:?}"
    );
    let prompt = reqs
        .iter()
        .rposition(|r| r.path == format!("/v2/calls/{call}/actions/speak"))
        .unwrap();
    assert!(prompt >= 2, "{rest:?}");
    assert_eq!(state(&reqs[prompt].body)["leg"], "voicemail");
    assert_eq!(
        reqs[4].path,
        format!("/v2/calls/{call}/actions/record_start")
    );
    assert_eq!(reqs[4].body["play_beep"], true);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(transfers(&server, "fallback").await, 1.0);
    server.stop().await;
}

// ---- Plivo ----------------------------------------------------------------------------------

const PLIVO_TOKEN: &str = "plivo-token";

/// What the fake Plivo does with the next agent leg.
#[derive(Debug, Clone, Copy)]
enum PLeg {
    /// Fetches the answer URL (the agent picked up).
    Answer,
    /// Reports the hang-up with this `CallStatus` and `HangupCause`.
    HangUp(&'static str, &'static str),
    /// Never calls back.
    Silent,
}

#[derive(Debug, Clone)]
struct PReq {
    method: String,
    path: String,
    /// Form fields, or the JSON body's fields as strings.
    fields: Vec<(String, String)>,
}

impl PReq {
    fn get(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct FakePlivo {
    seen: Arc<Mutex<Vec<PReq>>>,
    script: Arc<Mutex<VecDeque<PLeg>>>,
    /// XML documents fetched from the gateway, by the URL's `leg`.
    xml: Arc<Mutex<Vec<(String, String)>>>,
}

fn form_of(text: &str) -> Vec<(String, String)> {
    let mut u = reqwest::Url::parse("http://x/").unwrap();
    u.set_query(Some(text));
    u.query_pairs().into_owned().collect()
}

impl FakePlivo {
    async fn start(script: &[PLeg]) -> (Self, SocketAddr) {
        let f = Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            xml: Arc::default(),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(plivo_record).with_state(f.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        (f, addr)
    }

    /// Fetches warmline's XML as Plivo does (POST with call fields) and keeps it.
    async fn fetch_xml(&self, url: &str, call_uuid: &str) -> String {
        let r = reqwest::Client::new()
            .post(url)
            .form(&[("CallUUID", call_uuid), ("CallStatus", "in-progress")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let text = r.text().await.unwrap();
        let leg = form_of(url.split_once('?').unwrap().1)
            .into_iter()
            .find(|(k, _)| k == "leg")
            .map(|(_, v)| v)
            .unwrap();
        self.xml.lock().unwrap().push((leg, text.clone()));
        text
    }

    async fn settle(&self, n: usize, xml: usize) -> (Vec<PReq>, Vec<(String, String)>) {
        for _ in 0..200 {
            if self.seen.lock().unwrap().len() >= n && self.xml.lock().unwrap().len() >= xml {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        (
            self.seen.lock().unwrap().clone(),
            self.xml.lock().unwrap().clone(),
        )
    }
}

async fn plivo_record(
    State(f): State<FakePlivo>,
    method: axum::http::Method,
    uri: Uri,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = std::str::from_utf8(&body).unwrap_or("");
    let fields = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        _ => form_of(text),
    };
    let req = PReq {
        method: method.to_string(),
        path: uri.path().to_owned(),
        fields,
    };
    let n = {
        let mut seen = f.seen.lock().unwrap();
        seen.push(req.clone());
        seen.iter()
            .filter(|r| r.path == "/v1/Account/MA1/Call/")
            .count()
    };
    if req.method == "DELETE" {
        return axum::http::StatusCode::NO_CONTENT.into_response();
    }
    if req.path == "/v1/Account/MA1/Call/" {
        let uuid = format!("req-agent{n}");
        let leg = f.script.lock().unwrap().pop_front().unwrap_or(PLeg::Silent);
        let (answer, hangup) = (
            req.get("answer_url").unwrap().to_owned(),
            req.get("hangup_url").unwrap().to_owned(),
        );
        let (fake, id) = (f.clone(), uuid.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            match leg {
                PLeg::Answer => {
                    fake.fetch_xml(&answer, &id).await;
                }
                PLeg::HangUp(status, cause) => {
                    let code = reqwest::Client::new()
                        .post(&hangup)
                        .form(&[
                            ("CallStatus", status),
                            ("HangupCause", cause),
                            ("RequestUUID", &id),
                        ])
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(code, 204);
                }
                PLeg::Silent => {}
            }
        });
        return (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"api_id": "a1", "message": "call fired", "request_uuid": uuid})),
        )
            .into_response();
    }
    // A transfer of the caller's A leg: Plivo fetches the new XML for it.
    if let Some(aleg) = req.get("aleg_url").map(str::to_owned) {
        let call = req.path.split('/').nth(5).unwrap_or("").to_owned();
        let fake = f.clone();
        tokio::spawn(async move {
            fake.fetch_xml(&aleg, &call).await;
        });
    }
    (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({"api_id": "a2", "message": "call transferred"})),
    )
        .into_response()
}

async fn plivo_gateway(api: SocketAddr, fallback: &[&str], answer_timeout_s: u64) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = test_config();
    cfg.bridge.initial_backoff_ms = 20;
    cfg.bridge.plivo = Some(PlivoConfig {
        api_base: format!("http://{api}"),
        agent: Some(AGENT.into()),
        caller_id: Some("+15559990000".into()),
        callback_base: Some(format!("http://{addr}")),
        fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
        answer_timeout_s,
        say: "Please hold.".into(),
        ..PlivoConfig::new("MA1", PLIVO_TOKEN, "")
    });
    TestServer::with_config_on(cfg, listener).await
}

fn plivo_transfers(reqs: &[PReq], call: &str) -> Vec<PReq> {
    reqs.iter()
        .filter(|r| r.path == format!("/v1/Account/MA1/Call/{call}/"))
        .cloned()
        .collect()
}

fn plivo_dials(reqs: &[PReq]) -> Vec<PReq> {
    reqs.iter()
        .filter(|r| r.path == "/v1/Account/MA1/Call/")
        .cloned()
        .collect()
}

fn assert_plivo_dial(r: &PReq, to: &str, attempt: u32, hid: &str, server: &TestServer) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.get("to"), Some(to));
    assert_eq!(r.get("from"), Some("+15559990000"));
    assert_eq!(r.get("answer_method"), Some("POST"));
    assert_eq!(
        r.get("sip_headers"),
        Some(format!("HandoffId={hid}").as_str())
    );
    let base = format!("http://{}/v1/providers/plivo/", server.addr);
    let answer = r.get("answer_url").unwrap();
    assert!(
        answer.starts_with(&format!(
            "{base}xml?handoff_id={hid}&leg=agent&attempt={attempt}&whisper="
        )),
        "{answer}"
    );
    let hangup = r.get("hangup_url").unwrap();
    assert!(
        hangup.starts_with(&format!(
            "{base}status?handoff_id={hid}&leg=agent&attempt={attempt}&token="
        )),
        "{hangup}"
    );
}

/// The caller's hold XML: the `say` line, then the conference that waits for the agent;
/// returns its callback URL.
fn assert_plivo_hold(xml: &[(String, String)], hid: &str) -> String {
    let (_, x) = xml
        .iter()
        .find(|(leg, _)| leg == "caller")
        .unwrap_or_else(|| panic!("no hold XML: {xml:#?}"));
    let d = roxmltree::Document::parse(x).unwrap();
    let names: Vec<&str> = d
        .root_element()
        .children()
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, ["Speak", "Conference"], "{x}");
    let c = d
        .descendants()
        .find(|n| n.has_tag_name("Conference"))
        .unwrap();
    assert_eq!(c.text(), Some(format!("warmline-{hid}").as_str()));
    assert_eq!(c.attribute("startConferenceOnEnter"), Some("false"));
    c.attribute("callbackUrl").unwrap().to_owned()
}

async fn plivo_transfer_count(server: &TestServer, outcome: &str) -> f64 {
    metric(
        server,
        "warmline_transfers_total",
        &[("provider", "plivo"), ("outcome", outcome)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_answered_agent_hears_the_brief_then_joins_the_conference() {
    let (fake, api) = FakePlivo::start(&[PLeg::Answer]).await;
    let server = plivo_gateway(api, &[], 30).await;
    let call = "pl-warm-1";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Plivo, call).await;
    let e = wait_event(&server, call, "handoff_connected", |e| {
        matches!(e.kind, EventKind::HandoffConnected(_))
    })
    .await;
    let EventKind::HandoffConnected(c) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (
            c.handoff_id.as_str(),
            c.target.as_str(),
            c.provider.as_str()
        ),
        (hid.as_str(), AGENT, "plivo")
    );
    let (reqs, xml) = fake.settle(2, 2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let hold = plivo_transfers(&reqs, call);
    assert_eq!(hold.len(), 1, "{reqs:#?}");
    assert_eq!(hold[0].get("legs"), Some("aleg"));
    assert_plivo_dial(&plivo_dials(&reqs)[0], AGENT, 1, &hid, &server);
    assert_plivo_hold(&xml, &hid);
    let (_, agent) = xml.iter().find(|(leg, _)| leg == "agent").unwrap();
    let summary = server
        .events_for(call)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Handoff(h) => Some(h.summary),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        agent,
        &warmline::bridge::warm_plivo::agent_xml(&hid, &whisper_text(&summary))
    );
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Connected));
    assert_eq!(plivo_transfer_count(&server, "connected").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_no_answer_falls_back_to_the_next_target() {
    let (fake, api) =
        FakePlivo::start(&[PLeg::HangUp("no-answer", "NO_ANSWER"), PLeg::Answer]).await;
    let server = plivo_gateway(api, &["sip:b@pbx.example"], 30).await;
    let call = "pl-warm-2";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Plivo, call).await;
    wait_event(
        &server,
        call,
        "handoff_connected",
        |e| matches!(&e.kind, EventKind::HandoffConnected(c) if c.target == "sip:b@pbx.example"),
    )
    .await;
    let fb: Vec<_> = server
        .events_for(call)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HandoffFallback(f) => Some((f.from, f.to, f.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fb,
        [(
            AGENT.to_owned(),
            "sip:b@pbx.example".to_owned(),
            "no_answer".to_owned()
        )]
    );
    let (reqs, _) = fake.settle(3, 2).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let dials = plivo_dials(&reqs);
    assert_plivo_dial(&dials[0], AGENT, 1, &hid, &server);
    assert_plivo_dial(&dials[1], "sip:b@pbx.example", 2, &hid, &server);
    assert_eq!(plivo_transfer_count(&server, "connected").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_busy_agent_sends_the_caller_to_the_queue_conference() {
    let (fake, api) = FakePlivo::start(&[PLeg::HangUp("busy", "USER_BUSY")]).await;
    let server = plivo_gateway(api, &["queue:support"], 30).await;
    let call = "pl-warm-3";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Plivo, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "queue", "busy")
    );
    let (reqs, xml) = fake.settle(3, 2).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let transfers = plivo_transfers(&reqs, call);
    assert_eq!(transfers.len(), 2, "hold, then the queue: {reqs:#?}");
    assert!(
        transfers[1]
            .get("aleg_url")
            .unwrap()
            .contains("leg=terminal&terminal=queue%3Asupport")
    );
    let (_, q) = xml.iter().find(|(leg, _)| leg == "terminal").unwrap();
    assert!(q.contains(">support</Conference>"), "{q}");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(plivo_transfer_count(&server, "fallback").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_caller_leaving_the_hold_is_abandoned_and_the_ringing_leg_cancelled() {
    let (fake, api) = FakePlivo::start(&[PLeg::Silent]).await;
    let server = plivo_gateway(api, &[], 30).await;
    let call = "pl-warm-4";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Plivo, call).await;
    let (_, xml) = fake.settle(2, 1).await;
    let cb = assert_plivo_hold(&xml, &hid);
    // A callback whose token was altered is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(cb.replace("leg=caller", "leg=agent&attempt=1"))
        .form(&[("CallStatus", "busy")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Pending));
    let code = reqwest::Client::new()
        .post(&cb)
        .form(&[("ConferenceAction", "exit"), ("CallUUID", call)])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(code, 204);
    let e = wait_event(&server, call, "handoff_abandoned", |e| {
        matches!(e.kind, EventKind::HandoffAbandoned(_))
    })
    .await;
    let EventKind::HandoffAbandoned(a) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (a.handoff_id.as_str(), a.provider.as_str()),
        (hid.as_str(), "plivo")
    );
    let (reqs, _) = fake.settle(3, 1).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].path.as_str()),
        ("DELETE", "/v1/Account/MA1/Request/req-agent1/")
    );
    assert_eq!(plivo_transfer_count(&server, "abandoned").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_callback_that_never_comes_times_out_into_voicemail() {
    let (fake, api) = FakePlivo::start(&[PLeg::Silent]).await;
    let server = plivo_gateway(api, &["voicemail"], 1).await;
    let call = "pl-warm-5";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Plivo, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "voicemail", "timeout")
    );
    let (reqs, xml) = fake.settle(4, 2).await;
    assert_eq!(reqs.len(), 4, "{reqs:#?}");
    assert_eq!(plivo_dials(&reqs)[0].get("ring_timeout"), Some("1"));
    assert!(
        reqs.iter()
            .any(|r| r.method == "DELETE" && r.path == "/v1/Account/MA1/Request/req-agent1/"),
        "{reqs:#?}"
    );
    assert_eq!(plivo_transfers(&reqs, call).len(), 2, "{reqs:#?}");
    let (_, v) = xml.iter().find(|(leg, _)| leg == "terminal").unwrap();
    assert!(v.contains("<Record maxLength=\"120\""), "{v}");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(plivo_transfer_count(&server, "fallback").await, 1.0);
    server.stop().await;
}

// ---- Vonage ---------------------------------------------------------------------------------

const VONAGE_SECRET: &str = "vonage-signature-secret";

/// A webhook `Authorization` as Vonage signs it: HS256 JWT with the body's hash.
fn vonage_auth(body: &str) -> String {
    use hmac::Mac as _;
    use sha2::Digest as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iat": now, "jti": "j1", "iss": "Vonage",
        "payload_hash": hex::encode(sha2::Sha256::digest(body.as_bytes())),
        "api_key": "k1", "application_id": "app1"});
    let h = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = b64.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(VONAGE_SECRET.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!("Bearer {h}.{p}.{}", b64.encode(mac.finalize().into_bytes()))
}

async fn vonage_event(url: &str, uuid: &str, status: &str) -> u16 {
    let body = json!({"uuid": uuid, "conversation_uuid": "CON-1", "status": status,
        "direction": "outbound", "timestamp": "2026-01-01T00:00:00.000Z"})
    .to_string();
    reqwest::Client::new()
        .post(url)
        .header("authorization", vonage_auth(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[derive(Clone)]
struct FakeVonage {
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// Per agent leg: the statuses to report, in order (empty: never calls back).
    script: Arc<Mutex<VecDeque<&'static [&'static str]>>>,
}

async fn vonage_record(
    State(f): State<FakeVonage>,
    method: axum::http::Method,
    uri: Uri,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut seen = f.seen.lock().unwrap();
        seen.push((method.to_string(), uri.path().to_owned(), v.clone()));
        seen.iter()
            .filter(|(m, p, _)| m == "POST" && p == "/v1/calls")
            .count()
    };
    if method == axum::http::Method::POST && uri.path() == "/v1/calls" {
        let uuid = format!("agent-uuid-{n}");
        let statuses = f.script.lock().unwrap().pop_front().unwrap_or(&[]);
        let (url, id) = (v["event_url"][0].as_str().unwrap().to_owned(), uuid.clone());
        tokio::spawn(async move {
            for st in statuses {
                tokio::time::sleep(Duration::from_millis(30)).await;
                assert_eq!(vonage_event(&url, &id, st).await, 204);
            }
        });
        return (
            axum::http::StatusCode::CREATED,
            axum::Json(
                json!({"uuid": uuid, "status": "started", "direction": "outbound",
                "conversation_uuid": "CON-2"}),
            ),
        )
            .into_response();
    }
    axum::http::StatusCode::NO_CONTENT.into_response()
}

impl FakeVonage {
    async fn start(script: &[&'static [&'static str]]) -> (Self, SocketAddr) {
        let f = Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(vonage_record).with_state(f.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        (f, addr)
    }

    async fn settle(&self, n: usize) -> Vec<(String, String, Value)> {
        for _ in 0..200 {
            if self.seen.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.seen.lock().unwrap().clone()
    }
}

async fn vonage_gateway(api: SocketAddr, fallback: &[&str], answer_timeout_s: u64) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = test_config();
    cfg.bridge.initial_backoff_ms = 20;
    cfg.bridge.vonage = Some(VonageConfig {
        api_base: format!("http://{api}"),
        caller_id: Some("+15559990000".into()),
        callback_base: Some(format!("http://{addr}")),
        signature_secret: Some(VONAGE_SECRET.into()),
        fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
        answer_timeout_s,
        say: "Please hold.".into(),
        ..VonageConfig::new("JWT1", AGENT)
    });
    TestServer::with_config_on(cfg, listener).await
}

type VReq = (String, String, Value);

/// The caller's hold: a transfer to the `say` line and the conversation that waits for the agent.
fn assert_vonage_hold(reqs: &[VReq], call: &str, hid: &str) {
    let (_, _, b) = reqs
        .iter()
        .find(|(m, p, _)| m == "PUT" && p == &format!("/v1/calls/{call}"))
        .unwrap_or_else(|| panic!("no hold: {reqs:#?}"));
    assert_eq!(b["action"], "transfer");
    let ncco = &b["destination"]["ncco"];
    assert_eq!(ncco[0], json!({"action": "talk", "text": "Please hold."}));
    assert_eq!(ncco[1]["action"], "conversation");
    assert_eq!(ncco[1]["name"], format!("warmline-{hid}"));
    assert_eq!(ncco[1]["startOnEnter"], false);
}

fn vonage_dials(reqs: &[VReq]) -> Vec<&Value> {
    reqs.iter()
        .filter(|(m, p, _)| m == "POST" && p == "/v1/calls")
        .map(|(_, _, b)| b)
        .collect()
}

fn assert_vonage_dial(b: &Value, to: &Value, attempt: u32, hid: &str, server: &TestServer) {
    assert_eq!(b["to"], json!([to]));
    assert_eq!(b["from"], json!({"type": "phone", "number": "15559990000"}));
    assert_eq!(b["ncco"][0]["action"], "talk", "whisper first: {b}");
    assert_eq!(b["ncco"][1]["name"], format!("warmline-{hid}"));
    assert_eq!(b["ncco"][1]["startOnEnter"], true);
    assert_eq!(
        b["event_url"],
        json!([format!(
            "http://{}/v1/providers/vonage/event?handoff_id={hid}&attempt={attempt}",
            server.addr
        )])
    );
}

async fn vonage_transfer_count(server: &TestServer, outcome: &str) -> f64 {
    metric(
        server,
        "warmline_transfers_total",
        &[("provider", "vonage"), ("outcome", outcome)],
    )
    .await
}

fn agent_phone() -> Value {
    json!({"type": "phone", "number": AGENT.trim_start_matches('+')})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_answered_agent_hears_the_brief_then_joins_the_conversation() {
    let (fake, api) = FakeVonage::start(&[&["started", "ringing", "answered"]]).await;
    let server = vonage_gateway(api, &[], 30).await;
    let call = "vg-warm-1";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Vonage, call).await;
    let e = wait_event(&server, call, "handoff_connected", |e| {
        matches!(e.kind, EventKind::HandoffConnected(_))
    })
    .await;
    let EventKind::HandoffConnected(c) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (
            c.handoff_id.as_str(),
            c.target.as_str(),
            c.provider.as_str()
        ),
        (hid.as_str(), AGENT, "vonage")
    );
    let reqs = fake.settle(2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_vonage_hold(&reqs, call, &hid);
    assert_vonage_dial(vonage_dials(&reqs)[0], &agent_phone(), 1, &hid, &server);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Connected));
    assert_eq!(vonage_transfer_count(&server, "connected").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_no_answer_falls_back_to_the_next_target() {
    let (fake, api) = FakeVonage::start(&[&["ringing", "timeout"], &["answered"]]).await;
    let server = vonage_gateway(api, &["sip:b@pbx.example"], 30).await;
    let call = "vg-warm-2";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Vonage, call).await;
    wait_event(
        &server,
        call,
        "handoff_connected",
        |e| matches!(&e.kind, EventKind::HandoffConnected(c) if c.target == "sip:b@pbx.example"),
    )
    .await;
    let fb: Vec<_> = server
        .events_for(call)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HandoffFallback(f) => Some((f.from, f.to, f.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fb,
        [(
            AGENT.to_owned(),
            "sip:b@pbx.example".to_owned(),
            "no_answer".to_owned()
        )]
    );
    let reqs = fake.settle(3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let dials = vonage_dials(&reqs);
    assert_vonage_dial(dials[0], &agent_phone(), 1, &hid, &server);
    let sip = json!({"type": "sip", "uri": "sip:b@pbx.example", "headers": {"X-Handoff-Id": hid}});
    assert_vonage_dial(dials[1], &sip, 2, &hid, &server);
    assert_eq!(vonage_transfer_count(&server, "connected").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_busy_agent_sends_the_caller_to_the_queue_conversation() {
    let (fake, api) = FakeVonage::start(&[&["busy"]]).await;
    let server = vonage_gateway(api, &["queue:support"], 30).await;
    let call = "vg-warm-3";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Vonage, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "queue", "busy")
    );
    let reqs = fake.settle(3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_vonage_hold(&reqs, call, &hid);
    let (m, p, b) = &reqs[2];
    assert_eq!(
        (m.as_str(), p.as_str()),
        ("PUT", format!("/v1/calls/{call}").as_str())
    );
    assert_eq!(b["destination"]["ncco"][1]["name"], "support");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(vonage_transfer_count(&server, "fallback").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_caller_hanging_up_on_hold_is_abandoned_and_the_agent_leg_hung_up() {
    let (fake, api) = FakeVonage::start(&[&[]]).await;
    let server = vonage_gateway(api, &[], 30).await;
    let call = "vg-warm-4";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Vonage, call).await;
    let reqs = fake.settle(2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let url = format!("http://{}/v1/providers/vonage/event", server.addr);
    // An event without Vonage's signature is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Bearer a.b.c")
        .body(json!({"uuid": call, "status": "completed"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Pending));
    assert_eq!(vonage_event(&url, call, "completed").await, 204);
    let e = wait_event(&server, call, "handoff_abandoned", |e| {
        matches!(e.kind, EventKind::HandoffAbandoned(_))
    })
    .await;
    let EventKind::HandoffAbandoned(a) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (a.handoff_id.as_str(), a.provider.as_str()),
        (hid.as_str(), "vonage")
    );
    let reqs = fake.settle(3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(
        (reqs[2].0.as_str(), reqs[2].1.as_str(), &reqs[2].2),
        (
            "PUT",
            "/v1/calls/agent-uuid-1",
            &json!({"action": "hangup"})
        )
    );
    assert_eq!(vonage_transfer_count(&server, "abandoned").await, 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_event_that_never_comes_times_out_into_voicemail() {
    let (fake, api) = FakeVonage::start(&[&[]]).await;
    let server = vonage_gateway(api, &["voicemail"], 1).await;
    let call = "vg-warm-5";
    let (hid, _ws) = ask_for_a_human(&server, Provider::Vonage, call).await;
    let e = wait_event(&server, call, "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!(
        (f.from.as_str(), f.to.as_str(), f.reason.as_str()),
        (AGENT, "voicemail", "timeout")
    );
    let reqs = fake.settle(4).await;
    assert_eq!(reqs.len(), 4, "{reqs:#?}");
    assert_eq!(vonage_dials(&reqs)[0]["ringing_timer"], 1);
    assert!(
        reqs.iter().any(|(m, p, b)| m == "PUT"
            && p == "/v1/calls/agent-uuid-1"
            && b == &json!({"action": "hangup"})),
        "{reqs:#?}"
    );
    let routed: Vec<_> = reqs
        .iter()
        .filter(|(m, p, _)| m == "PUT" && p == &format!("/v1/calls/{call}"))
        .collect();
    assert_eq!(routed.len(), 2, "hold, then voicemail: {reqs:#?}");
    assert_eq!(routed[1].2["destination"]["ncco"][1]["action"], "record");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(vonage_transfer_count(&server, "fallback").await, 1.0);
    server.stop().await;
}
