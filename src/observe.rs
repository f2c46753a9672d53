//! The single exit door. Every request, answered by a node or rejected by
//! the gateway, ends in [`Observer::finish`] exactly once: when its
//! response body is finished or dropped (so the byte count and the
//! completion flag are final). It writes the one audit record and the one
//! metrics observation of the request. A request head hyper itself
//! refuses (unparsable or too large) never becomes a request; the
//! connection reports it once through [`malformed`], so it is audited and
//! counted all the same.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, StatusCode};

use crate::audit::{AuditRecord, AuditSlot, Decision, RateLimit};
use crate::body::{OnDone, Tally};
use crate::context::{ConnInfo, Principal};
use crate::error::Reject;
use crate::gateway::Gateway;
use crate::ratelimit::{Limited, Verdict};

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
    pub api_version: Option<u16>,
    pub permission: Option<Arc<str>>,
    /// The policy rule that allowed (`role-permission`, `self-service`, `dry-run`).
    pub rule: Option<&'static str>,
    pub decision: Decision,
    pub principal: Option<Principal>,
    /// The user name a failed login tried (audited; no principal exists).
    pub attempted_user: Option<Box<str>>,
    pub rate_limit: RateLimit,
    /// The limit that refused the request (headers for the 429).
    pub limited: Option<Limited>,
    /// The limiter's state for an allowed request (optional headers).
    pub verdict: Option<Verdict>,
    pub node: Option<Arc<str>>,
    /// Attempts at nodes that failed, in order (node, why).
    pub tried: crate::upstream::forward::Tried,
    pub upstream_status: Option<StatusCode>,
    pub upstream_elapsed: Option<Duration>,
    pub status: StatusCode,
    pub reject: Option<Reject>,
    /// Bytes of the request body that were read (streamed requests only).
    pub tally: Option<Arc<Tally>>,
    /// The request carried a body.
    pub had_body: bool,
    /// A queue slot reserved when the request started (audit back-pressure).
    pub audit_slot: Option<AuditSlot>,
}

/// Counters kept for the life of the process (tests read them).
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
}

fn version_label(v: Option<u16>) -> Option<&'static str> {
    Some(match v? {
        1 => "v1",
        2 => "v2",
        3 => "v3",
        _ => "v?",
    })
}

impl Exchange {
    /// `[audit] required = true`: the intent record (who, what, the
    /// decision, the node) reaches the kernel before the request is
    /// forwarded; false if it could not be written (answer 503). Without
    /// `required`, one atomic load.
    pub async fn commit_intent(&self, gw: &Gateway) -> bool {
        if !gw.audit.wants_intent() {
            return true;
        }
        gw.audit.intent(&self.record()).await
    }

    /// The fields of its audit record known before the outcome: who,
    /// what, the decision and the node. The intent record is just this;
    /// the outcome record adds status, sizes and durations.
    fn record(&self) -> AuditRecord<'_> {
        let principal = self.principal.as_ref();
        AuditRecord {
            time: self.started_at,
            request_id: self.id.to_str().unwrap_or("-"),
            client_ip: self.client_ip,
            client_port: self.conn.peer.port(),
            tls_version: self.conn.tls_version,
            sni: self.conn.sni.as_deref(),
            client_cert: self.conn.client_cert().map(|c| &*c.subject),
            client_cert_sha256: self.conn.client_cert().map(|c| &*c.sha256),
            user: principal.map(|p| &*p.user),
            attempted_user: self.attempted_user.as_deref(),
            role: principal.map(|p| &*p.role),
            identity_source: principal.map(|p| p.source.as_str()),
            method: self.method.as_str(),
            path: Some(self.path.as_deref().unwrap_or(self.raw_target.path())),
            raw_path: self.raw_target.as_str().as_bytes(),
            route: self.route.as_deref(),
            api_version: version_label(self.api_version),
            decision: self.decision,
            rule: self.rule,
            permission: self.permission.as_deref(),
            rate_limit: self.rate_limit,
            upstream: self.node.as_deref(),
            ..AuditRecord::default()
        }
    }
}

/// Hooks an [`Exchange`] to its response body's end.
pub struct Finish {
    pub ex: Exchange,
    pub gw: Arc<Gateway>,
}

