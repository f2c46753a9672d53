//! The retry budget: retries on another node are extra load on a cluster
//! that is already failing, so they are capped at a share of the requests
//! of the current window (`[upstream.retry]`, default 20% over 10 s, plus
//! a floor so a quiet gateway can still retry). Two relaxed atomic adds
//! per request; no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `[upstream.retry]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Retries allowed in percent of the window's requests.
    pub percent: u32,
    pub window: Duration,
    /// Retries always allowed per window.
    pub min_per_window: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            percent: 20,
            window: Duration::from_secs(10),
            min_per_window: 10,
        }
    }
}

/// Requests and retries of the current window.
pub struct RetryBudget {
    settings: RetrySettings,
    epoch: Instant,
    /// The window the counters belong to (elapsed / window).
    window: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    pub fn new(settings: RetrySettings) -> RetryBudget {
        RetryBudget {
            settings,
            epoch: Instant::now(),
            window: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Starts a new window when the current one is over.
    fn roll(&self) {
        let window_ms = self.settings.window.as_millis().max(1) as u64;
        let now = self.epoch.elapsed().as_millis() as u64 / window_ms;
        let seen = self.window.load(Ordering::Relaxed);
        if seen != now
            && self
                .window
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.requests.store(0, Ordering::Relaxed);
            self.retries.store(0, Ordering::Relaxed);
        }
    }

    /// Counts one forwarded request.
    pub fn note_request(&self) {
        self.roll();
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_retry(&self) -> bool {
        self.roll();
        let requests = self.requests.load(Ordering::Relaxed);
        let allowed = u64::from(self.settings.min_per_window)
            + requests * u64::from(self.settings.percent) / 100;
        let taken = self.retries.fetch_add(1, Ordering::Relaxed);
        if taken < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_the_requests_plus_the_floor() {
        let b = RetryBudget::new(RetrySettings {
            percent: 20,
            window: Duration::from_secs(3600),
            min_per_window: 2,
        });
        for _ in 0..10 {
            b.note_request();
        }
        // 2 + 20% of 10
        let granted = (0..10).filter(|_| b.try_retry()).count();
        assert_eq!(granted, 4);
        for _ in 0..5 {
            b.note_request();
        }
        assert!(b.try_retry(), "15 requests allow 5");
        assert!(!b.try_retry());
    }
}
