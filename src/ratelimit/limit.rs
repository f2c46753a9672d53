//! One local keyed limit: a governor `RateLimiter` over a [`CappedStore`],
//! generic over governor's clock so tests drive it with
//! `FakeRelativeClock`. It answers one key at a time with what the headers
//! need (limit, remaining, reset) or a [`Limited`]; combining several
//! limits is `mod.rs`'s job, refunding is offered here.

use std::hash::Hash;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::RateLimiter as Governor;

use super::settings::QuotaSpec;
use super::store::CappedStore;
use super::verdict::{secs_ceil, Limited};

/// What an allowed check left in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spent {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// A keyed local limit with its quota and scope name.
pub(crate) struct Limit<K: Hash + Eq + Clone, C: Clock> {
    governor: Governor<K, CappedStore<K>, C, StateInformationMiddleware>,
    store: CappedStore<K>,
    spec: QuotaSpec,
    cap: usize,
    scope: &'static str,
}

impl<K: Hash + Eq + Clone, C: Clock> Limit<K, C> {
    pub(crate) fn new(scope: &'static str, spec: QuotaSpec, cap: usize, clock: C) -> Self {
        let store = CappedStore::new(cap);
        let governor = Governor::new(spec.to_governor(), store.clone(), clock);
        Limit {
            governor,
            store,
            spec,
            cap,
            scope,
        }
    }

    /// True when a rebuilt config can keep this limit's state as is.
    pub(crate) fn same_as(&self, scope: &'static str, spec: QuotaSpec, cap: usize) -> bool {
        self.scope == scope && self.spec == spec && self.cap == cap
    }

    pub(crate) fn scope(&self) -> &'static str {
        self.scope
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub(crate) fn check(&self, key: &K) -> Result<Spent, Limited> {
        match self.governor.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.spec.burst);
                // Full again once the spent tokens are back (rounded up to
                // whole tokens: at most one interval early in the header).
                let missing = self.spec.burst.saturating_sub(remaining);
                Ok(Spent {
                    limit: self.spec.burst,
                    remaining,
                    reset: self.spec.interval().saturating_mul(missing),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.governor.clock().now());
                Err(Limited {
                    scope: self.scope,
                    limit: self.spec.burst,
                    retry_after_secs: secs_ceil(wait).max(1),
                })
            }
        }
    }

    /// Undoes one successful [`Limit::check`] of `key`.
    pub(crate) fn refund(&self, key: &K) {
        let interval = Nanos::new(u64::try_from(self.spec.interval().as_nanos()).unwrap_or(0));
        self.store.refund(key, interval);
    }

    /// Drops the keys whose bucket is full (see `store.rs`); returns how
    /// many keys are still tracked.
    pub(crate) fn sweep(&self) -> usize {
        self.governor.retain_recent();
        self.store.tracked()
    }

    pub(crate) fn tracked(&self) -> usize {
        self.store.tracked()
    }

    pub(crate) fn overflow_hits(&self) -> u64 {
        self.store.overflow_hits()
    }

    pub(crate) fn take_pressure(&self) -> bool {
        self.store.take_pressure()
    }
}
