//! Request rate limiting: per client IP before authentication, per user,
//! per user and endpoint [`Class`], and an optional global ceiling after
//! authorization; role overrides; a local (governor) or Redis backend.
//! It decides and renders headers; it never reads requests, authenticates
//! or picks the order of pipeline stages.
//!
//! **Check order.** The pipeline calls [`RateLimiter::check_ip`] (or
//! `check_ip_shared`) before authentication, so password hashing is
//! protected by a cheap check, and [`RateLimiter::check_request`] (or
//! `check_request_shared`) only for authorized requests. The per-IP token
//! pays for the authentication work and is kept whatever happens next.
//!
//! **No tokens spent on denied requests.** Within `check_request` the
//! limits are taken in order user -> class -> global; when one denies, the
//! tokens already taken from the earlier ones are refunded. With GCRA the
//! refund is exact (an allow moves the key's TAT forward by exactly one
//! interval; moving it back restores the bucket), so no peek API and no
//! clock alignment with governor's private start is needed. The only
//! imprecision is a window of microseconds in which a concurrent request
//! on the same key sees one token fewer: it can under-admit, never
//! over-admit. The global limit comes last, so a user over their own quota
//! never touches the shared global state. In Redis one Lua script checks
//! all limits and writes only if all allow, so there the rule is exact.
//!
//! **Memory.** Each limit tracks at most `max_keys` keys; a key arriving
//! when full shares an overflow bucket; sweeps drop only replenished keys
//! (see `store.rs`). User names are keyed by a 64-bit keyed hash
//! (`RandomState`, kept across reloads), so key size is fixed.
//!
//! **Reload.** [`RateLimiter::rebuild`] keeps (Arc-shares) every limit whose
//! scope, quota and cap are unchanged, with its counters, and the Redis
//! connection if the Redis settings are unchanged.

pub mod config;
mod limit;
mod settings;
mod shared;
mod store;
mod sweep;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};

pub use config::RateLimitFile;
pub use settings::{Backend, ClassQuotas, QuotaSpec, RateLimitSettings, RedisSettings, RoleQuotas};
pub use shared::{BudgetKey, SharedBudgets};
pub use sweep::RateLimitStats;
pub use verdict::{
    Denied, Limited, Verdict, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET,
};

use limit::Limit;
use shared::{Shared, Step};

/// Endpoint classes, as the policy module classifies routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Read,
    Write,
    Destructive,
}

impl Class {
    /// The scope name in 429s, audit and config keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Destructive => "destructive",
        }
    }
}

type UserLimit<C> = Arc<Limit<u64, C>>;

/// The per-user limits one role uses.
struct LimitSet<C: Clock> {
    per_user: UserLimit<C>,
    classes: [UserLimit<C>; 3],
}

impl<C: Clock> LimitSet<C> {
    fn class(&self, class: Class) -> &UserLimit<C> {
        &self.classes[class as usize]
    }
}

/// All limits of one `[rate_limit]` config. Cheap synchronous checks for
/// the local backend; `*_shared` async checks use Redis when configured.
pub struct RateLimiter<C: Clock + Clone = DefaultClock> {
    settings: Arc<RateLimitSettings>,
    clock: C,
    users: std::hash::RandomState,
    per_ip: Arc<Limit<IpAddr, C>>,
    defaults: LimitSet<C>,
    roles: BTreeMap<String, LimitSet<C>>,
    global: Option<UserLimit<C>>,
    shared: Option<Arc<Shared>>,
    /// The Redis event counters, kept by every rebuild (even one that
    /// changes or drops the Redis backend): monotonic across reloads.
    redis_counters: Arc<shared::Counters>,
}

const CLASSES: [Class; 3] = [Class::Read, Class::Write, Class::Destructive];

