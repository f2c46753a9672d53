//! Node selection and node health: round robin over the healthy nodes
//! that serve the request's API version. A node is taken out (ejected)
//! when requests to it fail (connect/TLS failure, reset, garbage, a 503)
//! or when `fall` health checks in a row fail; it stays out for an
//! exponential back-off (1 s doubling to 64 s) and, with active checks,
//! until `rise` checks in a row pass after it. Without active checks a
//! node is tried again once its back-off is over. When no node is up, the
//! request gets 503 `no_healthy_node` (see `upstream::forward`).
//!
//! All state is atomics: reading it costs no lock on the request path.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::retry::{RetryBudget, RetrySettings};
use crate::config::Node;

/// Back-off of the first ejection; doubled for each one after it.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(64);

/// Index of a node in `config.upstream.nodes`.
pub type NodeIdx = usize;

/// The health of one node.
#[derive(Default)]
struct NodeHealth {
    /// Down means ejected (the initial state is up).
    down: AtomicBool,
    /// Consecutive check results against the current state.
    streak: AtomicU32,
    /// Ejections since the node last served a request (back-off exponent).
    ejections: AtomicU32,
    /// Milliseconds since `epoch` before which the node is not taken back.
    until: AtomicU64,
}

/// A node going up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Up,
    Down,
}

impl Change {
    /// The `to` label of `regate_node_state_changes_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Up => "up",
            Change::Down => "down",
        }
    }
}

/// Round-robin state and node health.
pub struct Balancer {
    all: Vec<NodeIdx>,
    /// (API version number, candidate nodes, cursor)
    by_version: Vec<(u16, Vec<NodeIdx>, AtomicUsize)>,
    cursor: AtomicUsize,
    health: Vec<NodeHealth>,
    /// Active checks bring nodes back; without them the back-off does.
    active: bool,
    epoch: Instant,
    /// What retries on another node may cost.
    pub budget: RetryBudget,
    /// The node the health checks report as master (`usize::MAX`: unknown).
    master: AtomicUsize,
}

impl Balancer {
    /// `active`: health checks run (a node returns only by passing them).
    pub fn new(
        nodes: usize,
        versions: &[(u16, Vec<NodeIdx>)],
        active: bool,
        retry: RetrySettings,
    ) -> Self {
        Balancer {
            all: (0..nodes).collect(),
            by_version: versions
                .iter()
                .map(|(v, n)| (*v, n.clone(), AtomicUsize::new(0)))
                .collect(),
            cursor: AtomicUsize::new(0),
            health: (0..nodes).map(|_| NodeHealth::default()).collect(),
            active,
            epoch: Instant::now(),
            budget: RetryBudget::new(retry),
            master: AtomicUsize::new(usize::MAX),
        }
    }

