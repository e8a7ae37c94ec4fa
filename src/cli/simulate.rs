//! `warmline simulate`: the load generator's command line and summary (the work is in
//! [`crate::sim`]).

use crate::protocol::Provider;
use crate::sim::{Rate, SimAuth, SimConfig, SimReport};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RateArg {
    Realtime,
    Max,
}

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Wire format to send.
    #[arg(long, default_value = "twilio")]
    provider: String,
    /// Concurrent streams.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Spread the connections over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    ramp_s: f64,
    /// Media seconds per call (the input audio loops to fill it).
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// `realtime`: one 20 ms chunk every 20 ms; `max`: as fast as the socket takes it.
    #[arg(long, value_enum, default_value = "realtime")]
    rate: RateArg,
    /// Uniform extra delay per chunk in ms (0..J), seeded.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Seed of the jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Transcript lines (JSONL with `t_ms`) posted to every call at their media time.
    #[arg(long, value_name = "FILE.jsonl")]
    transcript: Option<PathBuf>,
    /// Bearer token for the upgrade (non-Twilio providers) and for transcript posts.
    #[arg(long, env = "WARMLINE_TOKEN")]
    token: Option<String>,
    /// Twilio auth token to sign upgrades with (X-Twilio-Signature).
    #[arg(long, env = "TWILIO_AUTH_TOKEN")]
    twilio_auth_token: Option<String>,
    /// Metrics URL (default: http://<host>/metrics of URL).
    #[arg(long)]
    metrics_url: Option<String>,
    /// Gateway process id, to report its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Every connection pings the gateway this often (ms) and times the pong; 0: never.
    #[arg(long, default_value_t = 1000)]
    ping_ms: u64,
    /// Do not subscribe to the gateway's `/v1/events` to time handoffs from outside.
    #[arg(long)]
    no_events: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// `[FILE.wav] URL`: caller audio (WAV, first channel; default: the bundled synthetic call)
    /// and the gateway's base URL, e.g. ws://127.0.0.1:8080.
    #[arg(value_name = "[FILE.wav] URL", num_args = 1..=2, required = true)]
    positional: Vec<String>,
}

impl SimulateArgs {
    /// The WAV, when one is given before the URL.
    pub(super) fn input(&self) -> Option<&std::path::Path> {
        match self.positional.as_slice() {
            [wav, _url] => Some(std::path::Path::new(wav)),
            _ => None,
        }
    }