impl RateLimiter<DefaultClock> {
    /// Limits on the real (monotonic, quanta) clock.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// Limits on a given clock (`FakeRelativeClock` in tests).
    pub fn with_clock(settings: RateLimitSettings, clock: C) -> Self {
        Self::build(settings, clock, std::hash::RandomState::new(), None)
    }

    /// A limiter for `settings` that keeps the state of every unchanged
    /// limit (and the Redis connection) of `self`. Swap it in atomically.
    pub fn rebuild(&self, settings: RateLimitSettings) -> Self {
        Self::build(settings, self.clock.clone(), self.users.clone(), Some(self))
    }

    fn build(
        s: RateLimitSettings,
        clock: C,
        users: std::hash::RandomState,
        old: Option<&Self>,
    ) -> Self {
        let cap = s.max_keys;
        let fresh_or = |old: Option<&UserLimit<C>>, scope, spec| match old {
            Some(l) if l.same_as(scope, spec, cap) => l.clone(),
            _ => Arc::new(Limit::new(scope, spec, cap, clock.clone())),
        };
        let set = |q: &RoleQuotas, old: Option<&LimitSet<C>>, base: Option<&LimitSet<C>>| {
            // A role that does not override a quota shares the default limit.
            let pick = |spec: QuotaSpec, scope, base_l: Option<&UserLimit<C>>, old_l| match base_l {
                Some(b) if b.same_as(scope, spec, cap) => b.clone(),
                _ => fresh_or(old_l, scope, spec),
            };
            LimitSet {
                per_user: pick(
                    q.per_user,
                    "user",
                    base.map(|b| &b.per_user),
                    old.map(|o| &o.per_user),
                ),
                classes: CLASSES.map(|c| {
                    let i = c as usize;
                    let spec = q.classes.get(c);
                    pick(
                        spec,
                        c.as_str(),
                        base.map(|b| &b.classes[i]),
                        old.map(|o| &o.classes[i]),
                    )
                }),
            }
        };
        let defaults = set(&s.defaults, old.map(|o| &o.defaults), None);
        let roles = s
            .roles
            .iter()
            .map(|(name, q)| {
                let old_set = old.and_then(|o| o.roles.get(name));
                (name.clone(), set(q, old_set, Some(&defaults)))
            })
            .collect();
        let global = s
            .global
            .map(|g| fresh_or(old.and_then(|o| o.global.as_ref()), "global", g));
        let same_prefix = old.is_some_and(|o| o.settings.ipv6_prefix == s.ipv6_prefix);
        let per_ip = match old {
            Some(o) if same_prefix && o.per_ip.same_as("ip", s.per_ip, cap) => o.per_ip.clone(),
            _ => Arc::new(Limit::new("ip", s.per_ip, cap, clock.clone())),
        };
        let redis_counters = old.map_or_else(Arc::default, |o| o.redis_counters.clone());
        let shared = match &s.backend {
            Backend::Local => None,
            Backend::Redis(r) => match old.and_then(|o| o.shared.as_ref()) {
                Some(sh) if sh.settings == *r => Some(sh.clone()),
                _ => Some(Arc::new(Shared::new(r.clone(), redis_counters.clone()))),
            },
        };
        RateLimiter {
            settings: Arc::new(s),
            clock,
            users,
            per_ip,
            defaults,
            roles,
            global,
            shared,
            redis_counters,
        }
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// The Redis backend as a store of separately charged budgets (failed
    /// logins), when `backend = "redis"` (also with `enabled = false`: that
    /// switch is about request limits).
    pub fn shared_budgets(&self) -> Option<SharedBudgets> {
        self.shared.clone().map(SharedBudgets::new)
    }

    /// Per-IP check, before authentication (local state). `client_ip` is
    /// what `TrustedProxies::client_ip` returned; IPv4-mapped addresses
    /// count as IPv4 and IPv6 per `ipv6_prefix`.
    pub fn check_ip(&self, client_ip: IpAddr) -> Result<(), Limited> {
        if !self.settings.enabled {
            return Ok(());
        }
        let key = crate::net::limit_key(client_ip, self.settings.ipv6_prefix);
        self.per_ip.check(&key).map(|_| ())
    }

    /// Per-user, per-class and global checks for an authorized request
    /// (local state). Spends a token of each limit only if all allow.
    pub fn check_request(&self, user: &str, role: &str, class: Class) -> Result<Verdict, Limited> {
        if !self.settings.enabled {
            return Ok(Verdict::unlimited());
        }
        let set = self.roles.get(role).unwrap_or(&self.defaults);
        let key = self.users.hash_one(user);
        let chain = [
            Some((&set.per_user, key)),
            Some((set.class(class), key)),
            self.global.as_ref().map(|g| (g, 0)),
        ];
        let mut verdict: Option<Verdict> = None;
        for (i, (limit, k)) in chain.iter().flatten().enumerate() {
            match limit.check(k) {
                Ok(s) => {
                    let v = Verdict::new(limit.scope(), s.limit, s.remaining, s.reset);
                    verdict = Some(verdict.map_or(v, |w| w.tighter(v)));
                }
                Err(limited) => {
                    for (earlier, k) in chain.iter().flatten().take(i) {
                        earlier.refund(k);
                    }
                    return Err(limited);
                }
            }
        }
        let verdict = verdict.unwrap_or_else(Verdict::unlimited);
        Ok(verdict.emitting(self.settings.headers_on_success))
    }

    /// [`Self::check_ip`] against the configured backend.
    pub async fn check_ip_shared(&self, client_ip: IpAddr) -> Result<(), Denied> {
        let Some(shared) = self.shared.as_ref().filter(|_| self.settings.enabled) else {
            return self.check_ip(client_ip).map_err(Denied::from);
        };
        let key = crate::net::limit_key(client_ip, self.settings.ipv6_prefix);
        let prefix = &shared.settings.key_prefix;
        let steps = [Step {
            scope: "ip",
            spec: self.settings.per_ip,
            key: format!("{prefix}ip:{key}"),
        }];
        match shared.decide(&steps).await {
            Ok(decision) => decision.map(|_| ()).map_err(Denied::from),
            Err(_) => self.without_redis(shared, || self.check_ip(client_ip)),
        }
    }

    /// [`Self::check_request`] against the configured backend: with Redis,
    /// one atomic decision shared by every gateway using the same Redis.
    pub async fn check_request_shared(
        &self,
        user: &str,
        role: &str,
        class: Class,
    ) -> Result<Verdict, Denied> {
        let Some(shared) = self.shared.as_ref().filter(|_| self.settings.enabled) else {
            return self.check_request(user, role, class).map_err(Denied::from);
        };
        let q = self
            .settings
            .roles
            .get(role)
            .unwrap_or(&self.settings.defaults);
        let prefix = &shared.settings.key_prefix;
        let mut steps = vec![
            Step {
                scope: "user",
                spec: q.per_user,
                key: format!("{prefix}user:{user}"),
            },
            Step {
                scope: class.as_str(),
                spec: q.classes.get(class),
                key: format!("{prefix}{}:{user}", class.as_str()),
            },
        ];
        if let Some(g) = self.settings.global {
            let key = format!("{prefix}global");
            steps.push(Step {
                scope: "global",
                spec: g,
                key,
            });
        }
        match shared.decide(&steps).await {
            Ok(decision) => decision
                .map(|v| v.emitting(self.settings.headers_on_success))
                .map_err(Denied::from),
            Err(_) => self.without_redis(shared, || self.check_request(user, role, class)),
        }
    }

    /// The documented policy when Redis gave no answer.
    fn without_redis<T>(
        &self,
        shared: &Shared,
        local: impl FnOnce() -> Result<T, Limited>,
    ) -> Result<T, Denied> {
        if self.settings.fail_closed {
            shared.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            return Err(Denied::Unavailable);
        }
        shared.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        local().map_err(Denied::from)
    }
}
