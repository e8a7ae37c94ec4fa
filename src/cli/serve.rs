//! `warmline serve`

use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `[server] listen`; default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// TOML configuration file (every key has a default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = super::load_config(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
        cfg.validate()?;
    }
    let settings = super::pipeline_settings(&cfg)?;
    raise_open_file_limit();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cfg.server.worker_threads {
        rt.worker_threads(n);
    }
    let rt = rt.build().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
            .await
            .with_context(|| format!("binding {}", cfg.server.listen))?;
        let addr = listener.local_addr()?;
        if let Some(w) = cfg.auth_warning() {
            tracing::warn!("{w}");
            eprintln!("WARNING: {w}");
        }
        let gateway = crate::server::Gateway::start(cfg, settings).await?;
        println!("listening on http://{addr}");
        let token = gateway.state().shutdown_token();
        let state = gateway.state().clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            if let Some(c) = state.cluster() {
                tracing::info!("draining: no new calls; open calls may finish");
                c.drain().await;
            }
            tracing::info!("shutdown requested: no new calls; finishing open calls");
            token.cancel();
        });
        gateway.serve(listener).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Raises the soft open-file limit to the hard one: every call and connection is a descriptor,
/// and the usual soft default (1024) caps a gateway far below what it can carry.
/// `[server] max_connections` defaults to a share of the raised limit.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
