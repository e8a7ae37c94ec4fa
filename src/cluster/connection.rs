//! The NATS connection: connect once at start-up (an unreachable NATS is a start-up error that
//! names the URL), then survive losses. async-nats reconnects forever; while it does, its
//! command channel (`client_capacity` = `[cluster] publish_buffer`) buffers publishes and
//! every publish here has a deadline, so a NATS outage never blocks a call. The connected
//! flag drives `warmline_cluster_connected` and `/healthz`.

use super::ClusterError;
use super::config::ClusterConfig;
use super::metrics::ClusterMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long start-up waits for NATS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A live (or reconnecting) NATS client with JetStream.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Core NATS.
    pub client: async_nats::Client,
    /// JetStream on `client`.
    pub js: async_nats::jetstream::Context,
    connected: Arc<AtomicBool>,
}

impl Connection {
    /// Connects to `cfg.nats_url` as `instance`.
    pub async fn open(
        cfg: &ClusterConfig,
        instance: &str,
        metrics: &ClusterMetrics,
    ) -> Result<Self, ClusterError> {
        let connected = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&connected);
        let gauge = metrics.connected.clone();
        let disconnects = metrics.disconnects.clone();
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("warmline {instance}"))
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .client_capacity(cfg.publish_buffer.max(64))
            .event_callback(move |ev| {
                let (flag, gauge, disconnects) =
                    (Arc::clone(&flag), gauge.clone(), disconnects.clone());
                async move {
                    match ev {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connected");
                            flag.store(true, Ordering::Relaxed);
                            gauge.set(1);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS disconnected; calls go on, reconnecting");
                            flag.store(false, Ordering::Relaxed);
                            gauge.set(0);
                            disconnects.inc();
                        }
                        other => tracing::info!("NATS: {other}"),
                    }
                }
            });
        if let Some(t) = &cfg.token {
            opts = opts.token(t.clone());
        }
        if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        let urls: Vec<async_nats::ServerAddr> = cfg
            .nats_url
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| ClusterError::Connect {
                url: cfg.nats_url.clone(),
                reason: e.to_string(),
            })?;
        let client = opts
            .connect(urls)
            .await
            .map_err(|e| ClusterError::Connect {
                url: cfg.nats_url.clone(),
                reason: e.to_string(),
            })?;
        // The Connected event may have fired before the callback's flag existed for it.
        if client.connection_state() == async_nats::connection::State::Connected {
            connected.store(true, Ordering::Relaxed);
            metrics.connected.set(1);
        }
        let js = async_nats::jetstream::new(client.clone());
        Ok(Self {
            client,
            js,
            connected,
        })
    }

    /// Whether NATS is reachable right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}
