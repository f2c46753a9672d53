//! The three failed-login budgets of an authenticator ([`Throttle`]), aimed
//! at the attacker, not at whoever shares its address: per (client IP, user
//! name) the tight one (one client guessing one account), per user name
//! across all IPs a looser one (a distributed guess at one account), per
//! client IP across all names the loosest (password spraying; a whole NAT
//! shares it). A user whose credentials verify is refused only by its own
//! budgets or by its IP's spraying budget, never by failures made under
//! another name.
//!
//! Each budget is kept locally ([`FailureLimiter`]) and, when a
//! [`SharedFailures`] store (Redis) is attached, in the store too, so N
//! gateways give one budget. The local state is always charged as well:
//! when the store does not answer, the local budgets decide (per instance)
//! and the fallback is counted. Only the authenticator's miss path comes
//! here, never a cache hit.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::Quota;
use sha2::{Digest as _, Sha256};

use super::cache::{Keyer, NameKey};
use super::config::FailureBudgets;
use super::stats::AuthStats;
use super::throttle::{client_key, FailureLimiter, DEFAULT_MAX_KEYS};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn budgets(ip_user: u32, user: u32, ip: u32) -> FailureBudgets {
        let q = |b| {
            Quota::per_minute(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::new(b).unwrap())
        };
        FailureBudgets {
            per_ip_user: q(ip_user),
            per_user: q(user),
            per_ip: q(ip),
        }
    }

    /// A store that answers `wait` (or nothing) and counts calls.
    struct Store {
        wait: Option<Option<Duration>>,
        checks: AtomicU32,
        charges: AtomicU32,
    }

    impl SharedFailures for Store {
        fn check<'a>(&'a self, keys: &'a [SharedKey]) -> StoreFuture<'a, Option<Duration>> {
            assert_eq!(keys.len(), 3);
            self.checks.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { self.wait.ok_or(NoAnswer) })
        }
        fn charge<'a>(&'a self, _: &'a [SharedKey]) -> StoreFuture<'a, ()> {
            self.charges.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { self.wait.map(|_| ()).ok_or(NoAnswer) })
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    #[tokio::test]
    async fn another_names_failures_do_not_refuse_within_the_ip_budget() {
        let t = Throttle::new(budgets(2, 10, 10), None, None);
        let keyer = Keyer::random();
        let stats = AuthStats::default();
        let a = t.attempt(&keyer, IP, "a");
        for _ in 0..2 {
            assert!(t.check(&a, &stats).await.is_ok());
            t.charge(&a, &stats).await;
        }
        assert!(
            t.check(&a, &stats).await.is_err(),
            "a's own budget is spent"
        );
        let b = t.attempt(&keyer, IP, "b");
        assert!(t.check(&b, &stats).await.is_ok(), "b is not refused");
        // A reload with the same budgets keeps the counts.
        let again = Throttle::new(budgets(2, 10, 10), None, Some(&t));
        assert!(again.check(&a, &stats).await.is_err());
        let changed = Throttle::new(budgets(3, 10, 10), None, Some(&t));
        assert!(changed.check(&a, &stats).await.is_ok());
    }

    #[tokio::test]
    async fn the_shared_store_decides_and_its_silence_is_counted() {
        let keyer = Keyer::random();
        let stats = AuthStats::default();
        let spent = Arc::new(Store {
            wait: Some(Some(Duration::from_secs(7))),
            checks: AtomicU32::new(0),
            charges: AtomicU32::new(0),
        });
        let t = Throttle::new(budgets(5, 5, 5), Some(spent.clone()), None);
        let a = t.attempt(&keyer, IP, "a");
        assert_eq!(t.check(&a, &stats).await, Err(Duration::from_secs(7)));
        t.charge(&a, &stats).await;
        assert_eq!(spent.checks.load(Ordering::Relaxed), 1);
        assert_eq!(spent.charges.load(Ordering::Relaxed), 1);
        assert_eq!(stats.shared_fallbacks(), 0);

        let silent = Arc::new(Store {
            wait: None,
            checks: AtomicU32::new(0),
            charges: AtomicU32::new(0),
        });
        let t = Throttle::new(budgets(1, 5, 5), Some(silent.clone()), None);
        let a = t.attempt(&keyer, IP, "a");
        assert!(t.check(&a, &stats).await.is_ok(), "local budget has room");
        t.charge(&a, &stats).await;
        assert_eq!(stats.shared_fallbacks(), 2);
        assert!(
            t.check(&a, &stats).await.is_err(),
            "the local count decides"
        );
        assert_eq!(
            silent.checks.load(Ordering::Relaxed),
            1,
            "not asked when local refuses"
        );
    }

    #[test]
    fn shared_keys_are_stable_and_fixed_size() {
        assert_eq!(stable_tag(&[b"ab", b"c"]), stable_tag(&[b"ab", b"c"]));
        assert_ne!(stable_tag(&[b"ab", b"c"]), stable_tag(&[b"a", b"bc"]));
        assert_eq!(stable_tag(&[&[b'x'; 5000]]).len(), 32);
    }
}