    /// The gateway URL: always the last positional argument.
    pub(super) fn url(&self) -> &str {
        self.positional.last().map_or("", String::as_str)
    }
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(args.input(), &args)?;
    let json = args.json;
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let report = rt.block_on(crate::sim::run(cfg))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn config(input: Option<&std::path::Path>, a: &SimulateArgs) -> anyhow::Result<SimConfig> {
    let provider: Provider = a.provider.parse()?;
    if a.calls == 0 {
        anyhow::bail!("--calls must be at least 1");
    }
    for (name, v) in [
        ("--ramp-s", a.ramp_s),
        ("--duration-s", a.duration_s),
        ("--jitter-ms", a.jitter_ms),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            anyhow::bail!("{name} must be a non-negative number");
        }
    }
    if a.duration_s < 0.02 {
        anyhow::bail!("--duration-s must be at least 0.02");
    }
    let (sample_rate_hz, pcm) = match input {
        Some(p) => {
            let (rate, mut channels) = crate::replay::read_wav(p)?;
            (rate, channels.swap_remove(0))
        }
        None => (8000, crate::synth::example_escalating_call()),
    };
    let transcript = match &a.transcript {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    serde_json::from_str(l)
                        .with_context(|| format!("{} line {}", p.display(), i + 1))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let auth = match (provider, &a.twilio_auth_token, &a.token) {
        (Provider::Twilio, Some(t), _) => SimAuth::Twilio(t.clone()),
        (_, _, Some(t)) => SimAuth::Bearer(t.clone()),
        _ => SimAuth::None,
    };
    Ok(SimConfig {
        provider,
        calls: a.calls,
        ramp: Duration::from_secs_f64(a.ramp_s),
        duration: Duration::from_secs_f64(a.duration_s),
        rate: match a.rate {
            RateArg::Realtime => Rate::Realtime,
            RateArg::Max => Rate::Max,
        },
        jitter_ms: a.jitter_ms,
        seed: a.seed,
        base_url: a.url().to_owned(),
        auth,
        api_token: a.token.clone(),
        metrics_url: a.metrics_url.clone(),
        server_pid: a.server_pid,
        pcm,
        sample_rate_hz,
        transcript,
        ping_interval: (a.ping_ms > 0).then(|| Duration::from_millis(a.ping_ms)),
        watch_events: !a.no_events,
    })
}

fn print_summary(r: &SimReport) {
    println!(
        "{} streams ({}): {} opened, {} refused (503), {} failed; {} completed cleanly, {} ended otherwise; peak {} concurrent",
        r.calls,
        r.provider,
        r.opened,
        r.refused,
        r.failed,
        r.completed,
        r.ended_otherwise,
        r.peak_concurrent
    );
    println!(
        "sent {} messages in {:.1} s; generator lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; generator CPU {:.0}%",
        r.messages_sent,
        r.wall_s,
        r.send_lag.p50_ms,
        r.send_lag.p99_ms,
        r.send_lag.max_ms,
        r.generator_cpu_pct
    );
    print_outside(&r.outside);
    if r.transcript_accepted > 0 {
        println!("transcript lines accepted: {}", r.transcript_accepted);
    }
    match &r.server {
        Some(s) => {
            println!(
                "server frame processing: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms ({} observations)",
                s.frame_latency.p50_ms,
                s.frame_latency.p90_ms,
                s.frame_latency.p99_ms,
                s.frame_latency.count
            );
            println!(
                "server frame lag behind the media clock: p50 {:.3} ms, p99 {:.3} ms; {} frames over 20 ms",
                s.frame_lag.p50_ms, s.frame_lag.p99_ms, s.frames_lag_over_20ms
            );
            println!(
                "server: {} frames, {} dropped, {} late; {} handoffs, {} stream errors, {} admission rejections",
                s.frames,
                s.frames_dropped,
                s.frames_late,
                s.handoffs,
                s.stream_errors,
                s.admission_rejections
            );
        }
        None => println!("server metrics: not available (could not scrape /metrics)"),
    }
    if let Some(w) = &r.steady {
        print!(
            "steady state ({:.0}-{:.0} s, {} calls open):",
            w.from_s, w.to_s, w.active_calls
        );
        if let Some(s) = &w.server {
            print!(
                " processing p50 {:.3} ms, p99 {:.3} ms; lag p50 {:.3} ms, p99 {:.3} ms, {} over 20 ms;",
                s.frame_latency.p50_ms,
                s.frame_latency.p99_ms,
                s.frame_lag.p50_ms,
                s.frame_lag.p99_ms,
                s.frames_lag_over_20ms
            );
        }
        print!(
            " ping RTT p50 {:.2} ms, p99 {:.2} ms;",
            w.ping_rtt.p50_ms, w.ping_rtt.p99_ms
        );
        if let Some(c) = w.cpu_pct {
            print!(" server CPU {c:.0}%;");
        }
        if let Some(c) = w.generator_cpu_pct {
            print!(" generator CPU {c:.0}%;");
        }
        if let (Some(r), Some(k)) = (w.rss_kib, w.rss_per_call_kib) {
            print!(" RSS {r} KiB, {k:.0} KiB per call");
        }
        println!();
    }
    if let Some(p) = &r.server_process {
        println!(
            "server process: CPU {:.0}%, RSS {} KiB before, {} KiB peak, {:.0} KiB per call",
            p.cpu_pct, p.rss_before_kib, p.rss_peak_kib, p.rss_per_call_kib
        );
    }
}

/// The client-side figures: what a provider would see.
fn print_outside(o: &crate::sim::OutsideView) {
    println!(
        "outside view: ping RTT p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} of {} pongs); set-up p50 {:.1} ms, p99 {:.1} ms",
        o.ping_rtt.p50_ms,
        o.ping_rtt.p99_ms,
        o.ping_rtt.max_ms,
        o.pongs_received,
        o.pings_sent,
        o.setup.p50_ms,
        o.setup.p99_ms
    );
    if o.events_watched {
        println!(
            "outside view: {} handoffs seen on /v1/events, deciding frame sent to handoff seen p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            o.handoffs_observed,
            o.handoff_observed.p50_ms,
            o.handoff_observed.p99_ms,
            o.handoff_observed.max_ms
        );
    } else {
        println!(
            "outside view: /v1/events not watched (--no-events, or the subscription was refused)"
        );
    }
}
