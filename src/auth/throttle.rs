//! Failed-login limits, consulted **before** any hashing; only failures
//! consume them. Three budgets aim at the attacker, not at whoever shares
//! its address: per (client IP, user name) the tight one (one client
//! guessing one account), per user name across all IPs a looser one (a
//! distributed guess at one account), per client IP across all names the
//! loosest (password spraying; a whole NAT shares it). A user whose
//! credentials verify is refused only by its own budgets or by its IP's
//! spraying budget, never by failures made under another name.
//!
//! [`Throttle`] keeps the three locally and, when a [`SharedFailures`]
//! store (Redis) is attached, asks it too, so N gateways give one budget.
//! The local state is always charged as well: when the store does not
//! answer, the local budgets decide (per instance) and the fallback is
//! counted.
//!
//! **Local state.** governor's keyed GCRA
//! counts failures; since it cannot be peeked without consuming, a small
//! side map remembers keys whose budget is spent and until when. Limits
//! always recover. State is bounded: past `max_keys` the map is swept, and
//! keys that still do not fit share one overflow bucket, so a flood of
//! fresh keys never frees a key that is already limited.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference as _};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest as _, Sha256};

use super::cache::{Keyer, NameKey};
use super::config::FailureBudgets;
use super::stats::AuthStats;

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

/// A boxed future of a [`SharedFailures`] call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, NoAnswer>> + Send + 'a>>;

/// The shared store gave no answer (timeout, error, breaker open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer;

/// One budget in a shared store: a key stable across instances and its
/// quota.
#[derive(Debug, Clone)]
pub struct SharedKey {
    pub key: String,
    pub quota: Quota,
}

/// Failure budgets kept outside the process (Redis), shared by every
/// gateway that uses the same store. Each call is bounded by the store's
/// own timeout.
pub trait SharedFailures: Send + Sync {
    /// The longest wait among `keys` whose budget is spent, `None` when
    /// all have budget left. Spends nothing.
    fn check<'a>(&'a self, keys: &'a [SharedKey]) -> StoreFuture<'a, Option<Duration>>;
    /// Spends one unit of each key's budget (independently).
    fn charge<'a>(&'a self, keys: &'a [SharedKey]) -> StoreFuture<'a, ()>;
}

/// Overflow keys of the limiters: no real key equals them (IPv6 keys have a
/// zero lower half; name keys are HMACs).
const IP_OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::new(
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
));
const NAME_OVERFLOW: NameKey = [0xff; 16];

/// The local limiters of the three budgets (kept across reloads while the
/// budgets do not change).
pub(crate) struct LocalBudgets {
    budgets: FailureBudgets,
    per_ip_user: FailureLimiter<NameKey>,
    per_user: FailureLimiter<NameKey>,
    per_ip: FailureLimiter<IpAddr>,
}

impl LocalBudgets {
    fn new(budgets: FailureBudgets) -> Self {
        let clock = DefaultClock::default();
        LocalBudgets {
            budgets,
            per_ip_user: FailureLimiter::new(
                budgets.per_ip_user,
                clock.clone(),
                NAME_OVERFLOW,
                DEFAULT_MAX_KEYS,
            ),
            per_user: FailureLimiter::new(
                budgets.per_user,
                clock.clone(),
                NAME_OVERFLOW,
                DEFAULT_MAX_KEYS,
            ),
            per_ip: FailureLimiter::new(budgets.per_ip, clock, IP_OVERFLOW, DEFAULT_MAX_KEYS),
        }
    }
}

/// The keys one login attempt is counted under.
pub(crate) struct Attempt {
    ip: IpAddr,
    ip_user: NameKey,
    user: NameKey,
    /// Only built when a shared store is attached.
    shared: Vec<SharedKey>,
}

/// The three failed-login budgets of an authenticator.
pub(crate) struct Throttle {
    local: Arc<LocalBudgets>,
    shared: Option<Arc<dyn SharedFailures>>,
}

impl Throttle {
    /// Budgets for `budgets`; `previous` lends its counters when the
    /// budgets are unchanged (a reload must not reset an attacker's count).
    pub(crate) fn new(
        budgets: FailureBudgets,
        shared: Option<Arc<dyn SharedFailures>>,
        previous: Option<&Throttle>,
    ) -> Throttle {
        let local = match previous {
            Some(p) if p.local.budgets == budgets => p.local.clone(),
            _ => Arc::new(LocalBudgets::new(budgets)),
        };
        Throttle { local, shared }
    }

    /// The keys of an attempt by `user` from `client_ip`.
    pub(crate) fn attempt(&self, keyer: &Keyer, client_ip: IpAddr, user: &str) -> Attempt {
        let ip = client_key(client_ip);
        let shared = match self.shared {
            None => Vec::new(),
            Some(_) => {
                let b = &self.local.budgets;
                let ip_text = ip.to_string();
                vec![
                    SharedKey {
                        key: format!(
                            "fail:ipuser:{}",
                            stable_tag(&[ip_text.as_bytes(), user.as_bytes()])
                        ),
                        quota: b.per_ip_user,
                    },
                    SharedKey {
                        key: format!("fail:user:{}", stable_tag(&[user.as_bytes()])),
                        quota: b.per_user,
                    },
                    SharedKey {
                        key: format!("fail:ip:{ip_text}"),
                        quota: b.per_ip,
                    },
                ]
            }
        };
        Attempt {
            ip,
            ip_user: keyer.ip_user_key(ip, user),
            user: keyer.name_key(user),
            shared,
        }
    }

    /// `Err(wait)` while any of the attempt's budgets is spent.
    pub(crate) async fn check(&self, a: &Attempt, stats: &AuthStats) -> Result<(), Duration> {
        let l = &*self.local;
        let local = [
            l.per_ip_user.check(&a.ip_user).err(),
            l.per_user.check(&a.user).err(),
            l.per_ip.check(&a.ip).err(),
        ];
        if let Some(wait) = local.into_iter().flatten().max() {
            // The local counts are a subset of the shared ones: no need to ask.
            return Err(wait);
        }
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        match shared.check(&a.shared).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(NoAnswer) => {
                stats.shared_fallback();
                Ok(())
            }
        }
    }

    /// Charges one failure to each of the attempt's budgets.
    pub(crate) async fn charge(&self, a: &Attempt, stats: &AuthStats) {
        let l = &*self.local;
        l.per_ip_user.record_failure(&a.ip_user);
        l.per_user.record_failure(&a.user);
        l.per_ip.record_failure(&a.ip);
        if let Some(shared) = &self.shared {
            if shared.charge(&a.shared).await.is_err() {
                stats.shared_fallback();
            }
        }
    }
}

/// A key for the shared store that every instance derives alike (the
/// local keys are keyed by a per-process secret): SHA-256 of the parts,
/// length-prefixed, 128 bits in hex. Names of any length cost the same.
fn stable_tag(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
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
