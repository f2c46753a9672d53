//! THE request path, top to bottom. Every request runs these stages in
//! this order, and every outcome leaves through [`finish`] exactly once:
//!
//! ```text
//! screen      protocol sanity: methods, upgrades, duplicate/illegal headers, size
//! audit gate  `[audit] required` and the sink failing -> 503
//! canonicalize + resolve   the canonical path and its route (404 / 505 / 400)
//! limit ip    per-client limit, before any password hashing
//! authenticate              Basic credentials -> Principal (401 / 429 / 503)
//! authorize   Principal x route -> Permit (403), self-service body check
//! limit user  per-user, per-class, global limits (429)
//! forward     a healthy node for the route's API version (upstream::forward:
//!             retries, node health); stream both ways
//! finish      response + one audit record + one metrics observation
//! ```
//! Stages are functions of borrowed inputs returning a typed outcome or a
//! [`Reject`]; only this file knows their order. Unknown routes and bad
//! paths are refused before authentication: they cost no password check.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::audit::{Decision, RateLimit};
use crate::body::{ClientBody, RequestBody, ResponseBody, Tally};
use crate::context::ConnInfo;
use crate::error::Reject;
use crate::gateway::{Gateway, Snapshot};
use crate::metrics::AuthOutcome;
use crate::observe::{Exchange, Finish};
use crate::policy::{self, BodyVerdict, EndpointClass, Permit};
use crate::ratelimit::{Class, Denied};
use crate::upstream::client::NodeBody;
use crate::upstream::{forward, headers};

/// Largest body buffered for a self-service check (`PUT /v1/users/password`).
const SELF_SERVICE_BODY_MAX: usize = 64 * 1024;

/// Serves one request. Never fails: every error becomes a response here.
pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<ClientBody>,
) -> Response<ResponseBody> {
    conn.activity.begin();
    let snap = gw.current_full();
    let (parts, mut body) = req.into_parts();
    // HTTP/1.1 asking for `100 Continue`: an early answer means the client
    // never sends the body, and reading it would make hyper ask for it
    let waits_for_continue = !conn.h2 && parts.headers.contains_key(header::EXPECT);
    let mut ex = start(&gw, &snap, conn, &parts, &body).await;
    let outcome = process(&gw, &snap, &mut ex, parts, &mut body).await;
    // `body` is what the pipeline did not take: a request answered early
    // keeps its unread body until the answer is on its way (crate::linger)
    if waits_for_continue {
        std::mem::replace(&mut body, ClientBody::Empty).abandon();
    }
    finish(gw, &snap, ex, outcome, body)
}

async fn start(
    gw: &Gateway,
    snap: &Snapshot,
    conn: Arc<ConnInfo>,
    req: &http::request::Parts,
    body: &ClientBody,
) -> Exchange {
    let id = match req.headers.get(headers::X_REQUEST_ID) {
        Some(v) if headers::valid_request_id(v) => v.clone(),
        _ => gw.next_request_id(),
    };
    let client_ip = snap
        .config
        .trusted_proxies
        .client_ip(conn.peer.ip(), &req.headers);
    // Back-pressure point: in `on_full = "block"` mode a full audit queue
    // holds new requests here, so the exit door never has to wait.
    let audit_slot = Some(gw.audit.reserve().await);
    Exchange {
        id,
        started: Instant::now(),
        started_at: std::time::SystemTime::now(),
        client_ip,
        method: req.method.clone(),
        raw_target: req
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        path: None,
        route: None,
        api_version: None,
        permission: None,
        rule: None,
        decision: Decision::Deny,
        principal: None,
        attempted_user: None,
        rate_limit: RateLimit::NotChecked,
        limited: None,
        verdict: None,
        node: None,
        tried: Vec::new(),
        upstream_status: None,
        upstream_elapsed: None,
        status: StatusCode::OK,
        reject: None,
        tally: None,
        had_body: !body.is_end_stream(),
        audit_slot,
        conn,
    }
}