impl OnDone for Finish {
    fn done(self: Box<Self>, bytes_out: u64, complete: bool) {
        let Finish { mut ex, gw } = *self;
        let now = Instant::now();
        ex.conn.activity.end_at(now);
        let elapsed = now.saturating_duration_since(ex.started);
        let obs = &gw.observer;
        obs.requests.fetch_add(1, Ordering::Relaxed);
        let reject_code = ex.reject.as_ref().map(|r| {
            obs.rejected.fetch_add(1, Ordering::Relaxed);
            r.parts().error_code
        });
        let decision = match (&ex.reject, ex.decision) {
            // refused before or by the policy: a denial
            (Some(_), Decision::Allow) if ex.upstream_status.is_none() && ex.node.is_none() => {
                Decision::Deny
            }
            (_, d) => d,
        };
        gw.metrics.observe_request(
            ex.route.as_deref(),
            ex.method.as_str(),
            ex.status.as_u16(),
            decision,
            elapsed,
        );
        let rule = match (ex.rule, &reject_code) {
            (Some(r), None) => Some(r),
            (_, Some(code)) => Some(code.as_ref()),
            (None, None) => None,
        };
        let slot = ex.audit_slot.take();
        let rec = AuditRecord {
            decision,
            rule,
            upstream_tried: &ex.tried,
            upstream_status: ex.upstream_status.map(|s| s.as_u16()),
            status: ex.status.as_u16(),
            bytes_in: ex.tally.as_ref().map_or(0, |t| t.bytes()),
            bytes_out,
            complete,
            duration: elapsed,
            upstream_duration: ex.upstream_elapsed,
            body_sha256: ex.tally.as_ref().and_then(|t| t.digest()),
            ..ex.record()
        };
        match slot {
            Some(slot) => {
                slot.submit(&rec);
            }
            None => {
                gw.audit.try_submit(&rec);
            }
        }
    }
}

/// The status hyper answered a request head it could not parse with, or
/// `None` when it sent nothing (or the error is not a parse error).
pub fn parse_error_status(e: &hyper::Error) -> Option<StatusCode> {
    if !e.is_parse() || e.is_parse_status() || e.is_parse_version_h2() {
        return None;
    }
    Some(if e.is_parse_too_large() {
        // hyper answers 414 for a long URI and 431 for a long head; only
        // its message tells the two apart
        if e.to_string().contains("URI") {
            StatusCode::URI_TOO_LONG
        } else {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
    } else {
        StatusCode::BAD_REQUEST
    })
}

/// One audit record and one metrics observation for a request head that
/// hyper refused with `status` before the pipeline saw it. Nothing of the
/// request is known: no method, path or user is recorded.
pub async fn malformed(gw: &Gateway, conn: &ConnInfo, status: StatusCode) {
    let obs = &gw.observer;
    obs.requests.fetch_add(1, Ordering::Relaxed);
    obs.rejected.fetch_add(1, Ordering::Relaxed);
    // since the connection's previous request ended (or it opened): the
    // closest we know to when this head began
    let elapsed = conn.activity.idle_for().unwrap_or_default();
    gw.metrics
        .observe_request(None, "-", status.as_u16(), Decision::Deny, elapsed);
    let id = gw.next_request_id();
    let rec = AuditRecord {
        // (checked: a clock set near the epoch must not panic here)
        time: SystemTime::now()
            .checked_sub(elapsed)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        request_id: id.to_str().unwrap_or("-"),
        client_ip: conn.peer.ip(),
        client_port: conn.peer.port(),
        tls_version: conn.tls_version,
        sni: conn.sni.as_deref(),
        client_cert: conn.client_cert().map(|c| &*c.subject),
        client_cert_sha256: conn.client_cert().map(|c| &*c.sha256),
        method: "-",
        decision: Decision::Deny,
        rule: Some(if status == StatusCode::BAD_REQUEST {
            "malformed_request"
        } else {
            "request_head_too_large"
        }),
        status: status.as_u16(),
        duration: elapsed,
        ..AuditRecord::default()
    };
    gw.audit.submit(&rec).await;
}