    /// Healthy candidate nodes for a request of API `version`, in the
    /// order to try them, starting at the round-robin cursor.
    pub fn pick(&self, version: Option<u16>) -> Candidates<'_> {
        let (nodes, cursor) = match version.and_then(|v| self.by_version.iter().find(|e| e.0 == v))
        {
            Some((_, nodes, cursor)) => (nodes.as_slice(), cursor),
            None => (self.all.as_slice(), &self.cursor),
        };
        let start = if nodes.is_empty() {
            0
        } else {
            cursor.fetch_add(1, Ordering::Relaxed) % nodes.len()
        };
        Candidates {
            balancer: self,
            nodes,
            start,
            step: 0,
        }
    }

    /// Takes over the health of the nodes `prev` knew with the same URL
    /// and TLS pins (a reload must not bring a dead node back, but a node
    /// whose config changed starts afresh): `nodes[i]` is node `i` here,
    /// `prev_nodes[j]` node `j` there.
    pub fn inherit(&self, nodes: &[Node], prev: &Balancer, prev_nodes: &[Node]) {
        let (now, prev_now) = (self.now_ms(), prev.now_ms());
        for (h, node) in self.health.iter().zip(nodes) {
            let Some(p) = prev_nodes
                .iter()
                .position(|n| n.url == node.url && n.pins == node.pins)
                .and_then(|j| prev.health.get(j))
            else {
                continue;
            };
            let left = p.until.load(Ordering::Relaxed).saturating_sub(prev_now);
            h.until.store(now + left, Ordering::Relaxed);
            h.down
                .store(p.down.load(Ordering::Relaxed), Ordering::Relaxed);
            h.streak
                .store(p.streak.load(Ordering::Relaxed), Ordering::Relaxed);
            h.ejections
                .store(p.ejections.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Records the master; true when it changed.
    pub fn set_master(&self, node: Option<NodeIdx>) -> bool {
        let v = node.unwrap_or(usize::MAX);
        self.master.swap(v, Ordering::Relaxed) != v
    }

    /// The master, when it is known, up and serves API `version`.
    pub fn master_for(&self, version: u16) -> Option<NodeIdx> {
        let m = self.master.load(Ordering::Relaxed);
        let serves = match self.by_version.iter().find(|e| e.0 == version) {
            Some((_, nodes, _)) => nodes.contains(&m),
            None => m < self.health.len(),
        };
        (serves && self.is_up(m)).then_some(m)
    }

    /// No candidates at all (a request bound to one node).
    pub fn pick_none(&self) -> Candidates<'_> {
        Candidates {
            balancer: self,
            nodes: &[],
            start: 0,
            step: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// True when `node` may be sent requests.
    pub fn is_up(&self, node: NodeIdx) -> bool {
        let Some(h) = self.health.get(node) else {
            return false;
        };
        !h.down.load(Ordering::Relaxed)
            || (!self.active && h.until.load(Ordering::Relaxed) <= self.now_ms())
    }

    /// Seconds until the first down node may come back (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let now = self.now_ms();
        let soonest = self
            .health
            .iter()
            .map(|h| h.until.load(Ordering::Relaxed).saturating_sub(now))
            .min()
            .unwrap_or(0);
        soonest.div_ceil(1000).max(1)
    }

    /// Takes `node` out after a failed request; `Some` when it was up.
    pub fn eject(&self, node: NodeIdx) -> Option<Change> {
        let h = self.health.get(node)?;
        let n = h.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << n)
            .min(BACKOFF_MAX)
            .as_millis() as u64;
        h.until.store(self.now_ms() + backoff, Ordering::Relaxed);
        h.streak.store(0, Ordering::Relaxed);
        (!h.down.swap(true, Ordering::Relaxed)).then_some(Change::Down)
    }

    /// A request to `node` got an answer: `Some` when that brought it back
    /// (no active checks: its back-off was over and this was the trial).
    pub fn served(&self, node: NodeIdx) -> Option<Change> {
        let h = self.health.get(node)?;
        if h.ejections.load(Ordering::Relaxed) != 0 {
            h.ejections.store(0, Ordering::Relaxed);
        }
        if !self.active && h.down.load(Ordering::Relaxed) {
            return h.down.swap(false, Ordering::Relaxed).then_some(Change::Up);
        }
        None
    }

    /// Records a health check of `node`; `Some` on a change of state.
    pub fn checked(&self, node: NodeIdx, passed: bool, rise: u32, fall: u32) -> Option<Change> {
        let h = self.health.get(node)?;
        let down = h.down.load(Ordering::Relaxed);
        // a result that agrees with the current state ends a streak
        if passed != down {
            h.streak.store(0, Ordering::Relaxed);
            return None;
        }
        if down && h.until.load(Ordering::Relaxed) > self.now_ms() {
            // still backing off: passes count only after it
            return None;
        }
        let streak = h.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if down && streak >= rise {
            h.streak.store(0, Ordering::Relaxed);
            h.down.store(false, Ordering::Relaxed);
            return Some(Change::Up);
        }
        if !down && streak >= fall {
            h.streak.store(0, Ordering::Relaxed);
            h.down.store(true, Ordering::Relaxed);
            return Some(Change::Down);
        }
        None
    }

    /// Number of nodes currently up.
    pub fn up_count(&self) -> usize {
        (0..self.health.len()).filter(|n| self.is_up(*n)).count()
    }
}

/// Iterator over the healthy nodes to try, in round-robin order.
pub struct Candidates<'a> {
    balancer: &'a Balancer,
    nodes: &'a [NodeIdx],
    start: usize,
    step: usize,
}

