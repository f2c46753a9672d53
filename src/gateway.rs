//! The running gateway's state: one compiled [`Snapshot`] of everything a
//! request needs (config, clients, tables), swapped whole behind one
//! pointer on reload, plus the parts that outlive reloads (request-id
//! generator, the finish observer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::config::Config;
use crate::observe::Observer;
use crate::upstream::balance::Balancer;
use crate::upstream::client::{self, HttpClient};

/// Everything compiled from one config. Immutable once built.
pub struct Snapshot {
    pub config: Config,
    /// HTTP/1.1 + h2 server settings.
    pub http: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    pub client: HttpClient,
    pub balancer: Balancer,
}

impl Snapshot {
    /// Compiles a validated config. Must be called inside a Tokio runtime.
    pub fn build(config: Config) -> Snapshot {
        let client = client::build(&config.upstream, config.timeouts.upstream_connect);
        let balancer = Balancer::new(config.upstream.nodes.len(), &config.upstream.versions);
        Snapshot {
            http: crate::server::conn::http_builder(&config),
            config,
            client,
            balancer,
        }
    }
}

/// The shared state of a running gateway.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub observer: Observer,
    ids: RequestIds,
}

impl Gateway {
    pub fn new(snapshot: Snapshot) -> Arc<Gateway> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            observer: Observer::default(),
            ids: RequestIds::new(),
        })
    }

    /// The snapshot in force now (cheap; no lock).
    pub fn current(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The snapshot in force now, as an owned pointer (safe across awaits).
    pub fn current_full(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they started with.
    pub fn swap(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> HeaderValue {
        self.ids.next()
    }
}

/// Request ids: a per-process random prefix and a counter, as 32 hex digits.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        for (i, word) in [self.prefix, n].iter().enumerate() {
            for j in 0..16 {
                buf[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
            }
        }
        // hex digits are always a valid header value
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_hex() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
    }
}
