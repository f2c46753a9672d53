//! Upkeep of a [`RateLimiter`]: the background sweeper that keeps keyed
//! state bounded (off the request path, on a blocking thread) and the
//! counters the metrics module reads. It never changes a decision: a sweep
//! drops only keys whose bucket is full again (see `store.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock;

use super::{RateLimiter, UserLimit};

/// Counters for metrics (all monotonic except `tracked_keys`; the Redis
/// ones across reloads too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitStats {
    /// Keys currently tracked, summed over the local limits.
    pub tracked_keys: usize,
    /// Decisions made on an overflow bucket because a limit was full.
    pub overflow_hits: u64,
    /// Redis calls that failed or timed out.
    pub redis_errors: u64,
    /// Decisions made locally because Redis gave none (`fail_closed = false`).
    pub redis_fallbacks: u64,
    /// 503s answered because Redis gave none (`fail_closed = true`).
    pub redis_unavailable: u64,
}

impl<C: Clock + Clone> RateLimiter<C> {
    fn all_limits(&self) -> impl Iterator<Item = &UserLimit<C>> {
        let sets = std::iter::once(&self.defaults).chain(self.roles.values());
        sets.flat_map(|s| std::iter::once(&s.per_user).chain(s.classes.iter()))
            .chain(self.global.iter())
    }

    /// Drops fully replenished keys from every local limit (a role sharing
    /// a default limit gets it swept twice: harmless). Off the hot path:
    /// the sweeper calls this on a blocking thread.
    pub fn sweep(&self) {
        self.per_ip.sweep();
        for l in self.all_limits() {
            l.sweep();
        }
    }

    /// Counters for the metrics module.
    pub fn stats(&self) -> RateLimitStats {
        let mut st = RateLimitStats {
            tracked_keys: self.per_ip.tracked(),
            overflow_hits: self.per_ip.overflow_hits(),
            ..RateLimitStats::default()
        };
        for l in self.all_limits() {
            st.tracked_keys += l.tracked();
            st.overflow_hits += l.overflow_hits();
        }
        let c = &self.redis_counters;
        st.redis_errors = c.errors.load(Ordering::Relaxed);
        st.redis_fallbacks = c.fallbacks.load(Ordering::Relaxed);
        st.redis_unavailable = c.unavailable.load(Ordering::Relaxed);
        st
    }

    /// True (and cleared) when some limit refused a key a slot since the
    /// last call: the sweeper then sweeps early.
    fn take_pressure(&self) -> bool {
        let mut any = self.per_ip.take_pressure();
        for l in self.all_limits() {
            any |= l.take_pressure();
        }
        any
    }
}

impl<C: Clock + Clone + Send + Sync + 'static> RateLimiter<C>
where
    C::Instant: Send + Sync,
{
    /// Sweeps every `sweep_interval`, or within a second when a limit is
    /// full, until the limiter is dropped (a reload's old limiter stops
    /// its sweeper by being dropped). Must run inside a Tokio runtime.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = self.settings.sweep_interval;
        let tick = every.min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let Some(limiter) = weak.upgrade() else { break };
                if last.elapsed() >= every || limiter.take_pressure() {
                    last = Instant::now();
                    let _ = tokio::task::spawn_blocking(move || limiter.sweep()).await;
                }
            }
        })
    }
}