async fn process(
    gw: &Gateway,
    snap: &Snapshot,
    ex: &mut Exchange,
    parts: http::request::Parts,
    client_body: &mut ClientBody,
) -> Result<Response<NodeBody>, Reject> {
    // Cheap protocol checks first: nothing below may see a request that
    // could be read two ways (smuggling, tunnelling, ambiguous identity).
    screen(&parts, client_body, snap)?;

    // Unaudited requests are not served when the audit trail is required.
    if !gw.audit.healthy() {
        return Err(Reject::AuditUnavailable);
    }

    // The decision is made on the canonical path, and exactly that path is
    // forwarded (SECURITY.md rule 1).
    let policy = &snap.config.policy;
    let canonical = policy::canonicalize(parts.uri.path())?;
    if canonical.as_ref() != parts.uri.path() {
        ex.path = Some(canonical.as_ref().into());
    }
    let x_api_version = parts
        .headers
        .get(headers::X_API_VERSION)
        .map(|v| v.as_bytes());
    let route = policy.resolve(&parts.method, &canonical, x_api_version)?;
    check_no_body(&route, client_body)?;
    ex.route = Some(route.template_arc().clone());
    ex.api_version = Some(route.version.0);
    ex.permission = Some(route.route.permission_name.clone());

    // Per-client limit before any password hashing: a flood from one
    // address costs one map lookup each.
    if let Err(d) = snap.limiter.check_ip_shared(ex.client_ip).await {
        return Err(limit_denied(gw, ex, d));
    }

    let principal = match snap
        .auth
        .authenticate(&parts.headers, ex.client_ip, &ex.conn.auth_memo)
        .await
    {
        Ok(p) => {
            gw.metrics
                .observe_auth(Some(p.source), AuthOutcome::Success);
            p
        }
        Err(r) => {
            gw.metrics
                .observe_auth(Some(snap.auth.identity_source()), auth_outcome(&r));
            ex.attempted_user = crate::auth::basic::attempted_user(&parts.headers);
            return Err(r);
        }
    };
    let permit = policy.authorize(&route, &principal);
    ex.principal = Some(principal);
    let permit = permit?;
    note_permit(ex, &permit);

    // Self-service routes decide on the body (`username`): buffer it (small,
    // bounded, under the body deadline) and forward exactly those bytes.
    let buffered = if permit.requires_body_check() {
        let bytes = buffer_small_body(client_body, snap).await?;
        let who = ex.principal.as_ref().ok_or(Reject::Internal)?;
        if let BodyVerdict::DryRunDenied(r) = permit.check_body(&bytes, who)? {
            dry_run_denied(ex, &permit, &r);
        }
        Some(bytes)
    } else {
        None
    };

    // Per-user, per-class and global limits, only for authorized requests
    // (a request denied above spends none of these tokens).
    let who = ex.principal.as_ref().ok_or(Reject::Internal)?;
    match snap
        .limiter
        .check_request_shared(&who.user, &who.role, class_of(permit.class))
        .await
    {
        Ok(v) => {
            ex.rate_limit = RateLimit::Pass;
            ex.verdict = Some(v);
        }
        Err(d) => return Err(limit_denied(gw, ex, d)),
    }

    // Only now is the body taken for forwarding: every answer above leaves
    // it unread, to be discarded once that answer is on its way.
    let body = match (buffered, std::mem::replace(client_body, ClientBody::Empty)) {
        (Some(bytes), _) => RequestBody::full(bytes),
        (None, ClientBody::Hyper(body)) if !body.is_end_stream() => {
            let tally = Arc::new(Tally::default());
            ex.tally = Some(tally.clone());
            let digest = snap.config.audit.body_digest && is_write(&parts.method);
            let t = &snap.config.timeouts;
            RequestBody::stream(
                body,
                snap.config.limits.max_body_bytes,
                t.request_body,
                tally,
                digest,
            )
        }
        (None, _) => RequestBody::empty(),
    };

    // A healthy node for the route's API version; the request is sent,
    // retried elsewhere when that is safe, and the nodes' health noted.
    forward::to_cluster(gw, snap, ex, &permit, parts, body).await
}

fn note_permit(ex: &mut Exchange, permit: &Permit) {
    ex.rule = Some(permit.rule);
    ex.permission = Some(permit.permission.clone());
    ex.decision = Decision::Allow;
    if let Some(r) = &permit.dry_run_denied {
        dry_run_denied(ex, permit, r);
    }
}