impl Iterator for Candidates<'_> {
    type Item = NodeIdx;

    fn next(&mut self) -> Option<NodeIdx> {
        while self.step < self.nodes.len() {
            let node = self.nodes[(self.start + self.step) % self.nodes.len()];
            self.step += 1;
            if self.balancer.is_up(node) {
                return Some(node);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_over_all() {
        let b = Balancer::new(3, &[], true, RetrySettings::default());
        let firsts: Vec<_> = (0..6).map(|_| b.pick(None).next().unwrap()).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ejected_nodes_are_skipped_until_checks_bring_them_back() {
        let b = Balancer::new(3, &[], true, RetrySettings::default());
        assert_eq!(b.eject(1), Some(Change::Down));
        assert_eq!(b.eject(1), None, "already down");
        for _ in 0..6 {
            assert!(!b.pick(None).any(|n| n == 1));
        }
        assert_eq!(b.up_count(), 2);
        // a request answered elsewhere does not bring it back
        assert_eq!(b.served(1), None);
        assert!(!b.is_up(1));
        // checks during the back-off do not count
        assert_eq!(b.checked(1, true, 1, 2), None);
        assert!(!b.is_up(1));
    }

    #[test]
    fn checks_fall_and_rise_after_the_backoff() {
        let b = Balancer::new(1, &[], true, RetrySettings::default());
        assert_eq!(b.checked(0, false, 2, 2), None);
        assert_eq!(b.checked(0, true, 2, 2), None, "a pass ends the streak");
        assert_eq!(b.checked(0, false, 2, 2), None);
        assert_eq!(b.checked(0, false, 2, 2), Some(Change::Down));
        assert_eq!(b.pick(None).next(), None);
        // a fall by checks has no back-off: two passes bring it back
        assert_eq!(b.checked(0, true, 2, 2), None);
        assert_eq!(b.checked(0, true, 2, 2), Some(Change::Up));
        assert_eq!(b.pick(None).next(), Some(0));
    }

    #[test]
    fn without_checks_the_backoff_brings_a_node_back_on_trial() {
        let b = Balancer::new(2, &[], false, RetrySettings::default());
        b.eject(0);
        assert!(!b.is_up(0));
        assert!(b.retry_after_secs() >= 1);
        b.health[0].until.store(0, Ordering::Relaxed);
        assert!(b.is_up(0), "eligible again after the back-off");
        assert_eq!(b.served(0), Some(Change::Up));
    }

    #[test]
    fn a_reload_keeps_the_health_of_nodes_it_still_has() {
        let prev = Balancer::new(2, &[], true, RetrySettings::default());
        prev.eject(1);
        let next = Balancer::new(2, &[], true, RetrySettings::default());
        let node = |url: &str| crate::config::Node {
            url: url.into(),
            scheme: http::uri::Scheme::HTTP,
            authority: http::uri::Authority::from_static("n:1"),
            name: None,
            pins: Vec::new(),
        };
        next.inherit(&[node("c"), node("b")], &prev, &[node("a"), node("b")]);
        assert!(next.is_up(0), "a new node starts up");
        assert!(!next.is_up(1), "b is still down");
    }

    #[test]
    fn versions_use_their_subset() {
        let b = Balancer::new(3, &[(2, vec![2])], true, RetrySettings::default());
        for _ in 0..4 {
            assert_eq!(b.pick(Some(2)).collect::<Vec<_>>(), vec![2]);
        }
        assert_eq!(b.pick(Some(1)).count(), 3);
    }
}
