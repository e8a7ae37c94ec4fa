//! The escalation playbook against the real gateway: escalating triggers over a real Twilio
//! stream and the transcript API, `[[routing]]` reaching each reason's own target at a fake
//! Twilio REST API, pre-call rules on `customParameters`, and feedback, call records and the
//! review queue in a real SQLite file.

use crate::common::{TOKEN, TestServer, connect, test_config, to_ws};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warmline::bridge::TwilioConfig;
use warmline::codec::Codec;
use warmline::config::Config;
use warmline::detect::playbook::{PreCallAction, PreCallRule, RoutingRule};
use warmline::event::{EventKind, Handoff};
use warmline::protocol::{Provider, RenderSpec};

/// A fake Twilio REST API recording (path, form body) of every call update.
#[derive(Clone, Default)]
struct FakeTwilio {
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

async fn record(State(f): State<FakeTwilio>, uri: Uri, body: Bytes) -> StatusCode {
    f.seen.lock().unwrap().push((
        uri.path().to_owned(),
        String::from_utf8_lossy(&body).into_owned(),
    ));
    StatusCode::OK
}

impl FakeTwilio {
    async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(record).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// The TwiML sent to move `call_sid`, form-decoded.
    async fn twiml_for(&self, call_sid: &str) -> String {
        for _ in 0..250 {
            let hit = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| p.contains(call_sid))
                .map(|(_, b)| b.clone());
            if let Some(body) = hit {
                return body
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("Twiml="))
                    .map(form_decode)
                    .unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no transfer of {call_sid} reached the fake Twilio API");
    }
}

/// `application/x-www-form-urlencoded` value decoding.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn rule(name: &str, when: &[&str], target: &str) -> RoutingRule {
    RoutingRule {
        name: name.into(),
        when: when.iter().map(|s| (*s).to_owned()).collect(),
        target: target.into(),
        fallback: vec!["queue:support".into()],
    }
}

fn playbook_config(api: SocketAddr) -> Config {
    let mut cfg = test_config();
    cfg.bridge.twilio = Some(TwilioConfig {
        api_base: format!("http://{api}"),
        say: String::new(),
        ..TwilioConfig::new("AC1", "t", "+15559999999")
    });
    cfg.routing = vec![
        rule(
            "fraud_desk",
            &["topic:fraud", "topic:security"],
            "+15550001111",
        ),
        rule("supervisor", &["topic:legal"], "sip:supervisor@pbx.example"),
        rule("vip", &["param:tier=vip"], "queue:vip"),
        rule("front_desk", &["reason:human_request"], "client:frontdesk"),
        rule(
            "retention",
            &["reason:sentiment", "reason:tone"],
            "queue:retention",
        ),
        rule("support", &[], "queue:support"),
    ];
    cfg.pre_call = vec![PreCallRule {
        name: Some("vip_first".into()),
        when: vec!["param:tier=vip".into()],
        action: PreCallAction::Handoff,
        threshold_scale: 0.6,
    }];
    cfg
}

