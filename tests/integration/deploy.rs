//! What a user deploys with: `warmline.example.toml` loads with the real loader and names every
//! key at its default, `warmline check-config` validates and masks secrets, and the README
//! integration snippets' payloads go through the real server.

use crate::common::*;
use futures_util::SinkExt as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use warmline::codec::Codec;
use warmline::config::Config;
use warmline::protocol::{Provider, RenderSpec};
use warmline::synth::{Segment, speech};

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("warmline.example.toml")
}

/// Every leaf key path of a TOML value with its value.
fn leaves(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[test]
fn the_example_config_loads_and_names_every_key_at_its_default() {
    let no_env = |_: &str| -> Option<String> { None };
    let cfg = Config::load(Some(example_path().as_path()), &no_env).expect("example loads");
    let example: toml::Value =
        toml::from_str(&std::fs::read_to_string(example_path()).unwrap()).unwrap();
    let mut have = BTreeMap::new();
    leaves("", &example, &mut have);
    // Every key the loader knows, with the optional sections as the example fills them;
    // `detector.topic.topics` is the built-in phrase list, which setting it would replace.
    let mut known = BTreeMap::new();
    leaves(
        "",
        &toml::Value::try_from(Config::default()).unwrap(),
        &mut known,
    );
    leaves("", &toml::Value::try_from(&cfg).unwrap(), &mut known);
    let text = std::fs::read_to_string(example_path()).unwrap();
    assert!(text.contains("# [[routing]]") && text.contains("# [[pre_call]]"));
    let missing: Vec<&String> = known
        .keys()
        .filter(|k| !k.starts_with("detector.topic.topics."))
        // Arrays of tables, empty by default: the example documents them commented out.
        .filter(|k| !matches!(k.as_str(), "routing" | "pre_call"))
        .filter(|k| !have.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "warmline.example.toml lacks {missing:?}"
    );
    // …and every value it sets outside the optional sections is the default.
    let d = Config::default();
    assert_eq!(cfg.server, d.server);
    assert_eq!(cfg.dsp, d.dsp);
    assert_eq!(cfg.detector, d.detector);
    assert_eq!(cfg.auth.required, d.auth.required);
    let b = &cfg.bridge;
    assert_eq!(
        (
            b.outbox_dir.clone(),
            b.queue_capacity,
            b.max_attempts,
            b.max_concurrent_requests
        ),
        (
            d.bridge.outbox_dir.clone(),
            d.bridge.queue_capacity,
            d.bridge.max_attempts,
            d.bridge.max_concurrent_requests
        )
    );
    assert_eq!(
        (b.initial_backoff_ms, b.max_backoff_ms, b.request_timeout_ms),
        (
            d.bridge.initial_backoff_ms,
            d.bridge.max_backoff_ms,
            d.bridge.request_timeout_ms
        )
    );
    let tw = b.twilio.as_ref().expect("[bridge.twilio]");
    let td = warmline::bridge::TwilioConfig::new("", "", "");
    assert_eq!(
        (tw.mode, tw.answer_timeout_s, &tw.api_base, &tw.say),
        (td.mode, td.answer_timeout_s, &td.api_base, &td.say)
    );
    assert!(
        b.webhook.is_some()
            && b.telnyx.is_some()
            && b.vonage.is_some()
            && b.plivo.is_some()
            && b.asterisk.is_some()
    );
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["check-config"])
        .arg(example_path())
        .env("WARMLINE_BRIDGE_WEBHOOK_SECRET", "from-the-env")
        .env("WARMLINE_BRIDGE_ASTERISK_PASSWORD", "ari-from-the-env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("from-the-env"), "{stdout}");
    assert!(stdout.contains("secret = \"***\""), "{stdout}");
    // The ARI password too (basic auth), from the file or the environment.
    assert!(!stdout.contains("ari-from-the-env"), "{stdout}");
    assert!(stdout.contains("password = \"***\""), "{stdout}");
    assert!(stdout.contains("mode = \"auto\""), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nmax_calls = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.max_calls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_snippets_payloads_drive_the_real_server() {
    let mut cfg = test_config();
    cfg.auth.protect_api = Some(true);
    let server = TestServer::with_config(cfg).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    // The bot's side subscribes first, as the snippet's watch_events does.
    let mut feed = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);

    let call = "CAsnippet";
    let pcm = speech(&[Segment::calm(3.0, 140.0)], 8000, 3);
    let msgs = Provider::Twilio.render(&RenderSpec::new(call, Codec::Mulaw, 8000), &pcm, None);
    let mut ws = connect(&server, "twilio").await;
    for m in &msgs[..msgs.len() - 1] {
        ws.send(to_ws(m)).await.unwrap();
    }
    // on_transcript's payload, exactly.
    let mut handed_off = false;
    for _ in 0..100 {
        let r = http
            .post(format!("{base}/v1/calls/{call}/transcript"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&serde_json::json!({"speaker": "caller", "text": "get me a real person please", "final": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status() == 202 || r.status() == 404, "{}", r.status());
        if server
            .events_for(call)
            .iter()
            .any(|e| matches!(e.kind, warmline::event::EventKind::Handoff(_)))
        {
            handed_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(handed_off);
    // watch_events' parsing: `data:` lines of JSON, events inside, the handoff's whisper there.
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let whisper = loop {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk())
            .await
            .expect("handoff on the feed")
            .unwrap()
            .expect("feed open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let found = buf
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| {
                let msg: serde_json::Value = serde_json::from_str(d.trim()).ok()?;
                // The contract: each `data:` line is one event.
                assert!(
                    msg["event"].is_string() && msg["call_id"].is_string(),
                    "{msg}"
                );
                let events = msg
                    .get("events")
                    .and_then(|e| e.as_array().cloned())
                    .unwrap_or_else(|| vec![msg.clone()]);
                events
                    .into_iter()
                    .find(|e| e["event"] == "handoff" && e["call_id"] == call)
                    .map(|e| e["summary"]["whisper"].as_str().unwrap_or("").to_owned())
            });
        if let Some(w) = found {
            break w;
        }
    };
    assert!(!whisper.is_empty());
    drop(ws);
    server.stop().await;
}
