//! Facts about a connection ([`ConnInfo`]) and about the authenticated
//! caller ([`Principal`]) that later stages, the audit record and the
//! metrics read. Plain data: no behaviour lives here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the listener learned about a client connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The socket peer (never taken from headers).
    pub peer: SocketAddr,
    /// The peer IP rendered once per connection for `X-Forwarded-For`.
    pub peer_header: http::HeaderValue,
    /// `"TLSv1.3"`, `"TLSv1.2"`.
    pub tls_version: &'static str,
    /// SNI the client sent, if any.
    pub sni: Option<Arc<str>>,
    /// True when ALPN chose `h2`.
    pub h2: bool,
    /// Index of the worker runtime serving the connection (its upstream client).
    pub worker: usize,
    /// In-flight requests and last activity, for the idle watchdog.
    pub activity: Activity,
    /// The last verification this connection's requests used.
    pub auth_memo: crate::auth::AuthMemo,
    /// Set when an answer left the client still sending: the connection's
    /// close then lingers (HTTP/1.1, see [`crate::linger`]).
    pub linger: Arc<crate::linger::LingerFlag>,
}

/// In-flight requests and last activity of a connection, for the idle
/// watchdog. Two relaxed atomics per request.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicU32,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended at `now` (the caller's clock reading, shared with
    /// its own timing).
    pub fn end_at(&self, now: Instant) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let since = now.saturating_duration_since(self.epoch);
        self.last_ms
            .store(since.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an identity was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The gateway's users file.
    File,
    /// The cluster's own user table (`POST /v1/users/authorize`).
    Cluster,
}

impl IdentitySource {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::File => "file",
            IdentitySource::Cluster => "cluster",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name exactly as verified (no normalization).
    pub user: Arc<str>,
    /// The user's uid in the cluster, when known (self-service routes).
    pub uid: Option<u64>,
    /// Management role name: a built-in Redis Enterprise role or a custom one.
    pub role: Arc<str>,
    /// Which identity source verified it.
    pub source: IdentitySource,
}
