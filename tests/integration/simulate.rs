//! The load generator against a real gateway: every message it sends arrives, every admitted
//! call ends cleanly, and admission refusals are counted on both sides.

use crate::common::{TOKEN, TWILIO_TOKEN, TestServer, test_config};
use std::time::Duration;
use warmline::event::EventKind;
use warmline::protocol::Provider;
use warmline::sim::{Rate, SimAuth, SimConfig, SimReport};

fn sim(server: &TestServer, calls: usize, duration_ms: u64) -> SimConfig {
    SimConfig {
        provider: Provider::Twilio,
        calls,
        ramp: Duration::from_millis(100),
        duration: Duration::from_millis(duration_ms),
        rate: Rate::Realtime,
        jitter_ms: 2.0,
        seed: 7,
        base_url: format!("ws://{}", server.addr),
        auth: SimAuth::Twilio(TWILIO_TOKEN.into()),
        api_token: None,
        metrics_url: None,
        server_pid: Some(std::process::id()),
        pcm: warmline::synth::example_escalating_call()[..8000].to_vec(),
        sample_rate_hz: 8000,
        transcript: Vec::new(),
        ping_interval: Some(Duration::from_millis(500)),
        // Without the API token the feed refuses the subscription: reported as not watched.
        watch_events: true,
    }
}

fn ended_frames(server: &TestServer) -> Vec<(String, u64, String)> {
    server
        .events
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallEnded(c) => Some((e.call_id.clone(), c.frames, c.reason.clone())),
            _ => None,
        })
        .collect()
}

async fn wait_for_ended(server: &TestServer, n: usize) -> Vec<(String, u64, String)> {
    for _ in 0..100 {
        let v = ended_frames(server);
        if v.len() >= n {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ended_frames(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_is_received_whole_and_ends_cleanly() {
    let server = TestServer::start().await;
    // 4.5 s of media looped from 1 s of input, in real time with jitter: long enough for a
    // window with every call open (after the ramp and a settling 2 s, before the first stop).
    let report: SimReport = warmline::sim::run(sim(&server, 5, 4500))
        .await
        .expect("run");
    assert_eq!((report.opened, report.refused, report.failed), (5, 0, 0));
    assert_eq!(report.completed, 5, "{report:?}");
    let ended = wait_for_ended(&server, 5).await;
    assert_eq!(ended.len(), 5);
    // Twilio: connected + start + 225 media + stop per call.
    assert_eq!(report.messages_sent, 5 * 228);
    for (id, frames, reason) in &ended {
        assert_eq!(*frames, 225, "call {id} frames");
        assert_eq!(reason, "stop", "call {id}");
    }
    let s = report.server.expect("metrics scraped");
    assert_eq!(s.frames, 1125);
    assert_eq!(s.frames_dropped, 0);
    assert_eq!(s.frame_latency.count, 1125);
    // Every frame is also timed against its call's media clock.
    assert_eq!(s.frame_lag.count, 1125);
    assert!(
        s.frame_latency.p99_ms > 0.0 && s.frame_latency.p99_ms < 20.0,
        "{s:?}"
    );
    assert_eq!(s.calls_started, 5);
    let p = report.server_process.expect("process stats");
    assert!(p.rss_peak_kib > 0);
    // The all-calls-open window saw every call streaming.
    let w = report.steady.expect("steady window");
    assert_eq!(w.active_calls, 5, "{w:?}");
    let ws = w.server.as_ref().expect("metrics scraped in the window");
    assert!(ws.frames > 0 && ws.frames < 1125, "{ws:?}");
    assert_eq!(ws.frame_lag.count, ws.frame_latency.count);
    assert!(w.cpu_pct.is_some() && w.rss_kib.is_some(), "{w:?}");
    // Pings every 500 ms (25 frames): 9 per call, each answered; the window saw some.
    let o = &report.outside;
    assert_eq!((o.pings_sent, o.pongs_received), (45, 45), "{o:?}");
    assert_eq!(o.ping_rtt.count, 45);
    assert!(w.ping_rtt.count > 0 && w.ping_rtt.count < 45, "{w:?}");
    assert!(!o.events_watched, "no API token: the feed is not watched");
    // Real-time pacing: 4.5 s of media cannot be sent much faster than 4.5 s.
    assert!(report.wall_s >= 4.4, "wall {}", report.wall_s);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_max_calls_are_refused_at_admission() {
    let mut cfg = test_config();
    cfg.server.max_calls = 3;
    let server = TestServer::with_config(cfg).await;
    let mut c = sim(&server, 6, 1000);
    // All six at once, so the first three are still streaming when the rest arrive.
    c.ramp = Duration::ZERO;
    c.rate = Rate::Realtime;
    let report = warmline::sim::run(c).await.expect("run");
    assert_eq!(report.opened, 3, "{report:?}");
    assert_eq!(report.refused, 3, "{report:?}");
    assert_eq!(report.completed, 3, "{report:?}");
    let s = report.server.expect("metrics scraped");
    assert_eq!(s.admission_rejections, 3);
    // Too short for an all-calls-open window.
    assert!(report.steady.is_none());
    assert_eq!(s.frames_dropped, 0);
    assert_eq!(
        server
            .state
            .metrics()
            .encode()
            .lines()
            .find(|l| l.starts_with("warmline_admission_rejections_total"))
            .map(str::to_owned),
        Some("warmline_admission_rejections_total 3".to_owned())
    );
    let ended = wait_for_ended(&server, 3).await;
    assert_eq!(ended.len(), 3);
    assert!(
        ended.iter().all(|(_, f, r)| *f == 50 && r == "stop"),
        "{ended:?}"
    );
    server.stop().await;
}

/// The outside view against a real gateway: every ping answered and timed, every connection's
/// set-up timed, and every call's handoff (a transcript line asking for a human) seen on
/// `/v1/events` and timed from the frame that decided it. Sanity bounds only: speed is the
/// load benchmark's business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outside_view_times_pings_set_up_and_handoffs() {
    let server = TestServer::start().await;
    let mut c = sim(&server, 3, 3000);
    c.api_token = Some(TOKEN.into());
    c.ping_interval = Some(Duration::from_millis(200));
    c.transcript = vec![
        serde_json::from_str(
            r#"{"t_ms":500,"speaker":"caller","text":"I want to speak to a human agent now","final":true}"#,
        )
        .expect("line"),
    ];
    let r = warmline::sim::run(c).await.expect("run");
    assert_eq!(r.completed, 3, "{r:?}");
    let o = &r.outside;
    // 150 frames per call, a ping after every 10th.
    assert_eq!((o.pings_sent, o.pongs_received), (45, 45), "{o:?}");
    let p = o.ping_rtt;
    assert_eq!(p.count, 45);
    assert!(
        p.p50_ms > 0.0 && p.p50_ms <= p.p99_ms && p.p99_ms <= p.max_ms,
        "{p:?}"
    );
    assert!(
        p.max_ms < 3000.0,
        "a pong slower than the whole call: {p:?}"
    );
    assert_eq!(o.setup.count, 3, "{o:?}");
    assert!(o.setup.p50_ms > 0.0 && o.setup.max_ms < 3000.0, "{o:?}");
    assert!(o.events_watched, "{o:?}");
    assert_eq!(o.handoffs_observed, 3, "{o:?}");
    let h = o.handoff_observed;
    assert_eq!(h.count, 3, "{h:?}");
    assert!(h.max_ms < 3000.0, "{h:?}");
    let s = r.server.expect("metrics scraped");
    assert_eq!(s.handoffs, 3);
    server.stop().await;
}
