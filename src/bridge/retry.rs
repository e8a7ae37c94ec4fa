//! Retry policy: which answers are worth another attempt and how long to wait before it.
//!
//! Pure: the wait comes from the attempt number and a seed (the handoff id), never from a global
//! RNG or the clock, so a schedule is reproducible in tests and after a restart.

use std::time::Duration;

/// What one attempt's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: the target has it.
    Delivered,
    /// Worth another attempt: 408, 409, 425, 429, every 5xx and anything unexpected (1xx).
    Retry,
    /// Other 4xx: the request itself is refused (bad credentials, call already gone, 404);
    /// repeating the same bytes will not change that, so the delivery fails at once. 3xx too:
    /// redirects are not followed (a POST turned GET would lose the body), and a moved
    /// endpoint is a configuration fix, not something time heals.
    Permanent,
}

/// Sorts an HTTP status into delivered / retry / permanent.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Delivered,
        408 | 409 | 425 | 429 => StatusClass::Retry,
        300..=499 => StatusClass::Permanent,
        _ => StatusClass::Retry,
    }
}

/// Exponential backoff with deterministic "equal jitter".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure, before jitter.
    pub initial_ms: u64,
    /// Cap of the un-jittered wait.
    pub max_ms: u64,
}

impl Backoff {
    /// The un-jittered wait after `failed_attempts` failures (1 → `initial_ms`, doubling, capped).
    pub fn base_ms(&self, failed_attempts: u32) -> u64 {
        let doublings = failed_attempts.saturating_sub(1).min(63);
        self.initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }

    /// The wait after `failed_attempts` failures: uniform in `[base/2, base]`, the point picked
    /// by hashing `seed` and the attempt number. Half the base is kept so a retry never comes
    /// sooner than half the schedule; the other half spreads many handoffs failing together
    /// (a receiver outage) so they do not return in lockstep.
    pub fn delay_ms(&self, failed_attempts: u32, seed: &str) -> u64 {
        let base = self.base_ms(failed_attempts);
        let half = base / 2;
        let span = base - half;
        if span == 0 {
            return base;
        }
        let h = fnv1a(seed.as_bytes(), failed_attempts);
        half + h % (span + 1)
    }

    /// [`Self::delay_ms`], stretched to a server's `Retry-After` (still capped at `max_ms`).
    pub fn delay(&self, failed_attempts: u32, seed: &str, retry_after_s: Option<u64>) -> Duration {
        let own_ms = self.delay_ms(failed_attempts, seed);
        let asked_ms = retry_after_s
            .map(|s| s.saturating_mul(1000).min(self.max_ms))
            .unwrap_or(0);
        Duration::from_millis(own_ms.max(asked_ms))
    }
}

/// FNV-1a over the seed and the attempt number: cheap, stable across builds and platforms.
fn fnv1a(bytes: &[u8], salt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes.iter().chain(salt.to_le_bytes().iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_doubles_from_initial_and_caps() {
        let b = Backoff {
            initial_ms: 500,
            max_ms: 30_000,
        };
        let bases: Vec<u64> = (1..=9).map(|n| b.base_ms(n)).collect();
        assert_eq!(
            bases,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
        // Huge attempt numbers saturate instead of overflowing.
        assert_eq!(b.base_ms(u32::MAX), 30_000);
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_is_reproducible() {
        let b = Backoff {
            initial_ms: 500,
            max_ms: 30_000,
        };
        for n in 1..=10 {
            let base = b.base_ms(n);
            let d = b.delay_ms(n, "h-123");
            assert!(
                d >= base / 2 && d <= base,
                "attempt {n}: {d} vs base {base}"
            );
            assert_eq!(d, b.delay_ms(n, "h-123"));
        }
        // Different handoffs spread out.
        let spread: std::collections::BTreeSet<u64> =
            (0..20).map(|i| b.delay_ms(5, &format!("h-{i}"))).collect();
        assert!(spread.len() > 10, "{spread:?}");
    }

    #[test]
    fn retry_after_stretches_but_stays_capped() {
        let b = Backoff {
            initial_ms: 10,
            max_ms: 5_000,
        };
        assert!(b.delay(1, "x", None) <= Duration::from_millis(10));
        assert_eq!(b.delay(1, "x", Some(2)), Duration::from_millis(2_000));
        assert_eq!(b.delay(1, "x", Some(3600)), Duration::from_millis(5_000));
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify_status(200), StatusClass::Delivered);
        assert_eq!(classify_status(204), StatusClass::Delivered);
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert_eq!(classify_status(s), StatusClass::Retry, "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410, 422] {
            assert_eq!(classify_status(s), StatusClass::Permanent, "{s}");
        }
    }
}
