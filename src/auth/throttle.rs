//! [`FailureLimiter`]: one keyed failed-login budget, consulted **before**
//! any hashing; only failures consume it (the three budgets built from it
//! are in `budgets.rs`). governor's keyed GCRA counts failures; since it
//! cannot be peeked without consuming, a small side map remembers keys
//! whose budget is spent and until when. Limits always recover. State is
//! bounded: past `max_keys` the map is swept, and keys that still do not
//! fit share one overflow bucket, so a flood of fresh keys never frees a
//! key that is already limited.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference as _};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Most keys each limiter tracks before sweeping / overflowing.
pub const DEFAULT_MAX_KEYS: usize = 65_536;
/// Sweep the limiter every this many recorded failures.
const SWEEP_EVERY: u64 = 4_096;

/// The key a client IP is limited under: IPv4-mapped IPv6 counts as IPv4,
/// IPv6 is aggregated per /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// A keyed failure budget, generic over its clock so tests can fake time.
pub struct FailureLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, StateInformationMiddleware>,
    blocked: Mutex<HashMap<K, C::Instant>>,
    clock: C,
    overflow: K,
    max_keys: usize,
    replenish: Duration,
    recorded: AtomicU64,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> FailureLimiter<K, C> {
    /// `overflow` is the shared key used once `max_keys` keys are tracked.
    pub fn new(quota: Quota, clock: C, overflow: K, max_keys: usize) -> Self {
        FailureLimiter {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            blocked: Mutex::new(HashMap::new()),
            clock,
            overflow,
            max_keys,
            replenish: quota.replenish_interval(),
            recorded: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` while `key` has no failure budget left.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut blocked = self.lock();
        let mut wait = Duration::ZERO;
        let full = self.limiter.len() >= self.max_keys;
        for k in [Some(key), full.then_some(&self.overflow)]
            .into_iter()
            .flatten()
        {
            if let Some(until) = blocked.get(k).copied() {
                if until > now {
                    wait = wait.max(until.duration_since(now).into());
                } else {
                    blocked.remove(k);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Consumes one unit of `key`'s budget.
    pub fn record_failure(&self, key: &K) {
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        if self.limiter.len() >= self.max_keys {
            self.sweep();
        }
        let key = if self.limiter.len() >= self.max_keys {
            &self.overflow
        } else {
            key
        };
        let until = match self.limiter.check_key(key) {
            Ok(snapshot) if snapshot.remaining_burst_capacity() == 0 => {
                // Spent: the next unit arrives within one replenish interval.
                Some(self.clock.now() + self.replenish.into())
            }
            Ok(_) => None,
            Err(not_until) => Some(not_until.earliest_possible()),
        };
        if let Some(until) = until {
            self.lock().insert(key.clone(), until);
        }
    }

    /// Drops keys whose budget is full again and expired blocks.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = self.clock.now();
        self.lock().retain(|_, until| *until > now);
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, C::Instant>> {
        // A poisoned map only holds expiry times; keep using it.
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;

    fn limiter(
        burst: u32,
        max_keys: usize,
    ) -> (FailureLimiter<u32, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_minute(NonZeroU32::new(10).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap());
        (
            FailureLimiter::new(quota, clock.clone(), u32::MAX, max_keys),
            clock,
        )
    }

    #[test]
    fn burst_then_blocked_then_recovers() {
        let (l, clock) = limiter(3, 100);
        for _ in 0..3 {
            assert!(l.check(&1).is_ok());
            l.record_failure(&1);
        }
        let wait = l.check(&1).unwrap_err();
        assert!(wait <= Duration::from_secs(6) && !wait.is_zero());
        assert!(l.check(&2).is_ok(), "other keys are unaffected");
        clock.advance(Duration::from_secs(6));
        assert!(l.check(&1).is_ok(), "limits recover");
        l.record_failure(&1);
        assert!(l.check(&1).is_err());
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(&1).is_ok());
            l.record_failure(&1);
        }
    }

    #[test]
    fn state_is_bounded_and_overflow_stays_limited() {
        let (l, _clock) = limiter(2, 50);
        l.record_failure(&7);
        l.record_failure(&7);
        assert!(l.check(&7).is_err());
        for k in 100..10_000 {
            l.record_failure(&k);
        }
        assert!(l.tracked_keys() <= 51, "{}", l.tracked_keys());
        assert!(l.check(&7).is_err(), "a flood does not free a limited key");
        assert!(
            l.check(&123_456).is_err(),
            "new keys share the spent overflow"
        );
    }

    #[test]
    fn ip_keys() {
        let k = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(k("::ffff:127.0.0.1"), k("127.0.0.1"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_ne!(k("10.0.0.1"), k("10.0.0.2"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(5001)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
    }
}