fn dry_run_denied(ex: &mut Exchange, permit: &Permit, would: &Reject) {
    ex.decision = Decision::DryRunDeny;
    ex.rule = Some(permit.rule);
    tracing::warn!(
        id = ?ex.id,
        route = &*permit.template,
        permission = &*permit.permission,
        would = ?would.status(),
        "dry-run: request forwarded that enforce mode would deny"
    );
}

fn limit_denied(gw: &Gateway, ex: &mut Exchange, d: Denied) -> Reject {
    match d {
        Denied::Limited(l) => {
            ex.rate_limit = RateLimit::Limited(l.scope);
            ex.limited = Some(l);
            gw.metrics.rate_limited(l.scope);
            l.reject()
        }
        Denied::Unavailable => Reject::RateLimitUnavailable,
    }
}

fn auth_outcome(r: &Reject) -> AuthOutcome {
    match r {
        Reject::AuthThrottled { .. } => AuthOutcome::Throttled,
        Reject::AuthUnavailable => AuthOutcome::Unavailable,
        // a certificate that does not match the user's binding is a failed login
        Reject::Unauthorized | Reject::ClientCertMismatch => AuthOutcome::Failure,
        _ => AuthOutcome::Missing,
    }
}

fn class_of(c: EndpointClass) -> Class {
    match c {
        EndpointClass::Read => Class::Read,
        EndpointClass::Write => Class::Write,
        EndpointClass::Destructive => Class::Destructive,
    }
}

fn is_write(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Reads a small body whole, bounded in size and time. On a refusal the
/// body stays with the caller, partly read, to be discarded after the answer.
async fn buffer_small_body(body: &mut ClientBody, snap: &Snapshot) -> Result<Bytes, Reject> {
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Reject::BadRequest {
                code: "request_body_error",
                description: "the request body could not be read",
            })?;
            if let Some(d) = frame.data_ref() {
                if buf.len() + d.len() > SELF_SERVICE_BODY_MAX {
                    return Err(Reject::PayloadTooLarge);
                }
                buf.extend_from_slice(d);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(snap.config.timeouts.request_body, read)
        .await
        .unwrap_or(Err(Reject::RequestTimeout))
}

/// Methods the API uses, exact case (B9: `get` or `FOO` never falls
/// through to a rule written for `GET`).
fn method_allowed(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD
    )
}

fn screen(req: &http::request::Parts, body: &ClientBody, snap: &Snapshot) -> Result<(), Reject> {
    let h = &req.headers;
    if !method_allowed(&req.method) {
        return Err(Reject::MethodNotAllowed);
    }
    if h.contains_key(header::UPGRADE) || req.extensions.get::<hyper::ext::Protocol>().is_some() {
        return Err(Reject::UpgradeRefused);
    }
    for name in [header::HOST, header::AUTHORIZATION, header::CONTENT_LENGTH] {
        let mut all = h.get_all(&name).iter();
        if all.next().is_some() && all.next().is_some() {
            return Err(Reject::BadRequest {
                code: "duplicate_header",
                description: "Host, Authorization and Content-Length may appear only once",
            });
        }
    }
    // the version check must not take the first of two and forward both
    let mut versions = h.get_all(headers::X_API_VERSION).iter();
    if versions.next().is_some() && versions.next().is_some() {
        return Err(Reject::BadRequest {
            code: "duplicate_header",
            description: "X-API-Version may appear only once",
        });
    }
    // RFC 9112 3.2: an HTTP/1.1 request without Host is malformed (B6); h2
    // carries the authority in its pseudo-header instead.
    if req.version == Version::HTTP_11 && !h.contains_key(header::HOST) {
        return Err(Reject::BadRequest {
            code: "missing_host",
            description: "HTTP/1.1 requests need a Host header",
        });
    }
    if h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING) {
        return Err(Reject::BadRequest {
            code: "ambiguous_framing",
            description: "Content-Length and Transfer-Encoding together",
        });
    }
    if h.keys().any(|n| n.as_str().contains('_')) {
        return Err(Reject::BadRequest {
            code: "invalid_header_name",
            description: "header names must not contain '_'",
        });
    }
    if req.version == Version::HTTP_2 {
        if let (Some(host), Some(auth)) = (h.get(header::HOST), req.uri.authority()) {
            if host.as_bytes() != auth.as_str().as_bytes() {
                return Err(Reject::BadRequest {
                    code: "host_mismatch",
                    description: "Host differs from :authority",
                });
            }
        }
    }
    if body.size_hint().lower() > snap.config.limits.max_body_bytes {
        return Err(Reject::PayloadTooLarge);
    }
    Ok(())
}

