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
    /// The last verification this connection's requests used (it also
    /// holds the connection's verified client certificate, if any).
    pub auth_memo: crate::auth::AuthMemo,
    /// Set when an answer left the client still sending: the connection's
    /// close then lingers (HTTP/1.1, see [`crate::linger`]).
    pub linger: Arc<crate::linger::LingerFlag>,
}

impl ConnInfo {
    /// The client certificate verified in the handshake (`[tls]
    /// client_auth`), if the client presented one.
    pub fn client_cert(&self) -> Option<&ClientCert> {
        self.auth_memo.client_cert()
    }
}

/// The leaf certificate a client presented and rustls verified against
/// `[tls] client_ca`: what bindings and the audit record need, read once
/// per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject's common name, or the first SAN when it has none.
    pub subject: Box<str>,
    /// Names a users-file `client_cert` binding may match: the subject
    /// CN, SAN email addresses and SAN DNS names.
    pub names: Vec<Box<str>>,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: Box<str>,
}

impl ClientCert {
    /// True when `binding` names this certificate (ASCII case-insensitive:
    /// DNS names and email domains are).
    pub fn matches(&self, binding: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(binding))
    }
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
