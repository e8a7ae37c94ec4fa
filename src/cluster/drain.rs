//! Drain on SIGTERM: stop admitting calls, let the open ones end on their own (bounded by
//! `drain_timeout_ms`), then the normal shutdown closes what is left with 1001. Handoffs
//! this instance was delivering are handed back to JetStream for the other workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The draining flag.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
}

impl Drain {
    /// Whether new calls are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Refuses new calls from now on, then waits until `open_calls()` is 0 or `timeout` passes;
    /// returns the calls still open.
    pub async fn run(&self, open_calls: impl Fn() -> usize, timeout: Duration) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let open = open_calls();
            if open == 0 || tokio::time::Instant::now() >= deadline {
                return open;
            }
            tracing::info!(open, "draining: waiting for open calls to end");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn drain_refuses_then_waits_for_calls_or_the_timeout() {
        let d = Drain::default();
        assert!(!d.is_draining());
        let open = AtomicUsize::new(2);
        let left = d
            .run(
                || open.fetch_sub(1, Ordering::Relaxed).saturating_sub(1),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(left, 0);
        assert!(d.is_draining());
        let left = Drain::default().run(|| 3, Duration::from_secs(1)).await;
        assert_eq!(left, 3);
    }
}