/// Streams two seconds of silence as Twilio with `params`, posts the caller `lines`, ends the
/// call; returns the handoff (if any).
async fn call(
    server: &TestServer,
    call_id: &str,
    params: &[(&str, &str)],
    lines: &[&str],
) -> Option<Handoff> {
    let mut spec = RenderSpec::new(call_id, Codec::Mulaw, 8000);
    spec.custom_parameters = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>();
    let msgs = Provider::Twilio.render(&spec, &[0i16; 16_000], None);
    let mut ws = connect(server, "twilio").await;
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    for line in lines {
        // The call registers once its start is processed.
        for _ in 0..250 {
            let r = http
                .post(format!("{base}/v1/calls/{call_id}/transcript"))
                .bearer_auth(TOKEN)
                .json(&json!({"speaker": "caller", "text": line}))
                .send()
                .await
                .unwrap();
            if r.status() == 202 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    ws.send(to_ws(msgs.last().unwrap())).await.unwrap();
    let events = server.wait_ended(call_id).await;
    events.into_iter().find_map(|e| match e.kind {
        EventKind::Handoff(h) => Some(h),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reason_reaches_its_own_target() {
    let fake = FakeTwilio::default();
    let api = fake.serve().await;
    let server = TestServer::with_config(playbook_config(api)).await;
    let cases = [
        (
            "CAfraud",
            "There are charges on my card I never made.",
            "fraud_desk",
            "topic:fraud",
            "<Number>+15550001111</Number>",
        ),
        (
            "CAlegal",
            "If this isn't fixed today I'm calling my lawyer.",
            "supervisor",
            "topic:legal",
            "sip:supervisor@pbx.example",
        ),
        (
            "CAhuman",
            "Can I just talk to a real person please?",
            "front_desk",
            "reason:human_request",
            "<Identity>frontdesk</Identity>",
        ),
    ];
    for (call_id, line, name, why, in_twiml) in cases {
        let h = call(&server, call_id, &[], &[line])
            .await
            .unwrap_or_else(|| panic!("{call_id}: no handoff"));
        let route = h.route.as_ref().expect("route");
        assert_eq!((route.name.as_str(), route.rule.as_str()), (name, why));
        assert_eq!(route.fallback, ["queue:support"]);
        assert!(!h.pre_call);
        assert!(
            h.summary.why_now.contains(&format!("Routed to {name}")),
            "{}",
            h.summary.why_now
        );
        let twiml = fake.twiml_for(call_id).await;
        assert!(twiml.contains(in_twiml), "{call_id}: {twiml}");
        assert!(!twiml.contains("+15559999999"), "{call_id}: {twiml}");
    }
    // Two strongly negative turns: the retention queue.
    let h = call(
        &server,
        "CAangry",
        &[],
        &[
            "This is absolutely ridiculous.",
            "You people are useless, this is the worst service I have ever had.",
        ],
    )
    .await
    .expect("sentiment escalates");
    assert_eq!(h.route.unwrap().name, "retention");
    assert!(
        fake.twiml_for("CAangry")
            .await
            .contains("<Enqueue>retention</Enqueue>")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_goes_to_a_human_before_the_conversation() {
    let fake = FakeTwilio::default();
    let api = fake.serve().await;
    let server = TestServer::with_config(playbook_config(api)).await;
    let h = call(&server, "CAvip", &[("tier", "vip"), ("crm_id", "42")], &[])
        .await
        .expect("pre-call handoff");
    assert!(h.pre_call);
    assert_eq!(h.reasons[0].signal.name(), "pre_call");
    assert_eq!(h.reasons[0].evidence.matched.as_deref(), Some("vip_first"));
    assert_eq!(h.summary.caller_attributes["tier"], "vip");
    assert_eq!(h.summary.caller_attributes["crm_id"], "42");
    assert_eq!(h.route.as_ref().unwrap().name, "vip");
    assert!(
        fake.twiml_for("CAvip")
            .await
            .contains("<Enqueue>vip</Enqueue>")
    );
    let ev = server.events_for("CAvip");
    let t_ms = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::Handoff(_)))
        .map(|e| e.t_ms);
    assert_eq!(t_ms, Some(0));
    // A regular caller with the same words is not handed off.
    assert!(
        call(&server, "CAreg", &[("tier", "gold")], &[])
            .await
            .is_none()
    );
    server.stop().await;
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: String, body: &str) -> u16 {
    http.post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_call_records_and_the_review_queue() {
    let fake = FakeTwilio::default();
    let api = fake.serve().await;
    let cfg = playbook_config(api);
    let db_path = std::path::PathBuf::from(&cfg.store.path);
    let server = TestServer::with_config(cfg).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);

    let h = call(
        &server,
        "CAfb",
        &[],
        &["I think someone is using my card fraudulently."],
    )
    .await
    .expect("fraud escalates");
    let id = h.handoff_id.clone();
    let (status, v) = get(&http, format!("{base}/v1/handoffs/{id}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["event"], "handoff");
    assert_eq!(v["handoff_id"], id.as_str());
    assert_eq!(v["route"]["name"], "fraud_desk");
    assert_eq!(v["outcome"], "pending");
    assert!(v["feedback"].is_null());
    assert_eq!(
        get(&http, format!("{base}/v1/handoffs/ho_nope")).await.0,
        404
    );

    let fb = format!("{base}/v1/handoffs/{id}/feedback");
    assert_eq!(post(&http, fb.clone(), "{\"needed\": \"yes\"}").await, 400);
    assert_eq!(post(&http, fb.clone(), "not json").await, 400);
    assert_eq!(
        post(
            &http,
            format!("{base}/v1/handoffs/ho_nope/feedback"),
            "{\"needed\":true}"
        )
        .await,
        404
    );
    let body = r#"{"needed": false, "note": "only wanted a receipt", "agent": "ana"}"#;
    assert_eq!(post(&http, fb, body).await, 202);
    let (_, v) = get(&http, format!("{base}/v1/handoffs/{id}")).await;
    assert_eq!(v["feedback"]["needed"], false);
    assert_eq!(v["feedback"]["agent"], "ana");

    // A near miss: a topic and a repeat (0.25 + 0.25 of 0.6), no handoff.
    let near = call(
        &server,
        "CAnear",
        &[],
        &[
            "I want to cancel my subscription",
            "I said I want to cancel",
        ],
    )
    .await;
    assert!(near.is_none());
    // A calm, uneventful call is not worth a look.
    assert!(
        call(&server, "CAcalm", &[], &["what's my balance"])
            .await
            .is_none()
    );

    let (status, reviews) = get(&http, format!("{base}/v1/reviews")).await;
    assert_eq!(status, 200, "{reviews}");
    let ids: Vec<&str> = reviews
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["CAfb", "CAnear"], "{reviews}");
    assert_eq!(reviews[0]["handoff_id"], id.as_str());
    assert!(
        reviews[0]["why"][0]
            .as_str()
            .unwrap()
            .starts_with("not_needed")
    );
    assert!(reviews[1]["handoff_id"].is_null());
    let (_, only) = get(&http, format!("{base}/v1/reviews?why=near_miss")).await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(
        get(&http, format!("{base}/v1/reviews?bogus=1")).await.0,
        400
    );
    let label = format!("{base}/v1/reviews/CAnear");
    assert_eq!(
        post(&http, label, r#"{"needed": true, "agent": "lee"}"#).await,
        202
    );
    assert_eq!(
        post(
            &http,
            format!("{base}/v1/reviews/CAnope"),
            r#"{"needed": true}"#
        )
        .await,
        404
    );
    let (_, unlabelled) = get(&http, format!("{base}/v1/reviews?unlabelled=true")).await;
    assert_eq!(unlabelled.as_array().unwrap().len(), 1);

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "warmline_handoff_feedback_total{reason=\"topic\",needed=\"false\"} 1",
        "warmline_handoff_precision{reason=\"topic\"} 0.0",
        "warmline_calls_total{topic=\"fraud\",outcome=\"handed_off\"} 1",
        "warmline_calls_total{topic=\"cancel\",outcome=\"contained\"} 1",
        "warmline_calls_total{topic=\"none\",outcome=\"contained\"} 1",
        "warmline_handoffs_total{reason=\"topic\"} 1",
    ] {
        assert!(metrics.contains(want), "missing {want}");
    }
    server.stop().await;

    // The records are in the file, features only; `export-labels` turns them into labels.
    let db = warmline::store::Db::open(&db_path, 30, 1000).unwrap();
    let rec = db.call("CAfb").unwrap().expect("record");
    assert_eq!(rec.provider, "twilio");
    assert_eq!(rec.topics, ["fraud"]);
    assert!(rec.duration_ms >= 1900, "{}", rec.duration_ms);
    assert!(!rec.tone.is_empty());
    assert!(rec.summary.is_some());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["export-labels", "--db"])
        .arg(&db_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["call_id"], "CAfb");
    assert_eq!(lines[0]["needed"], false);
    assert_eq!(lines[0]["source"], "feedback");
    assert_eq!(lines[1]["call_id"], "CAnear");
    assert_eq!(lines[1]["source"], "review");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playbook_api_is_authenticated() {
    let cfg = test_config();
    let server = TestServer::with_config(cfg).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    // Every playbook route answers 401 without the API token.
    for path in ["/v1/reviews", "/v1/reviews/precision", "/v1/handoffs/ho_x"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "GET {path}");
    }
    for path in ["/v1/handoffs/ho_x/feedback", "/v1/reviews/CAx"] {
        let r = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body("{\"needed\":true}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "POST {path}");
        // Authenticated but not declared JSON (a cross-site form could send that): 415.
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body("{\"needed\":true}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "POST {path} as text/plain");
    }
    let (status, _) = get(&http, format!("{base}/v1/reviews")).await;
    assert_eq!(status, 200);
    server.stop().await;
}
