//! Warm transfer end to end: a real call over the Twilio WebSocket asks for a human, the
//! gateway puts the caller on hold in a conference and dials the agent against a fake Twilio
//! REST API, which records every request and plays signed status callbacks back to the gateway.
//! Each path (answered, no answer → next target, busy → queue, caller hangs up on hold, no
//! callback at all → timeout) is checked by its exact requests, events, metrics and outcome.

use crate::common::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use futures_util::SinkExt as _;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warmline::bridge::TwilioConfig;
use warmline::bridge::warm::Outcome;
use warmline::codec::Codec;
use warmline::detect::playbook::RoutingRule;
use warmline::event::{Event, EventKind};
use warmline::protocol::{Provider, RenderSpec};
use warmline::server::auth::twilio_signature;
use warmline::synth::{Segment, speech};

const REST_TOKEN: &str = "rest-token";
const AGENT: &str = "+15550001111";

/// What the fake Twilio does with the next agent leg.
#[derive(Debug, Clone, Copy)]
enum Leg {
    Answer,
    NoAnswer,
    Busy,
    /// Never calls back.
    Silent,
}

#[derive(Debug, Clone)]
struct Req {
    path: String,
    form: Vec<(String, String)>,
}

impl Req {
    fn get(&self, k: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct FakeTwilio {
    seen: Arc<Mutex<Vec<Req>>>,
    script: Arc<Mutex<VecDeque<Leg>>>,
    /// When set, the caller's hold is answered only once an agent leg was requested (or after
    /// 3 s), and `leg_before_hold` says which.
    gate_hold: Arc<AtomicBool>,
    leg_before_hold: Arc<AtomicBool>,
}

fn pairs(text: &str) -> Vec<(String, String)> {
    let mut u = reqwest::Url::parse("http://x/").unwrap();
    u.set_query(Some(text));
    u.query_pairs().into_owned().collect()
}

/// POSTs a status callback signed as Twilio would sign it.
async fn callback(url: &str, params: &[(&str, &str)]) -> reqwest::StatusCode {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sig = twilio_signature(REST_TOKEN, url, &owned);
    reqwest::Client::new()
        .post(url)
        .header("x-twilio-signature", sig)
        .form(&owned)
        .send()
        .await
        .unwrap()
        .status()
}

async fn record(State(f): State<FakeTwilio>, uri: Uri, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let form = pairs(std::str::from_utf8(&body).unwrap());
    let req = Req {
        path: uri.path().to_owned(),
        form,
    };
    let n = {
        let mut seen = f.seen.lock().unwrap();
        seen.push(req.clone());
        seen.iter()
            .filter(|r| r.path.ends_with("/Calls.json"))
            .count()
    };
    let is_hold = req.get("Twiml").is_some_and(|t| t.contains("<Conference"));
    if is_hold && f.gate_hold.load(Ordering::SeqCst) {
        for _ in 0..150 {
            if !agent_legs(&f.seen()).is_empty() {
                f.leg_before_hold.store(true, Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if !req.path.ends_with("/Calls.json") {
        return axum::Json(serde_json::json!({"sid": "CAupdated"})).into_response();
    }
    let sid = format!("CAagent{n}");
    let leg = f.script.lock().unwrap().pop_front().unwrap_or(Leg::Silent);
    let cb = req.get("StatusCallback").unwrap().to_owned();
    let s = sid.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let statuses: &[&str] = match leg {
            Leg::Answer => &["ringing", "in-progress"],
            Leg::NoAnswer => &["ringing", "no-answer"],
            Leg::Busy => &["busy"],
            Leg::Silent => &[],
        };
        for st in statuses {
            let code = callback(
                &cb,
                &[
                    ("CallSid", s.as_str()),
                    ("CallStatus", *st),
                    ("AccountSid", "AC123"),
                ],
            )
            .await;
            assert_eq!(code, 204, "status callback refused");
        }
    });
    (
        axum::http::StatusCode::CREATED,
        axum::Json(serde_json::json!({"sid": sid, "status": "queued"})),
    )
        .into_response()
}

impl FakeTwilio {
    async fn start(script: &[Leg]) -> (Self, SocketAddr) {
        let f = Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            gate_hold: Arc::default(),
            leg_before_hold: Arc::default(),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(record).with_state(f.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        (f, addr)
    }

    fn seen(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

async fn gateway(
    api: SocketAddr,
    fallback: &[&str],
    answer_timeout_s: u64,
    outbox: Option<std::path::PathBuf>,
) -> TestServer {
    gateway_routed(api, fallback, answer_timeout_s, outbox, Vec::new()).await
}

async fn gateway_routed(
    api: SocketAddr,
    fallback: &[&str],
    answer_timeout_s: u64,
    outbox: Option<std::path::PathBuf>,
    routing: Vec<RoutingRule>,
) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = test_config();
    cfg.routing = routing;
    if let Some(o) = outbox {
        cfg.bridge.outbox_dir = o;
    }
    cfg.bridge.initial_backoff_ms = 20;
    cfg.bridge.twilio = Some(TwilioConfig {
        api_base: format!("http://{api}"),
        caller_id: Some("+15559990000".into()),
        callback_base: Some(format!("http://{addr}")),
        fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
        answer_timeout_s,
        say: "Please hold.".into(),
        ..TwilioConfig::new("AC123", REST_TOKEN, AGENT)
    });
    TestServer::with_config_on(cfg, listener).await
}

/// Opens a Twilio call with a few seconds of calm speech and leaves it open (no `stop`).
async fn open_call(server: &TestServer, call: &str) -> Ws {
    let pcm = speech(&[Segment::calm(3.0, 140.0)], 8000, 7);
    let msgs = Provider::Twilio.render(&RenderSpec::new(call, Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(server, "twilio").await;
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    ws
}

/// Opens a Twilio call and asks for a human until the gateway hands off; returns the handoff
/// id and the still-open socket.
async fn ask_for_a_human(server: &TestServer, call: &str) -> (String, Ws) {
    let ws = open_call(server, call).await;
    let http = reqwest::Client::new();
    for _ in 0..250 {
        let _ = http
            .post(format!("http://{}/v1/calls/{call}/transcript", server.addr))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"speaker": "caller", "text": "I want to talk to a human right now", "final": true}))
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

pub(crate) async fn wait_event(
    server: &TestServer,
    call: &str,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    for _ in 0..400 {
        if let Some(e) = server.events_for(call).into_iter().find(|e| f(e)) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {what} for {call}: {:#?}", server.events_for(call));
}

pub(crate) async fn metric(server: &TestServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let (n, rest) = l.split_once(['{', ' ']).unwrap_or((l, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The caller's hold is requested concurrently with the first agent leg, so requests are found
/// by what they are, not by their order.
fn hold_request(reqs: &[Req], call: &str, handoff_id: &str) -> String {
    let r = reqs
        .iter()
        .find(|r| r.path == format!("/2010-04-01/Accounts/AC123/Calls/{call}.json"))
        .unwrap_or_else(|| panic!("no hold request: {reqs:#?}"));
    let twiml = r.get("Twiml").unwrap().to_owned();
    let doc = roxmltree::Document::parse(&twiml).unwrap();
    let conf = doc
        .descendants()
        .find(|n| n.has_tag_name("Conference"))
        .unwrap();
    assert_eq!(conf.text(), Some(format!("warmline-{handoff_id}").as_str()));
    assert_eq!(conf.attribute("startConferenceOnEnter"), Some("false"));
    conf.attribute("statusCallback").unwrap().to_owned()
}

/// The agent legs placed, in order.
fn agent_legs(reqs: &[Req]) -> Vec<&Req> {
    reqs.iter()
        .filter(|r| r.path == "/2010-04-01/Accounts/AC123/Calls.json")
        .collect()
}

/// The requests to `path` after the first one (the hold, for the caller's call).
fn later_updates<'a>(reqs: &'a [Req], path: &str) -> Vec<&'a Req> {
    reqs.iter().filter(|r| r.path == path).skip(1).collect()
}

fn assert_agent_leg(r: &Req, to: &str, attempt: u32, handoff_id: &str) {
    assert_eq!(r.path, "/2010-04-01/Accounts/AC123/Calls.json");
    assert_eq!(r.get("To"), Some(to));
    assert_eq!(r.get("From"), Some("+15559990000"));
    let twiml = r.get("Twiml").unwrap();
    assert!(
        twiml.starts_with("<Response><Say>"),
        "whisper first: {twiml}"
    );
    assert!(twiml.contains(&format!("warmline-{handoff_id}")), "{twiml}");
    let cb = r.get("StatusCallback").unwrap();
    assert!(
        cb.ends_with(&format!("&leg=agent&attempt={attempt}")),
        "{cb}"
    );
}

async fn settle(fake: &FakeTwilio, n: usize) -> Vec<Req> {
    for _ in 0..200 {
        if fake.seen().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing more should follow.
    tokio::time::sleep(Duration::from_millis(150)).await;
    fake.seen()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_agent_connects_with_time_to_agent() {
    let (fake, api) = FakeTwilio::start(&[Leg::Answer]).await;
    let server = gateway(api, &[], 30, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm1").await;
    let e = wait_event(&server, "CAwarm1", "handoff_connected", |e| {
        matches!(e.kind, EventKind::HandoffConnected(_))
    })
    .await;
    let EventKind::HandoffConnected(c) = e.kind else {
        unreachable!()
    };
    assert_eq!(c.handoff_id, hid);
    assert_eq!(c.target, AGENT);
    assert_eq!(c.provider, "twilio");
    let reqs = settle(&fake, 2).await;
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    hold_request(&reqs, "CAwarm1", &hid);
    assert_agent_leg(agent_legs(&reqs)[0], AGENT, 1, &hid);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Connected));
    assert_eq!(
        metric(
            &server,
            "warmline_transfers_total",
            &[("provider", "twilio"), ("outcome", "connected")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&server, "warmline_time_to_agent_seconds_count", &[]).await,
        1.0
    );
    server.stop().await;
}

/// Regression (decision → agent-leg latency): the agent leg used to be requested only after the
/// caller's hold had gone through the bridge's outbox and come back as a delivery result, so a
/// slow hold delayed every agent's phone. Here the hold is held back until an agent leg arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_leg_is_requested_without_waiting_for_the_hold() {
    let (fake, api) = FakeTwilio::start(&[Leg::Answer]).await;
    fake.gate_hold.store(true, Ordering::SeqCst);
    let server = gateway(api, &[], 30, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm0").await;
    wait_event(&server, "CAwarm0", "handoff_connected", |e| {
        matches!(e.kind, EventKind::HandoffConnected(_))
    })
    .await;
    let reqs = settle(&fake, 2).await;
    assert!(
        fake.leg_before_hold.load(Ordering::SeqCst),
        "the agent leg waited for the caller's hold: {reqs:#?}"
    );
    hold_request(&reqs, "CAwarm0", &hid);
    assert_eq!(agent_legs(&reqs).len(), 1, "{reqs:#?}");
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Connected));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_falls_back_to_the_next_target_which_answers() {
    let (fake, api) = FakeTwilio::start(&[Leg::NoAnswer, Leg::Answer]).await;
    let server = gateway(api, &["sip:b@pbx.example", "queue:support"], 30, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm2").await;
    wait_event(
        &server,
        "CAwarm2",
        "handoff_connected",
        |e| matches!(&e.kind, EventKind::HandoffConnected(c) if c.target == "sip:b@pbx.example"),
    )
    .await;
    let fb: Vec<_> = server
        .events_for("CAwarm2")
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
    let reqs = settle(&fake, 3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let legs = agent_legs(&reqs);
    assert_agent_leg(legs[0], AGENT, 1, &hid);
    assert_agent_leg(
        legs[1],
        &format!("sip:b@pbx.example?X-Handoff-Id={hid}"),
        2,
        &hid,
    );
    assert_eq!(
        metric(
            &server,
            "warmline_transfer_fallbacks_total",
            &[("reason", "no_answer")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

/// A `[[routing]]` rule that chose the human replaces the section's agent and fallback chain in
/// warm mode too: its target is dialled first, its own fallback next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_rule_chooses_the_warm_agent_and_its_fallback() {
    let (fake, api) = FakeTwilio::start(&[Leg::NoAnswer, Leg::Answer]).await;
    let rule = RoutingRule {
        name: "front_desk".into(),
        when: vec!["reason:human_request".into()],
        target: "client:frontdesk".into(),
        fallback: vec!["sip:desk@pbx.example".into()],
    };
    let server = gateway_routed(api, &["sip:b@pbx.example"], 30, None, vec![rule]).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAroute1").await;
    wait_event(
        &server,
        "CAroute1",
        "handoff_connected",
        |e| matches!(&e.kind, EventKind::HandoffConnected(c) if c.target == "sip:desk@pbx.example"),
    )
    .await;
    let fb: Vec<_> = server
        .events_for("CAroute1")
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HandoffFallback(f) => Some((f.from, f.to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fb,
        [(
            "client:frontdesk".to_owned(),
            "sip:desk@pbx.example".to_owned()
        )]
    );
    let reqs = settle(&fake, 3).await;
    let legs = agent_legs(&reqs);
    assert_eq!(legs.len(), 2, "{reqs:#?}");
    assert_agent_leg(
        legs[0],
        &format!("client:frontdesk?handoff_id={hid}"),
        1,
        &hid,
    );
    assert_agent_leg(
        legs[1],
        &format!("sip:desk@pbx.example?X-Handoff-Id={hid}"),
        2,
        &hid,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_agent_sends_the_caller_to_the_queue() {
    let (fake, api) = FakeTwilio::start(&[Leg::Busy]).await;
    let server = gateway(api, &["queue:support"], 30, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm3").await;
    let e = wait_event(&server, "CAwarm3", "handoff_fallback", |e| {
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
    let reqs = settle(&fake, 3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    hold_request(&reqs, "CAwarm3", &hid);
    let route = later_updates(&reqs, "/2010-04-01/Accounts/AC123/Calls/CAwarm3.json");
    assert_eq!(route.len(), 1, "{reqs:#?}");
    assert!(
        route[0]
            .get("Twiml")
            .unwrap()
            .contains("<Enqueue>support</Enqueue>")
    );
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(
        metric(
            &server,
            "warmline_transfers_total",
            &[("outcome", "fallback")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hanging_up_on_hold_is_abandoned_and_the_agent_leg_cancelled() {
    let (fake, api) = FakeTwilio::start(&[Leg::Silent]).await;
    let server = gateway(api, &[], 30, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm4").await;
    let reqs = settle(&fake, 2).await;
    let caller_cb = hold_request(&reqs, "CAwarm4", &hid);
    // A forged callback is refused and changes nothing.
    let forged = reqwest::Client::new()
        .post(&caller_cb)
        .header("x-twilio-signature", "bm9wZQ==")
        .form(&[("StatusCallbackEvent", "participant-leave")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Pending));
    let code = callback(
        &caller_cb,
        &[
            ("StatusCallbackEvent", "participant-leave"),
            ("CallSid", "CAwarm4"),
            ("ConferenceSid", "CF1"),
        ],
    )
    .await;
    assert_eq!(code, 204);
    let e = wait_event(&server, "CAwarm4", "handoff_abandoned", |e| {
        matches!(e.kind, EventKind::HandoffAbandoned(_))
    })
    .await;
    let EventKind::HandoffAbandoned(a) = e.kind else {
        unreachable!()
    };
    assert_eq!(a.handoff_id, hid);
    let reqs = settle(&fake, 3).await;
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let cancel = reqs
        .iter()
        .find(|r| r.path == "/2010-04-01/Accounts/AC123/Calls/CAagent1.json")
        .expect("agent leg cancelled");
    assert_eq!(cancel.get("Status"), Some("canceled"));
    assert_eq!(
        metric(
            &server,
            "warmline_transfers_total",
            &[("outcome", "abandoned")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_never_comes_times_out_into_voicemail() {
    let (fake, api) = FakeTwilio::start(&[Leg::Silent]).await;
    let server = gateway(api, &[], 1, None).await;
    let (hid, _ws) = ask_for_a_human(&server, "CAwarm5").await;
    let e = wait_event(&server, "CAwarm5", "handoff_fallback", |e| {
        matches!(e.kind, EventKind::HandoffFallback(_))
    })
    .await;
    let EventKind::HandoffFallback(f) = e.kind else {
        unreachable!()
    };
    assert_eq!((f.to.as_str(), f.reason.as_str()), ("voicemail", "timeout"));
    let reqs = settle(&fake, 4).await;
    assert_eq!(reqs.len(), 4, "{reqs:#?}");
    let tail: Vec<(&str, Option<&str>)> = reqs
        .iter()
        .map(|r| (r.path.as_str(), r.get("Status")))
        .collect();
    // Cancel and route run concurrently; both must happen.
    assert!(
        tail.contains(&(
            "/2010-04-01/Accounts/AC123/Calls/CAagent1.json",
            Some("canceled")
        )),
        "{tail:?}"
    );
    let route = later_updates(&reqs, "/2010-04-01/Accounts/AC123/Calls/CAwarm5.json");
    let route = route.first().expect("caller routed");
    assert!(route.get("Twiml").unwrap().contains("<Record"));
    assert_eq!(server.state.warm().outcome(&hid), Some(Outcome::Fallback));
    assert_eq!(
        metric(
            &server,
            "warmline_transfer_fallbacks_total",
            &[("reason", "timeout")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_left_ringing_by_a_restart_is_visible_and_times_out() {
    let (fake, api) = FakeTwilio::start(&[]).await;
    let outbox = tempfile::tempdir().unwrap().keep();
    let mut t = warmline::bridge::warm::WarmTransfer::new(
        "h-restart",
        "CAold",
        "twilio",
        9_000,
        vec![AGENT.into()],
        "brief",
        1,
        30_000,
    );
    t.step(warmline::bridge::warm::Input::CallerMoved, 2);
    std::fs::create_dir_all(outbox.join("warm")).unwrap();
    std::fs::write(
        outbox.join("warm/h-restart.json"),
        serde_json::to_vec(&t).unwrap(),
    )
    .unwrap();
    let server = gateway(api, &[], 30, Some(outbox.clone())).await;
    // The deadline passed while down: it fires at start (before a test can subscribe, so the
    // outcome, the requests and the metrics show it).
    let reqs = settle(&fake, 1).await;
    assert!(
        reqs.iter().any(|r| r.path.ends_with("/Calls/CAold.json")),
        "{reqs:#?}"
    );
    assert_eq!(
        server.state.warm().outcome("h-restart"),
        Some(Outcome::Fallback)
    );
    assert!(
        !outbox.join("warm/h-restart.json").exists(),
        "finished state is removed"
    );
    assert_eq!(
        metric(
            &server,
            "warmline_transfer_fallbacks_total",
            &[("reason", "timeout")]
        )
        .await,
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_transcription_callback_hands_the_call_off() {
    let (fake, api) = FakeTwilio::start(&[Leg::Answer]).await;
    let server = gateway(api, &[], 30, None).await;
    let call = "CAtx1";
    let _ws = open_call(&server, call).await;
    let url = format!("http://{}/v1/providers/twilio/transcription", server.addr);
    // Unsigned: refused, nothing happens.
    let r = reqwest::Client::new()
        .post(&url)
        .form(&[("TranscriptionEvent", "transcription-content")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let data = r#"{"transcript":"I want to talk to a human right now","confidence":0.93}"#;
    let mut handed_off = false;
    for _ in 0..100 {
        let code = callback(
            &url,
            &[
                ("AccountSid", "AC123"),
                ("CallSid", call),
                ("TranscriptionEvent", "transcription-content"),
                ("Track", "inbound_track"),
                ("TranscriptionData", data),
                ("Final", "true"),
                ("SequenceId", "1"),
            ],
        )
        .await;
        assert!(code == 202 || code == 404, "{code}");
        if server
            .events_for(call)
            .iter()
            .any(|e| matches!(e.kind, EventKind::Handoff(_)))
        {
            handed_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(handed_off, "the provider's transcript decided the handoff");
    let h = server
        .events_for(call)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Handoff(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert!(
        h.reasons.iter().any(|r| r.signal.name() == "human_request"),
        "{:?}",
        h.reasons
    );
    let _ = settle(&fake, 2).await;
    server.stop().await;
}

/// A `[bridge.twilio]` written before warm transfers (no `mode`, no `caller_id`, no callback
/// origin) still starts the gateway, with blind transfers rather than a start-up error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_without_mode_or_caller_id_starts_with_blind_transfers() {
    let mut cfg = test_config();
    cfg.bridge.twilio = Some(TwilioConfig::new("AC123", REST_TOKEN, AGENT));
    let server = TestServer::with_config(cfg).await;
    assert!(!server.state.warm().twilio_enabled());
    server.stop().await;
}
