//! Handoff burst durability (#22): 1,000 handoffs decided within one second, each timed from
//! `Bridge::submit` (the decision) to its return (fsynced in the outbox: file and directory), then
//! 1,000 decided at the same instant. Prints p50/p99/max per pattern.
//!
//! `cargo bench --bench outbox_burst` (or `--profile dev`: the cost is fsync, not CPU). The
//! outbox lives under `target/` (a real disk; `$OUTBOX_BENCH_DIR` overrides), and the webhook
//! points at a closed loopback port with a long backoff, so delivery adds no load.

use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warmline::bridge::{Bridge, BridgeConfig, Durability, HandoffRequest, WebhookConfig};
use warmline::event::{Event, EventKind, Handoff, Summary};

const HANDOFFS: usize = 1_000;

fn request(i: usize) -> HandoffRequest {
    let id = format!("h-bench-{i:05}");
    HandoffRequest {
        event: Event {
            call_id: format!("CAbench{i:05}"),
            t_ms: 30_000,
            kind: EventKind::Handoff(Handoff {
                handoff_id: id,
                reasons: vec![],
                score: 0.9,
                summary: Summary {
                    caller_intent: "cancel the subscription".into(),
                    why_now: "asked for a human".into(),
                    ..Summary::default()
                },
                provider: Some(warmline::protocol::Provider::Twilio.into()),
                route: None,
                pre_call: false,
            }),
        },
        provider: warmline::protocol::Provider::Twilio,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(label: &str, spacing: Duration, offset: usize) {
    let base = std::env::var_os("OUTBOX_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = tempfile::tempdir_in(base).expect("bench dir");
    let cfg = BridgeConfig {
        outbox_dir: dir.path().to_owned(),
        initial_backoff_ms: 600_000,
        max_backoff_ms: 600_000,
        webhook: Some(WebhookConfig {
            url: "http://127.0.0.1:9/handoff".into(),
            secret: "bench".into(),
            previous_secret: None,
        }),
        ..BridgeConfig::default()
    };
    let (events_tx, mut events_rx) = mpsc::channel(4096);
    tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    let (bridge, task) = Bridge::start(cfg, events_tx).await.expect("bridge");
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..HANDOFFS {
        let b = bridge.clone();
        let at = tokio::time::Instant::from_std(t0 + spacing * i as u32);
        set.spawn(async move {
            tokio::time::sleep_until(at).await;
            let decided = Instant::now();
            let d = b.submit(request(offset + i)).await.expect("submit");
            assert_eq!(d, Durability::Persisted);
            decided.elapsed()
        });
    }
    let mut lat = Vec::with_capacity(HANDOFFS);
    while let Some(r) = set.join_next().await {
        lat.push(r.expect("task"));
    }
    let wall = t0.elapsed();
    lat.sort();
    let files = std::fs::read_dir(dir.path())
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count();
    println!(
        "{label}: {HANDOFFS} handoffs in {wall:.3?}; decision-to-fsynced p50 {:.2?} p99 {:.2?} max {:.2?}; {files} files",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1],
    );
    assert_eq!(files, HANDOFFS);
    task.shutdown(Duration::from_millis(100)).await;
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run(
            "1,000 over one second (1 per ms)",
            Duration::from_millis(1),
            0,
        )
        .await;
        run("1,000 at once", Duration::ZERO, HANDOFFS).await;
    });
}
