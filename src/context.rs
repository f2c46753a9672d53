//! Facts about a connection ([`ConnInfo`]) and about the authenticated
//! caller ([`Principal`]) that later stages, the audit record and the
//! metrics read. Plain data: no behaviour lives here.

use std::net::SocketAddr;
use std::sync::Arc;

/// What the listener learned about a client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The socket peer (never taken from headers).
    pub peer: SocketAddr,
    /// `"TLSv1.3"`, `"TLSv1.2"`.
    pub tls_version: &'static str,
    /// SNI the client sent, if any.
    pub sni: Option<Arc<str>>,
    /// True when ALPN chose `h2`.
    pub h2: bool,
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
