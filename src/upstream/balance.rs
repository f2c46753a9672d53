//! Node selection: round robin over the nodes that serve the request's API
//! version, skipping nodes that recently refused connections (passive
//! health). When every candidate is marked down, they are tried anyway:
//! a stale mark must never turn a recovered cluster into a 503.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a node that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// Index of a node in `config.upstream.nodes`.
pub type NodeIdx = usize;

/// Round-robin state and passive health marks.
pub struct Balancer {
    all: Vec<NodeIdx>,
    /// (API version number, candidate nodes, cursor)
    by_version: Vec<(u16, Vec<NodeIdx>, AtomicUsize)>,
    cursor: AtomicUsize,
    /// Per node: milliseconds since `epoch` until which it is skipped (0 = up).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Balancer {
    pub fn new(nodes: usize, versions: &[(u16, Vec<NodeIdx>)]) -> Self {
        Balancer {
            all: (0..nodes).collect(),
            by_version: versions
                .iter()
                .map(|(v, n)| (*v, n.clone(), AtomicUsize::new(0)))
                .collect(),
            cursor: AtomicUsize::new(0),
            down_until: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    /// Candidate nodes for a request of API `version`, in the order to try
    /// them: healthy ones first, starting at the round-robin cursor.
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
            pass_down: false,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// True when `node` is not marked down.
    pub fn is_up(&self, node: NodeIdx) -> bool {
        self.down_until
            .get(node)
            .is_none_or(|d| d.load(Ordering::Relaxed) <= self.now_ms())
    }

    /// Marks `node` as refusing connections for a while.
    pub fn mark_down(&self, node: NodeIdx) {
        if let Some(d) = self.down_until.get(node) {
            d.store(
                self.now_ms() + DOWN_FOR.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    /// Clears the mark after a successful exchange.
    pub fn mark_up(&self, node: NodeIdx) {
        if let Some(d) = self.down_until.get(node) {
            if d.load(Ordering::Relaxed) != 0 {
                d.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Number of nodes currently not marked down.
    pub fn up_count(&self) -> usize {
        (0..self.down_until.len())
            .filter(|n| self.is_up(*n))
            .count()
    }
}

/// Iterator over the nodes to try: first the healthy ones in round-robin
/// order, then (second pass) the ones marked down.
pub struct Candidates<'a> {
    balancer: &'a Balancer,
    nodes: &'a [NodeIdx],
    start: usize,
    step: usize,
    pass_down: bool,
}

impl Iterator for Candidates<'_> {
    type Item = NodeIdx;

    fn next(&mut self) -> Option<NodeIdx> {
        loop {
            if self.step == self.nodes.len() {
                if self.pass_down || self.nodes.is_empty() {
                    return None;
                }
                self.pass_down = true;
                self.step = 0;
            }
            let node = self.nodes[(self.start + self.step) % self.nodes.len()];
            self.step += 1;
            if self.balancer.is_up(node) != self.pass_down {
                return Some(node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_over_all() {
        let b = Balancer::new(3, &[]);
        let firsts: Vec<_> = (0..6).map(|_| b.pick(None).next().unwrap()).collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn down_nodes_are_tried_last() {
        let b = Balancer::new(3, &[]);
        b.mark_down(1);
        let order: Vec<_> = b.pick(None).collect();
        assert_eq!(order.len(), 3);
        assert_eq!(*order.last().unwrap(), 1);
        b.mark_up(1);
        assert!(b.is_up(1));
    }

    #[test]
    fn versions_use_their_subset() {
        let b = Balancer::new(3, &[(2, vec![2])]);
        for _ in 0..4 {
            assert_eq!(b.pick(Some(2)).collect::<Vec<_>>(), vec![2]);
        }
        assert_eq!(b.pick(Some(1)).count(), 3);
    }
}
