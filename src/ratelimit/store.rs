//! The keyed GCRA state behind each local limit: a governor `StateStore`
//! with a hard cap on tracked keys, an overflow bucket for keys that arrive
//! while the store is full, and a refund that undoes one spent token.
//!
//! Cap policy (SECURITY.md E5): a key gets its own slot only while fewer
//! than `cap` keys are tracked; the count is reserved with a CAS before
//! inserting, so it never exceeds the cap even under concurrency. A key
//! that finds the store full shares one overflow slot (with the limit's
//! own quota) with every other such key: a key flood ends up throttled as
//! one client, and keys that are tracked keep their state. Only a sweep
//! frees slots, and it drops only keys whose bucket is fully replenished
//! (governor's `retain_recent` rule), so eviction never turns a limited key
//! back into "allowed". This module must not decide anything itself: the
//! GCRA arithmetic stays in governor.

use std::hash::Hash;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;

/// A capped keyed state store; clones share the same state.
#[derive(Debug)]
pub(crate) struct CappedStore<K: Hash + Eq> {
    inner: Arc<Inner<K>>,
}

impl<K: Hash + Eq> Clone for CappedStore<K> {
    fn clone(&self) -> Self {
        CappedStore {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<K: Hash + Eq> {
    /// Theoretical arrival time per key, in nanoseconds since the limiter's
    /// start; 0 means "never seen" (governor's convention).
    map: DashMap<K, AtomicU64>,
    /// Keys in `map`, reserved before inserting.
    len: AtomicUsize,
    cap: usize,
    /// The shared slot of keys that found the store full.
    overflow: AtomicU64,
    /// Decisions made on the overflow slot (a metric).
    overflow_hits: AtomicU64,
    /// Set when a key was sent to the overflow slot; the sweeper clears it.
    pressure: AtomicBool,
}

/// The GCRA update loop on one slot, as governor's `InMemoryState` does it.
fn measure<T, E, F>(slot: &AtomicU64, f: F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let mut prev = slot.load(Ordering::Acquire);
    loop {
        let (result, next) = f(NonZeroU64::new(prev).map(|n| Nanos::new(n.get())))?;
        match slot.compare_exchange_weak(prev, next.as_u64(), Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return Ok(result),
            Err(actual) => prev = actual,
        }
    }
}

impl<K: Hash + Eq + Clone> CappedStore<K> {
    pub(crate) fn new(cap: usize) -> Self {
        CappedStore {
            inner: Arc::new(Inner {
                map: DashMap::new(),
                len: AtomicUsize::new(0),
                cap,
                overflow: AtomicU64::new(0),
                overflow_hits: AtomicU64::new(0),
                pressure: AtomicBool::new(false),
            }),
        }
    }

    /// Reserves room for one more key; false when the store is full.
    fn reserve(&self) -> bool {
        let len = &self.inner.len;
        let mut cur = len.load(Ordering::Relaxed);
        while cur < self.inner.cap {
            match len.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
        false
    }

    /// Gives back one token taken from `key` (the request was denied by
    /// another limit). Exact for GCRA: an allow moved the TAT forward by
    /// exactly `interval`, so moving it back restores the bucket.
    pub(crate) fn refund(&self, key: &K, interval: Nanos) {
        let undo = |v: u64| Some(v.saturating_sub(interval.as_u64()));
        if let Some(slot) = self.inner.map.get(key) {
            let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, undo);
        } else {
            // Not tracked: the token came from the overflow slot.
            let _ = self
                .inner
                .overflow
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, undo);
        }
    }

    pub(crate) fn tracked(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    pub(crate) fn overflow_hits(&self) -> u64 {
        self.inner.overflow_hits.load(Ordering::Relaxed)
    }

    /// True (once) when a key was refused a slot since the last call.
    pub(crate) fn take_pressure(&self) -> bool {
        self.inner.pressure.swap(false, Ordering::AcqRel)
    }
}

impl<K: Hash + Eq + Clone> StateStore for CappedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(slot) = self.inner.map.get(key) {
            return measure(&slot, f);
        }
        if self.reserve() {
            return match self.inner.map.entry(key.clone()) {
                Entry::Occupied(slot) => {
                    // Another request inserted it first: keep one count.
                    self.inner.len.fetch_sub(1, Ordering::AcqRel);
                    measure(slot.get(), f)
                }
                Entry::Vacant(v) => measure(&v.insert(AtomicU64::new(0)), f),
            };
        }
        self.inner.overflow_hits.fetch_add(1, Ordering::Relaxed);
        self.inner.pressure.store(true, Ordering::Release);
        measure(&self.inner.overflow, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for CappedStore<K> {
    /// Drops keys whose TAT is at or below `drop_below`: their bucket is
    /// full again, so forgetting them changes no future decision.
    fn retain_recent(&self, drop_below: Nanos) {
        let len = &self.inner.len;
        self.inner.map.retain(|_, tat| {
            let keep = tat.load(Ordering::Acquire) > drop_below.as_u64();
            if !keep {
                len.fetch_sub(1, Ordering::AcqRel);
            }
            keep
        });
    }

    fn shrink_to_fit(&self) {
        self.inner.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.tracked()
    }

    fn is_empty(&self) -> bool {
        self.tracked() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_tracks_more_than_cap() {
        let s: CappedStore<u32> = CappedStore::new(3);
        for k in 0..10u32 {
            let r: Result<(), ()> = s.measure_and_replace(&k, |_| Ok(((), Nanos::new(5))));
            assert!(r.is_ok());
        }
        assert_eq!(s.tracked(), 3);
        assert_eq!(s.overflow_hits(), 7);
        assert!(s.take_pressure());
        assert!(!s.take_pressure());
        s.retain_recent(Nanos::new(5));
        assert_eq!(s.tracked(), 0);
    }
}
