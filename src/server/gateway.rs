//! Starting and running the gateway: [`Gateway::start`] builds the state from the config (store,
//! bridge, fleet), [`serve`] accepts until shutdown and then lets open calls finish their
//! bookkeeping.

use super::cluster_host::ClusterHost;
use super::{AppState, ServerError, audiosocket, conn, routes};
use crate::bridge::{Bridge, WarmTransfers};
use crate::config::Config;
use crate::event::Event;
use crate::pipeline::PipelineSettings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Serves on `listener` until `shutdown` is cancelled, then stops accepting, lets open calls
/// finish their bookkeeping (bounded by `shutdown_grace_ms`) and returns.
pub async fn serve(listener: TcpListener, state: AppState) -> Result<(), ServerError> {
    let app = routes::router(state.clone());
    let token = state.shutdown_token();
    let metrics_task = match &state.config().server.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await?;
            tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
            let app = routes::metrics_router(state.clone());
            let t = token.clone();
            Some(tokio::spawn(async move {
                axum::serve(l, app)
                    .with_graceful_shutdown(async move { t.cancelled().await })
                    .await
            }))
        }
        None => None,
    };
    let limits = conn::Limits {
        max_connections: state.max_connections(),
        header_read_timeout: Duration::from_millis(state.config().server.header_read_timeout_ms),
        shutdown_grace: Duration::from_millis(state.config().server.shutdown_grace_ms),
    };
    if limits.max_connections < state.config().server.max_calls {
        tracing::warn!(
            max_connections = limits.max_connections,
            max_calls = state.config().server.max_calls,
            "max_connections is below max_calls: at most max_connections calls can be open"
        );
    }
    conn::serve(
        listener,
        app,
        limits,
        state.connection_slots(),
        state.metrics(),
        token.clone(),
    )
    .await;
    // Upgraded WebSockets are not tracked by hyper: wait for the call tasks ourselves.
    state.inner.tracker.close();
    let grace = Duration::from_millis(state.config().server.shutdown_grace_ms);
    if tokio::time::timeout(grace, state.inner.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace of {grace:?} ran out with calls still open");
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    Ok(())
}

/// A gateway: its state plus the bridge task delivering handoffs.
#[derive(Debug)]
pub struct Gateway {
    state: AppState,
    bridge_task: crate::bridge::BridgeTask,
    warm_task: Option<crate::bridge::WarmTask>,
    forward_task: tokio::task::JoinHandle<()>,
    /// `[server] audiosocket_listen`, bound at start so a taken port fails there.
    audiosocket: Option<TcpListener>,
}

impl Gateway {
    /// Starts the bridge (resuming any pending outbox) and builds the state.
    pub async fn start(mut cfg: Config, settings: PipelineSettings) -> Result<Self, ServerError> {
        let public_url = cfg.server.public_url.clone();
        let in_fleet = cfg.cluster.is_some();
        let warnings = cfg
            .bridge
            .resolve_modes(public_url.as_deref(), in_fleet)
            .map_err(crate::bridge::BridgeError::Config)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let (events_tx, mut events_rx) = mpsc::channel::<Event>(1024);
        let (bridge, bridge_task) = Bridge::start(cfg.bridge.clone(), events_tx.clone()).await?;
        let client = reqwest::Client::builder()
            .timeout(cfg.bridge.request_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(crate::bridge::BridgeError::Client)?;
        let (warm, warm_task) = WarmTransfers::start(&cfg.bridge, client, events_tx).await?;
        let audiosocket = match &cfg.server.audiosocket_listen {
            Some(addr) => {
                let l = TcpListener::bind(addr).await?;
                tracing::info!("AudioSocket on tcp://{}", l.local_addr()?);
                Some(l)
            }
            None => None,
        };
        let cluster_cfg = cfg.cluster.clone();
        let bridge_cfg = cfg.bridge.clone();
        let state = AppState::with_warm(cfg, settings, bridge, warm);
        if let Some(cc) = &cluster_cfg {
            let host = Arc::new(ClusterHost(Arc::downgrade(&state.inner)));
            let fallback = state.inner.bridge.clone();
            let metrics = state.inner.metrics.cluster.clone();
            let c =
                crate::cluster::Cluster::start(cc, &bridge_cfg, fallback, host, metrics).await?;
            let _ = state.inner.cluster.set(c);
        }
        let st = state.clone();
        // Delivery outcomes join the same event stream as the calls' own events.
        let forward_task = tokio::spawn(async move {
            let mut one = Vec::with_capacity(1);
            while let Some(e) = events_rx.recv().await {
                one.push(e);
                st.publish(&mut one);
            }
        });
        Ok(Self {
            state,
            bridge_task,
            warm_task,
            forward_task,
            audiosocket,
        })
    }

    /// The address the AudioSocket listener is bound to, when `[server] audiosocket_listen` is
    /// set (with port 0, the port the system chose).
    pub fn audiosocket_addr(&self) -> Option<SocketAddr> {
        self.audiosocket.as_ref()?.local_addr().ok()
    }

    /// The shared state (shutdown token, metrics, call registry).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then lets calls finish, then gives the
    /// bridge the same grace to deliver; whatever is still pending stays in the outbox.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServerError> {
        let audiosocket = self
            .audiosocket
            .map(|l| tokio::spawn(audiosocket::serve(l, self.state.clone())));
        serve(listener, self.state.clone()).await?;
        if let Some(t) = audiosocket {
            // It stops accepting on the same shutdown token; its calls are in the tracker.
            let _ = t.await;
        }
        let grace = Duration::from_millis(self.state.config().server.shutdown_grace_ms);
        if let Some(c) = self.state.cluster() {
            c.shutdown(grace).await;
        }
        self.bridge_task.shutdown(grace).await;
        if let Some(w) = self.warm_task {
            w.shutdown().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.forward_task).await;
        Ok(())
    }
}
