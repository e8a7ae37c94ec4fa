//! "A decided handoff is never lost": the real `warmline serve` binary is killed with SIGKILL
//! right after it announced a burst of handoffs, and every announced handoff must be in its
//! outbox; plus the operator side (start-up refusals, `/healthz` degraded, `warmline outbox`).

use crate::common::*;
use futures_util::SinkExt as _;
use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warmline::bridge::WebhookConfig;
use warmline::bridge::outbox::{Outbox, OutboxEntry};
use warmline::codec::Codec;
use warmline::protocol::{Provider, RenderSpec};

/// A config for the real binary: loopback, the test credentials, a webhook nobody answers (so
/// entries stay pending), the outbox in `dir`.
fn config_file(dir: &Path, outbox: &Path) -> std::path::PathBuf {
    let mut cfg = test_config();
    cfg.bridge.outbox_dir = outbox.to_owned();
    cfg.bridge.initial_backoff_ms = 60_000;
    cfg.bridge.max_backoff_ms = 60_000;
    cfg.bridge.webhook = Some(WebhookConfig {
        // Port 9 (discard) on loopback: refused at once, retried a minute later.
        url: "http://127.0.0.1:9/handoff".into(),
        secret: "s".into(),
        previous_secret: None,
    });
    let path = dir.join("warmline.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("toml")).expect("write config");
    path
}

struct Serve {
    child: Child,
    addr: String,
}

/// Starts `warmline serve`, returning once it prints its address.
fn serve(config: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("RUST_LOG", "warmline=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn warmline serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Serve { child, addr }
}

fn outbox_ids(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("outbox dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| Outbox::read_entry(&e.path()).ok())
        .map(|e: OutboxEntry| e.handoff_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_announced_handoff_survives_kill_9() {
    const CALLS: usize = 60;
    let tmp = tempfile::tempdir().unwrap();
    let outbox = tmp.path().join("outbox");
    let config = config_file(tmp.path(), &outbox);
    let mut gw = serve(&config);
    let ws_url = format!("ws://{}/v1/media/twilio", gw.addr);
    let base = format!("http://{}", gw.addr);

    // Every call streams a second of audio and stays open (no stop).
    let mut sockets = Vec::new();
    for i in 0..CALLS {
        let call = format!("CAburst{i:03}");
        let pcm = vec![0i16; 16_000];
        let msgs = Provider::Twilio.render(&RenderSpec::new(&call, Codec::Mulaw, 8000), &pcm, None);
        let mut ws = connect_url(&ws_url).await;
        let half = msgs.len() / 2;
        for m in &msgs[..half] {
            ws.send(to_ws(m)).await.unwrap();
        }
        // The second second of audio (never the stop) goes after the transcript line.
        let rest = msgs[half..msgs.len() - 1].to_vec();
        sockets.push((call, ws, rest));
    }
    let http = reqwest::Client::new();
    let mut registered = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while registered < CALLS && Instant::now() < deadline {
        let calls: serde_json::Value = http
            .get(format!("{base}/v1/calls"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        registered = calls.as_array().map_or(0, Vec::len);
    }
    assert_eq!(registered, CALLS, "calls did not all start");

    // The burst: every caller asks for a human at once.
    let posts = sockets.iter().map(|(call, _, _)| {
        http.post(format!("{base}/v1/calls/{call}/transcript"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"speaker": "caller", "text": "get me a human agent now", "final": true}))
            .send()
    });
    for r in futures_util::future::join_all(posts).await {
        assert_eq!(r.unwrap().status(), 202);
    }
    // Lines apply as media time passes: the rest of the audio for every call.
    for (_, ws, rest) in &mut sockets {
        for m in rest.iter() {
            let _ = ws.send(to_ws(m)).await;
        }
    }

    // Kill the moment every handoff has been announced on /v1/calls.
    let mut announced = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while announced.len() < CALLS && Instant::now() < deadline {
        let calls: serde_json::Value = http
            .get(format!("{base}/v1/calls"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in calls.as_array().into_iter().flatten() {
            if let Some(id) = c["handoff"]["handoff_id"].as_str() {
                announced.insert(id.to_owned());
            }
        }
    }
    gw.child.kill().expect("SIGKILL");
    gw.child.wait().expect("reaped");
    assert_eq!(announced.len(), CALLS, "not every call handed off");

    let persisted = outbox_ids(&outbox);
    let lost: Vec<&String> = announced.difference(&persisted).collect();
    assert!(
        lost.is_empty(),
        "{} of {} announced handoffs not in the outbox after kill -9: {lost:?}",
        lost.len(),
        announced.len()
    );

    // And a restart resumes them all (the lock died with the process; the batch log is
    // replayed first, see `wal::tests`).
    let mut again = serve(&config);
    let _ = again.child.kill();
    let _ = again.child.wait();
}

#[test]
fn a_second_gateway_on_the_same_outbox_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = tmp.path().join("outbox");
    let config = config_file(tmp.path(), &outbox);
    let mut first = serve(&config);
    let second = Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let _ = first.child.kill();
    let _ = first.child.wait();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("in use by another warmline process")
            && err.contains(&outbox.display().to_string()),
        "{err}"
    );

    // An outbox path that cannot be a directory is refused at start-up, naming it.
    let blocked = tmp.path().join("blocked");
    std::fs::write(&blocked, b"a file").unwrap();
    let config = config_file(tmp.path(), &blocked);
    let out = Command::new(env!("CARGO_BIN_EXE_warmline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not writable") && err.contains("blocked"),
        "{err}"
    );
}

#[test]
fn outbox_cli_lists_and_retries_failed_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let ob = Outbox::open(dir).unwrap();
        let mut e: OutboxEntry = serde_json::from_value(serde_json::json!({
            "version": 1, "handoff_id": "h-cli-1",
            "request": {"event": {"event": "handoff", "call_id": "CAcli", "t_ms": 5,
                "handoff_id": "h-cli-1", "reasons": [], "score": 0.9,
                "summary": serde_json::to_value(warmline::event::Summary::default()).unwrap()},
                "provider": "twilio"},
            "targets": {"webhook": {"attempts": 8, "delivered": false, "failed": true,
                "last_error": "HTTP 500"}}
        }))
        .expect("entry json");
        e.targets.get_mut("webhook").unwrap().failed = true;
        ob.move_to_failed(&e).unwrap();
    }
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warmline"))
            .args(["outbox"])
            .args(args)
            .arg("--dir")
            .arg(dir)
            .output()
            .expect("run")
    };
    let list = run(&["list"]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("h-cli-1\tfailed\tCAcli\twebhook:failed\t8\tHTTP 500"),
        "{text}"
    );
    assert!(!run(&["retry", "nope"]).status.success());
    assert!(run(&["retry", "--all"]).status.success());
    let text = String::from_utf8_lossy(&run(&["list"]).stdout).into_owned();
    assert!(
        text.contains("h-cli-1\tpending\tCAcli\twebhook:pending\t0"),
        "{text}"
    );
}

/// Connects a Twilio stream to `url` with a valid signature.
async fn connect_url(url: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = url.into_client_request().expect("request");
    let sig = warmline::server::auth::twilio_signature(TWILIO_TOKEN, url, &[]);
    req.headers_mut()
        .insert("x-twilio-signature", sig.parse().expect("header"));
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}
