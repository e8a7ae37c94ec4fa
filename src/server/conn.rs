//! The accept loop: admits TCP connections up to `[server] max_connections` (one beyond is
//! closed as soon as it is accepted, so the process never runs out of descriptors and
//! `/healthz` keeps answering), serves HTTP/1.1 on each with a header-read timeout (a
//! slowloris client holding a half-sent request head, or an idle keep-alive connection, is
//! closed), keeps a connection's slot through its WebSocket upgrade, and on shutdown stops
//! accepting and lets requests in flight finish.
//!
//! HTTP/1.1 only: providers' media streams and browsers use it, and a prior-knowledge h2c
//! connection has no head to time out.

use super::metrics::Metrics;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service as _;

/// One admitted connection's place under `max_connections`, held by the connection and, after
/// an upgrade, by the call on it; the place frees when the last holder drops it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlot(#[allow(dead_code)] Arc<SlotGuard>);

#[derive(Debug)]
struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A place under `max_connections` from `slots` (shared by every listener of the gateway:
/// HTTP/WebSocket and AudioSocket), counted open; `None` (counted refused) when all are taken.
pub(crate) fn take_slot(slots: &Arc<Semaphore>, metrics: &Metrics) -> Option<ConnectionSlot> {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        metrics.connections_refused.inc();
        return None;
    };
    metrics.connections_open.inc();
    Some(ConnectionSlot(Arc::new(SlotGuard {
        _permit: permit,
        open: metrics.connections_open.clone(),
    })))
}

/// Accept-loop settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once (the size of the shared slots).
    pub max_connections: usize,
    /// Time allowed for a complete request head.
    pub header_read_timeout: Duration,
    /// Bound on waiting for open HTTP requests at shutdown.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, each connection holding one of
/// `slots` (see [`take_slot`]).
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    metrics: &Metrics,
    shutdown: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = TaskTracker::new();
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Per-connection failures (reset before accept) need no pause; running out
                    // of descriptors does, or the loop spins. Logged at most once a second.
                    if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::error!("accept error: {e}");
                        last_accept_error = Some(Instant::now());
                    }
                    if !is_per_connection(&e) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let Some(slot) = take_slot(&slots, metrics) else {
            // Closed at once: the peer sees the refusal instead of a stall, and the
            // descriptor is free again before the next accept.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let http = http.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(slot.clone());
                // A Router is always ready; `call` needs no `poll_ready` first.
                router.clone().call(req)
            });
            let conn = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let res = tokio::select! {
                res = conn.as_mut() => res,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = res {
                tracing::debug!(peer = %peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still open after the shutdown grace; dropping them");
    }
}

/// Accept errors that concern one connection only (it was reset while queued).
fn is_per_connection(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