/// A body (`Content-Length` above 0, or any chunked or h2 DATA) on a route
/// whose documented request takes none: a node could only read it as a
/// second, unauthorized and unaudited request, or ignore it. Refused before
/// authentication, on both protocols and on HTTP/1.0 alike.
fn check_no_body(route: &policy::RouteMatch<'_>, body: &ClientBody) -> Result<(), Reject> {
    if route.takes_body() || body.is_end_stream() || body.size_hint().upper() == Some(0) {
        return Ok(());
    }
    Err(Reject::BadRequest {
        code: "body_not_allowed",
        description: "this route takes no request body",
    })
}

/// Rejects answering a request that was malformed, ambiguous or asked for
/// a tunnel: on HTTP/1.1 the connection is closed after them (B4, B8).
fn protocol_violation(r: &Reject) -> bool {
    matches!(
        r,
        Reject::BadRequest { .. } | Reject::UpgradeRefused | Reject::MethodNotAllowed
    )
}

/// The single exit: turns the outcome into the client's response and
/// hooks the audit record and metrics to the end of its body.
fn finish(
    gw: Arc<Gateway>,
    snap: &Snapshot,
    mut ex: Exchange,
    outcome: Result<Response<NodeBody>, Reject>,
    unread: ClientBody,
) -> Response<ResponseBody> {
    let mut resp = match outcome {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::rewrite_response(&mut parts.headers);
            if ex.conn.h2 {
                // a new value every second: indexed, the dates pile up in
                // the HPACK table and every lookup walks them all
                if let Some(d) = parts.headers.get_mut(header::DATE) {
                    d.set_sensitive(true);
                }
            }
            if let Some(v) = &ex.verdict {
                v.apply_headers(&mut parts.headers);
            }
            let body = ResponseBody::upstream(body, snap.config.timeouts.upstream_body);
            Response::from_parts(parts, body)
        }
        Err(reject) => {
            let (mut parts, body) = reject.to_response().into_parts();
            if let Some(l) = &ex.limited {
                l.apply_headers(&mut parts.headers);
            }
            // An early answer with an unread body closes the connection
            // rather than reading (or smuggling) what follows (CVE-2025-4366);
            // so does an answer to a malformed or tunnelling request, whose
            // following bytes cannot be trusted to frame the next one.
            // The client may still be sending: the close lingers until it
            // stops (crate::linger), so this answer is not lost to a RST.
            if !ex.conn.h2 && (ex.had_body || protocol_violation(&reject)) {
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                ex.conn.linger.set();
            }
            ex.reject = Some(reject);
            Response::from_parts(parts, ResponseBody::full(body))
        }
    };
    // unique per response: HPACK must not index it (an indexed id would
    // evict useful entries and make every later lookup walk a chain of ids)
    let mut id = ex.id.clone();
    id.set_sensitive(true);
    resp.headers_mut().insert(headers::X_REQUEST_ID, id);
    ex.status = resp.status();
    let body = resp.body_mut();
    body.discard_after_head(unread);
    body.set_on_done(Box::new(Finish { ex, gw }));
    resp
}

#[cfg(test)]
mod tests {
    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every request's future is built and moved by `memcpy` as a whole,
    /// so the state of rare paths (a cache miss, a request body, a new
    /// upstream connection) is boxed where they are awaited, and the
    /// upstream call consumes its request before its future exists.
    /// 7.2 KB in release at first, 4.8 KB with the cold paths boxed,
    /// 3.4 KB since the upstream call is a plain function.
    #[test]
    fn the_request_future_carries_no_cold_path() {
        let size = future_size(&super::handle);
        assert!(size < 4 * 1024, "pipeline::handle future is {size} bytes");
    }
}
