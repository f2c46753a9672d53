//! The single exit door. Every request, answered by a node or rejected by
//! the gateway, ends in [`Observer::finish`] exactly once: when its
//! response body is finished or dropped (so the byte count and the
//! completion flag are final). The audit record and metrics hang here.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, StatusCode};

use crate::body::{OnDone, Tally};
use crate::context::{ConnInfo, Principal};
use crate::error::Reject;
use crate::gateway::Gateway;

/// What happened to one request; filled in by the pipeline as it goes.
pub struct Exchange {
    pub id: HeaderValue,
    pub started: Instant,
    pub started_at: SystemTime,
    pub conn: Arc<ConnInfo>,
    /// The address the request is attributed to (peer, or trusted XFF hop).
    pub client_ip: IpAddr,
    pub method: Method,
    /// The request-target's path and query exactly as received.
    pub raw_target: http::uri::PathAndQuery,
    /// The canonical path, when it differs from the raw one.
    pub path: Option<Box<str>>,
    pub route: Option<Arc<str>>,
    pub principal: Option<Principal>,
    pub node: Option<Arc<str>>,
    pub upstream_status: Option<StatusCode>,
    pub upstream_elapsed: Option<Duration>,
    pub status: StatusCode,
    pub reject: Option<Reject>,
    /// Bytes of the request body that were read (streamed requests only).
    pub tally: Option<Arc<Tally>>,
    /// The request carried a body.
    pub had_body: bool,
}

/// Counters kept for the life of the process.
#[derive(Default)]
pub struct Observer {
    requests: AtomicU64,
    rejected: AtomicU64,
    tls_failures: AtomicU64,
    conns_refused: AtomicU64,
}

impl Observer {
    /// Requests finished so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests the gateway answered itself.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    pub fn tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused by the connection caps.
    pub fn conns_refused(&self) -> u64 {
        self.conns_refused.load(Ordering::Relaxed)
    }

    pub fn conn_refused(&self) {
        self.conns_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished request.
    pub fn finish(&self, ex: &Exchange, bytes_out: u64, complete: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if ex.reject.is_some() {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            target: "regate::access",
            id = ?ex.id,
            client = %ex.client_ip,
            method = %ex.method,
            route = ex.route.as_deref().unwrap_or("-"),
            user = ex.principal.as_ref().map(|p| &*p.user).unwrap_or("-"),
            status = ex.status.as_u16(),
            upstream = ex.node.as_deref().unwrap_or("-"),
            bytes_in = ex.tally.as_ref().map_or(0, |t| t.bytes()),
            bytes_out,
            complete,
            micros = ex.started.elapsed().as_micros() as u64,
        );
    }
}

/// Hooks an [`Exchange`] to its response body's end.
pub struct Finish {
    pub ex: Exchange,
    pub gw: Arc<Gateway>,
}

impl OnDone for Finish {
    fn done(self: Box<Self>, bytes_out: u64, complete: bool) {
        self.ex.conn.activity.end();
        self.gw.observer.finish(&self.ex, bytes_out, complete);
    }
}
