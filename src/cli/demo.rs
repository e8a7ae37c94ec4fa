//! `warmline demo`: a gateway on a free local port, a local webhook receiver, and the bundled
//! example call streamed in as Twilio would send it (signed upgrade, 20 ms mu-law chunks,
//! transcript lines posted at their media times). Prints the events as they happen.

use crate::codec::Codec;
use crate::event::EventKind;
use crate::protocol::{Provider, RenderSpec, WireMessage};
use anyhow::Context as _;
use clap::Args;
use futures_util::SinkExt as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Playback speed: 1 = real time (36 s), 4 = four times faster.
    #[arg(long, default_value_t = 4.0)]
    speed: f64,
    /// Print raw JSON events instead of the readable timeline.
    #[arg(long)]
    json: bool,
    /// Keep the gateway running after the call (Ctrl-C to stop), e.g. to open the dashboard.
    #[arg(long)]
    keep_running: bool,
    /// Address for the demo gateway.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

const DEMO_TWILIO_TOKEN: &str = "demo-twilio-auth-token";
/// The demo's API token: the dashboard and transcript posts need one (`/?token=demo-api-token`).
const DEMO_API_TOKEN: &str = "demo-api-token";

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.speed > 0.0 && args.speed <= 1000.0) {
        anyhow::bail!("--speed must be within (0, 1000]");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let outbox = std::env::temp_dir().join(format!("warmline-demo-outbox-{}", std::process::id()));
    let mut cfg = crate::config::Config::default();
    cfg.server.listen = args.listen.clone();
    cfg.auth.twilio = Some(crate::config::TwilioAuth {
        auth_token: DEMO_TWILIO_TOKEN.into(),
        ..Default::default()
    });
    cfg.auth.token = Some(crate::config::TokenAuth {
        value: DEMO_API_TOKEN.into(),
    });
    cfg.bridge.outbox_dir = outbox;
    // The demo keeps no call records: nothing of it outlives the run.
    cfg.store.path = String::new();
    cfg.validate()?;
    let settings = super::pipeline_settings(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen).await?;
    let addr = listener.local_addr()?;
    let gateway = crate::server::Gateway::start(cfg, settings).await?;
    let state = gateway.state().clone();
    let mut events = state.subscribe();
    let server = tokio::spawn(gateway.serve(listener));
    println!(
        "listening on http://{addr}  (demo gateway; dashboard at http://{addr}/?token={DEMO_API_TOKEN})"
    );

    let printer = tokio::spawn({
        let json = args.json;
        async move {
            let mut handoff = false;
            while let Ok(e) = events.recv().await {
                if json {
                    if let Ok(s) = serde_json::to_string(&*e) {
                        println!("{s}");
                    }
                } else {
                    print_event(&e);
                }
                match e.kind {
                    EventKind::Handoff(_) => handoff = true,
                    EventKind::CallEnded(_) => break,
                    _ => {}
                }
            }
            handoff
        }
    });

    let pcm = crate::synth::example_escalating_call();
    let spec = RenderSpec::new("CAdemo0000000000000000000000000001", Codec::Mulaw, 8000);
    let msgs = Provider::Twilio.render(&spec, &pcm, None);
    let url = format!("ws://{addr}/v1/media/twilio");
    let mut req = url.as_str().into_client_request()?;
    let sig = crate::server::auth::twilio_signature(DEMO_TWILIO_TOKEN, &url, &[]);
    req.headers_mut().insert("x-twilio-signature", sig.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .context("connecting to the demo gateway")?;
    let http = reqwest::Client::new();
    let mut transcript: Vec<crate::detect::TranscriptLine> = crate::synth::example_transcript()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    transcript.reverse();
    let chunk = Duration::from_secs_f64(0.020 / args.speed);
    let mut tick = tokio::time::interval(chunk);
    let mut media_ms = 0u64;
    for m in msgs {
        if let WireMessage::Text(t) = &m
            && t.contains("\"event\":\"media\"")
        {
            tick.tick().await;
            media_ms += 20;
        }
        while transcript
            .last()
            .is_some_and(|l| l.t_ms.unwrap_or(0) <= media_ms)
        {
            if let Some(line) = transcript.pop() {
                let _ = http
                    .post(format!(
                        "http://{addr}/v1/calls/{}/transcript",
                        spec.call_id
                    ))
                    .bearer_auth(DEMO_API_TOKEN)
                    .json(&line)
                    .send()
                    .await;
            }
        }
        let msg = match m {
            WireMessage::Text(t) => Message::text(t),
            WireMessage::Binary(b) => Message::binary(b),
        };
        if ws.send(msg).await.is_err() {
            break;
        }
    }
    let _ = ws.close(None).await;
    let handoff = tokio::time::timeout(Duration::from_secs(10), printer)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    if args.keep_running {
        println!("call finished; gateway still running at http://{addr}/ (Ctrl-C to stop)");
        let _ = tokio::signal::ctrl_c().await;
    }
    state.shutdown_token().cancel();
    let _ = server.await;
    println!(
        "demo finished: {}",
        if handoff {
            "the caller was handed to a human"
        } else {
            "no handoff"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn print_event(e: &crate::event::Event) {
    let t = format!("{:6.1}s", e.t_ms as f64 / 1000.0);
    match &e.kind {
        EventKind::CallStarted(c) => println!(
            "{t}  call {} started ({}, {} {} Hz)",
            e.call_id, c.provider, c.codec, c.sample_rate_hz
        ),
        EventKind::Prosody(p) if p.track == crate::event::Track::Caller => println!(
            "{t}  caller  F0 {:>6}  {:5.1} dBFS  tone {:.2} {}",
            p.f0_hz.map_or("-".to_owned(), |f| format!("{f:.0} Hz")),
            p.energy_db,
            p.tone_score,
            "#".repeat((p.tone_score * 20.0).round() as usize)
        ),
        EventKind::Prosody(_) => {}
        EventKind::Signal(s) => println!(
            "{t}  signal {} = {:.2} (threshold {:.2})",
            s.signal.name(),
            s.value,
            s.threshold
        ),
        EventKind::Handoff(h) => {
            println!("{t}  >>> HANDOFF {} (score {:.2})", h.handoff_id, h.score);
            for r in &h.reasons {
                println!(
                    "          {} = {:.2} >= {:.2}",
                    r.signal.name(),
                    r.value,
                    r.threshold
                );
            }
            println!("          intent: {}", h.summary.caller_intent);
            println!("          whisper: \"{}\"", h.summary.whisper);
        }
        EventKind::HandoffDelivered(d) => println!(
            "{t}  handoff delivered to {} after {} attempt(s)",
            d.target, d.attempts
        ),
        EventKind::HandoffFailed(d) => println!(
            "{t}  handoff delivery to {} FAILED after {} attempts",
            d.target, d.attempts
        ),
        EventKind::CallEnded(c) => println!(
            "{t}  call ended ({}), {} frames, handoff: {}",
            c.reason, c.frames, c.handoff
        ),
        EventKind::HandoffConnected(c) => println!(
            "{t}  agent {} answered after {} ms",
            c.target, c.time_to_agent_ms
        ),
        EventKind::HandoffFallback(f) => {
            println!("{t}  {} {}: trying {}", f.from, f.reason, f.to);
        }
        EventKind::HandoffAbandoned(a) => {
            println!("{t}  caller hung up on hold after {} ms", a.waited_ms);
        }
    }
}
