//! The idle-connection store of one worker's client, shared by both
//! client paths: per node (scheme + authority), at most
//! `pool_max_idle_per_node` idle connections, handed out most recently
//! used first (the warmest), dropped after 30 s unused. It only keeps
//! connections; whether one is still usable is the caller's `check`.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::Authority;

/// How long an unused pooled connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with an idle connection offered by [`IdlePool::take`].
pub enum Check {
    /// Use it.
    Take,
    /// Leave it in the pool (busy for now).
    Skip,
    /// Close it (dead, or not reusable).
    Drop,
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

/// The idle connections of one node.
struct Node<T> {
    https: bool,
    authority: Authority,
    idle: VecDeque<Idle<T>>,
}

/// Idle connections per node, for one worker runtime.
pub struct IdlePool<T> {
    max_per_node: usize,
    nodes: Mutex<Vec<Node<T>>>,
}

impl<T> IdlePool<T> {
    pub fn new(max_per_node: usize) -> Self {
        IdlePool {
            max_per_node: max_per_node.max(1),
            nodes: Mutex::new(Vec::new()),
        }
    }

    /// The node's index (for [`IdlePool::put`]) and its most recently
    /// used idle connection that `check` takes; expired connections and
    /// those `check` drops are closed on the way.
    pub fn take(
        &self,
        https: bool,
        authority: &Authority,
        mut check: impl FnMut(&mut T) -> Check,
    ) -> (usize, Option<T>) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match nodes
            .iter()
            .position(|n| n.https == https && n.authority == *authority)
        {
            Some(i) => i,
            None => {
                nodes.push(Node {
                    https,
                    authority: authority.clone(),
                    idle: VecDeque::new(),
                });
                nodes.len() - 1
            }
        };
        let node = &mut nodes[i];
        // Idle entries are in the order they were put back, oldest first,
        // so the expired ones are a prefix: no walk over the whole pool.
        let now = Instant::now();
        while node
            .idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= IDLE_TIMEOUT)
        {
            node.idle.pop_front();
        }
        let mut j = node.idle.len();
        while j > 0 {
            j -= 1;
            match check(&mut node.idle[j].conn) {
                Check::Take => return (i, node.idle.remove(j).map(|c| c.conn)),
                Check::Skip => {}
                Check::Drop => {
                    node.idle.remove(j);
                }
            }
        }
        (i, None)
    }

    /// Keeps `conn` for reuse on node `node` (an index from
    /// [`IdlePool::take`]); over the cap it is dropped (closed).
    pub fn put(&self, node: usize, conn: T) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(node) = nodes.get_mut(node) else {
            return;
        };
        if node.idle.len() >= self.max_per_node {
            return;
        }
        node.idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Idle connections kept for node `node` (tests, metrics).
    pub fn idle(&self, node: usize) -> usize {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.get(node).map_or(0, |n| n.idle.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_capped_and_checked() {
        let pool = IdlePool::new(2);
        let a = Authority::from_static("n1:9443");
        let (i, none) = pool.take(true, &a, |_: &mut u32| Check::Take);
        assert!(none.is_none());
        pool.put(i, 1);
        pool.put(i, 2);
        pool.put(i, 3); // over the cap: dropped
        assert_eq!(pool.idle(i), 2);
        // another scheme is another node
        let (j, none) = pool.take(false, &a, |_| Check::Take);
        assert!(none.is_none());
        assert_ne!(i, j);
        // 2 is the warmest; a dropped one is gone, a skipped one stays
        assert_eq!(pool.take(true, &a, |_| Check::Take).1, Some(2));
        pool.put(i, 4);
        let got = pool.take(true, &a, |c| match c {
            4 => Check::Drop,
            _ => Check::Skip,
        });
        assert_eq!(got.1, None);
        assert_eq!(pool.idle(i), 1);
        assert_eq!(pool.take(true, &a, |_| Check::Take).1, Some(1));
    }
}
