//! Shared test helpers: a real gateway on 127.0.0.1:0, real WebSocket clients, a tap on the
//! decoded audio, and event collection.

#![allow(dead_code)]

use futures_util::{SinkExt as _, StreamExt as _};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use warmline::config::Config;
use warmline::event::{Event, Track};
use warmline::pipeline::PipelineSettings;
use warmline::protocol::WireMessage;
use warmline::server::{AppState, Gateway};

pub const TOKEN: &str = "test-token";
pub const TWILIO_TOKEN: &str = "test-twilio-token";

/// Decoded audio per (call id, track).
pub type Tap = Arc<Mutex<HashMap<(String, Track), Vec<i16>>>>;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The AudioSocket listener, when `[server] audiosocket_listen` is set.
    pub audiosocket: Option<SocketAddr>,
    pub state: AppState,
    pub tap: Tap,
    pub events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
    collector: JoinHandle<()>,
}

pub fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.auth.twilio = Some(warmline::config::TwilioAuth {
        auth_token: TWILIO_TOKEN.into(),
        ..Default::default()
    });
    cfg.auth.token = Some(warmline::config::TokenAuth {
        value: TOKEN.into(),
    });
    // Tests stream their audio as fast as it goes; pacing has its own test (limits.rs).
    cfg.server.max_media_lead_s = 0.0;
    cfg.bridge.outbox_dir = tempfile::tempdir().expect("tempdir").keep();
    // Each server its own store file, never one in the working directory.
    // (a directory apart from the outbox's, whose files the outbox owns).
    cfg.store.path = tempfile::tempdir()
        .expect("tempdir")
        .keep()
        .join("warmline.db")
        .to_string_lossy()
        .into_owned();
    cfg
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(cfg: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::with_config_on(cfg, listener).await
    }

    /// A gateway on a listener bound beforehand (when the config must know its address).
    pub async fn with_config_on(cfg: Config, listener: tokio::net::TcpListener) -> Self {
        let tap: Tap = Arc::default();
        let t = tap.clone();
        let settings = PipelineSettings {
            audio_tap: Some(Arc::new(move |call: &str, track: Track, pcm: &[i16]| {
                if let Ok(mut m) = t.lock() {
                    m.entry((call.to_owned(), track))
                        .or_default()
                        .extend_from_slice(pcm);
                }
            })),
            playbook: Arc::new(cfg.playbook()),
            ..Default::default()
        };
        let addr = listener.local_addr().expect("addr");
        let gw = Gateway::start(cfg, settings).await.expect("gateway");
        let audiosocket = gw.audiosocket_addr();
        let state = gw.state().clone();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let mut rx = state.subscribe();
        let ev = events.clone();
        let collector = tokio::spawn(async move {
            while let Ok(e) = rx.recv().await {
                ev.lock().expect("lock").push((*e).clone());
            }
        });
        let task = tokio::spawn(async move {
            gw.serve(listener).await.expect("serve");
        });
        Self {
            addr,
            audiosocket,
            state,
            tap,
            events,
            task,
            collector,
        }
    }

    pub fn url(&self, provider: &str) -> String {
        format!("ws://{}/v1/media/{provider}", self.addr)
    }

    pub fn audio(&self, call: &str, track: Track) -> Vec<i16> {
        self.tap
            .lock()
            .expect("lock")
            .get(&(call.to_owned(), track))
            .cloned()
            .unwrap_or_default()
    }

    pub fn events_for(&self, call: &str) -> Vec<Event> {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.call_id == call)
            .cloned()
            .collect()
    }

    /// Waits until `call` has ended (its `call_ended` event), up to 10 s.
    pub async fn wait_ended(&self, call: &str) -> Vec<Event> {
        for _ in 0..500 {
            let ev = self.events_for(call);
            if ev
                .iter()
                .any(|e| matches!(e.kind, warmline::event::EventKind::CallEnded(_)))
            {
                return ev;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "call {call} did not end; events: {:?}",
            self.events_for(call).len()
        );
    }

    pub async fn stop(self) {
        self.state.shutdown_token().cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        self.collector.abort();
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects with the credentials a provider would send.
pub async fn connect(server: &TestServer, provider: &str) -> Ws {
    let url = server.url(provider);
    let mut req = url.as_str().into_client_request().expect("request");
    if provider == "twilio" {
        let sig = warmline::server::auth::twilio_signature(TWILIO_TOKEN, &url, &[]);
        req.headers_mut()
            .insert("x-twilio-signature", sig.parse().expect("header"));
    } else {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("header"),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws
}

pub fn to_ws(m: &WireMessage) -> Message {
    match m {
        WireMessage::Text(t) => Message::text(t.clone()),
        WireMessage::Binary(b) => Message::binary(b.clone()),
    }
}

/// Sends messages, then waits for the server's close (or the socket's end); returns the close code.
pub async fn send_all(ws: &mut Ws, msgs: &[WireMessage]) -> Option<CloseCode> {
    for m in msgs {
        if ws.send(to_ws(m)).await.is_err() {
            break;
        }
    }
    close_code(ws).await
}

/// Reads until the server closes; returns its close code (None when the socket just ended).
pub async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    let fut = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some(f.code),
                Ok(Message::Close(None)) => return None,
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None;
                }
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or(None)
}

/// Expected PCM after a codec round trip.
pub fn round_trip(codec: warmline::codec::Codec, pcm: &[i16]) -> Vec<i16> {
    pcm.iter().map(|&s| codec.round_trip(s)).collect()
}

/// Runs `cmd` with its stdout closed before it writes (as `| head` that has already gone) and
/// asserts that it ends with status 0 and says nothing about the pipe.
pub fn assert_quiet_when_stdout_closes(mut cmd: std::process::Command) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cmd:?}: status {:?}: {err}",
        out.status
    );
    assert!(
        !err.contains("Broken pipe") && !err.contains("panicked"),
        "{cmd:?}: {err}"
    );
}
