//! `warmline deliver`: a delivery worker alone (fleet mode). It consumes the fleet's handoff
//! stream with the shared durable consumer and delivers with `[bridge]`, exactly as a `serve`
//! instance's worker does; delivery events go to the log.

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `deliver`.
#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// TOML configuration file; needs `[cluster]` and the `[bridge]` targets.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: DeliverArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = super::load_config(args.config.as_deref())?;
    let Some(cc) = cfg.cluster.clone() else {
        anyhow::bail!("warmline deliver needs a [cluster] section (nats_url) in the config");
    };
    // The same transfer modes the fleet's gateways settle on (blind: see `resolve_mode`).
    let public_url = cfg.server.public_url.clone();
    for warning in cfg.bridge.resolve_modes(public_url.as_deref(), true)? {
        tracing::warn!("{warning}");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let metrics = crate::cluster::ClusterMetrics::default();
        let instance = cc.instance();
        let conn = crate::cluster::connection::Connection::open(&cc, &instance, &metrics).await?;
        crate::cluster::handoffs::ensure_stream(&conn.js, &cc.handoff_stream, &cc.subject_prefix)
            .await?;
        let emit: crate::cluster::delivery::Emit = Arc::new(|e| match serde_json::to_string(&e) {
            Ok(json) => tracing::info!(target: "warmline::event", call_id = %e.call_id, "{json}"),
            Err(err) => tracing::warn!("event not serialisable: {err}"),
        });
        let settings = crate::cluster::worker_settings(&cc, &conn, &cfg.bridge, emit, &metrics);
        let worker = crate::cluster::delivery::Worker::start(settings).await?;
        println!("delivering handoffs from {} as {instance}", cc.nats_url);
        super::shutdown_signal().await;
        tracing::info!("stopping: unfinished handoffs go back to JetStream");
        worker
            .shutdown(Duration::from_millis(cfg.server.shutdown_grace_ms))
            .await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
