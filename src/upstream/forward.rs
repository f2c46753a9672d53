//! Forwarding one authorized request to the cluster: the upstream
//! request (canonical path, our forwarding headers), a healthy node by
//! round robin, the response-head deadline over every attempt, passive
//! ejection of a node that failed, and the retry on another node.
//!
//! A failed attempt goes to the next healthy node only when no byte of a
//! response came back and either nothing of the request was written
//! (connect or TLS failure) or the method is GET, HEAD or OPTIONS; a
//! repeatable request answered `503` by a node also moves on. Every retry
//! takes from the budget ([`super::retry`]). A request whose bytes may
//! have reached a node is never sent again otherwise. Failures are
//! classified by who is at fault: a request body that broke the limits is
//! the client's (413/408), a refused or reset connection is 502, a
//! timeout 504, a node speaking something other than HTTP 502.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use http_body::Body as _;

use crate::body::{BodyEnd, RequestBody, Tally};
use crate::error::Reject;
use crate::gateway::{Gateway, Snapshot};
use crate::metrics::UpstreamErrorKind;
use crate::observe::Exchange;
use crate::policy::Permit;

use super::balance::{Change, NodeIdx};
use super::client::{ClientError, NodeBody};
use super::framing::ProtocolError;
use super::headers;
use super::inline::repeatable;
use super::redirect::{read_small, redirect_target, Resend};

/// Sends the authorized request (`parts` and `body`, as the client sent
/// them) to a healthy node serving the permit's API version, retrying on
/// another when that is safe, and records on `ex` which nodes were tried.
pub async fn to_cluster(
    gw: &Gateway,
    snap: &Snapshot,
    ex: &mut Exchange,
    permit: &Permit,
    mut parts: http::request::Parts,
    body: RequestBody,
) -> Result<Response<NodeBody>, Reject> {
    let balancer = &snap.balancer;
    let nodes = &snap.config.upstream.nodes;
    let mut candidates = balancer.pick(Some(permit.version.0));
    // A node-local call goes to the node the client names, and only there.
    let chosen = match parts.headers.get(headers::REGATE_NODE) {
        None => None,
        Some(v) => Some(named_node(nodes, v)?),
    };
    let fixed = chosen.filter(|_| node_local(permit, &parts.method));
    // `prefer_master`: the master first, the others (round robin) after it
    let master = match (fixed, snap.config.upstream.prefer_master) {
        (None, true) => balancer.master_for(permit.version.0),
        _ => None,
    };
    let Some(mut node_idx) = fixed.or(master).or_else(|| candidates.next()) else {
        return Err(Reject::NoHealthyNode {
            retry_after_secs: balancer.retry_after_secs(),
        });
    };
    let bound = fixed.is_some();
    if bound {
        // no other node may answer in its place
        candidates = balancer.pick_none();
    }

    // The upstream request: canonical path + the query untouched, our own
    // framing and forwarding headers.
    let path_and_query = match &ex.path {
        None => ex.raw_target.clone(),
        Some(p) => {
            let pq = match ex.raw_target.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.to_string(),
            };
            PathAndQuery::try_from(pq).map_err(|_| Reject::Internal)?
        }
    };
    let x_forwarded_for = forwarded_for(snap, ex, &parts.headers);
    headers::rewrite_request(
        &mut parts.headers,
        headers::Forwarded {
            x_forwarded_for,
            request_id: &ex.id,
            authorization: snap.auth.upstream_authorization(),
        },
    );
    let may_repeat = repeatable(&parts.method);
    parts.uri = node_uri(&nodes[node_idx], path_and_query)?;
    // HTTP/1.1 to the nodes whatever the client spoke: hyper frames a body
    // of unknown length as chunked only on HTTP/1.1 (an h2 or HTTP/1.0
    // request's version kept here sent its body as nothing at all); the
    // client connection's extensions stay on the client side
    parts.version = http::Version::HTTP_11;
    parts.extensions = http::Extensions::new();
    let mut slot = Some(Request::from_parts(parts, body));
    // A small body of known length is read first and kept, so a node's
    // `307` can be followed with it (boxed: a rare, large state).
    let mut resend = None;
    if let Some(req) = slot.as_mut() {
        let limit = snap.config.limits.redirect_body_bytes;
        if req
            .body()
            .size_hint()
            .upper()
            .is_some_and(|n| n > 0 && n <= limit)
        {
            let body = std::mem::replace(req.body_mut(), RequestBody::empty());
            let bytes = Box::pin(read_small(body, ex.tally.as_deref())).await?;
            *req.body_mut() = RequestBody::full(bytes.clone());
            resend = Some(Box::new(Resend {
                method: req.method().clone(),
                uri: req.uri().clone(),
                headers: req.headers().clone(),
                body: bytes,
            }));
        }
    }
    let mut redirected = false;
    let mut waited = false;
    // a node's Retry-After to wait out before the next attempt
    let mut pause_ms = 0u32;

    let client = snap.client(ex.conn.worker);
    let until = Instant::now()
        .checked_add(snap.config.timeouts.upstream_response)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(366 * 86_400));
    balancer.budget.note_request();
    loop {
        if pause_ms > 0 {
            let pause = Duration::from_millis(u64::from(std::mem::take(&mut pause_ms)));
            Box::pin(tokio::time::sleep(pause)).await;
        }
        let node = &nodes[node_idx];
        ex.node = Some(node.url.clone());
        // [audit] required = true: no effect on the cluster without a
        // record (who, what, the decision and the first node), written
        // before the first attempt sends any byte
        if ex.upstream_elapsed.is_none() && !ex.commit_intent(gw).await {
            return Err(Reject::AuditUnavailable);
        }
        let sent = Instant::now();
        let outcome = tokio::time::timeout_at(until.into(), client.attempt(&mut slot)).await;
        let elapsed = sent.elapsed();
        // since the first attempt (the deadline counts from there)
        ex.upstream_elapsed = Some(
            snap.config
                .timeouts
                .upstream_response
                .saturating_sub(until.saturating_duration_since(Instant::now())),
        );
        let failure = match outcome {
            Err(_) => {
                gw.metrics
                    .observe_upstream(&node.url, elapsed, Some(UpstreamErrorKind::Timeout));
                ex.tried.push((node.url.clone(), "timeout"));
                return Err(Reject::UpstreamTimeout);
            }
            Ok(Ok(resp)) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                // the node says it cannot serve (not in an active cluster)
                gw.metrics.observe_upstream(&node.url, elapsed, None);
                eject(gw, snap, node_idx, &"answered 503");
                ex.tried.push((node.url.clone(), "status_503"));
                if may_repeat {
                    if let Some(next) = next_node(gw, &mut candidates, snap, node_idx) {
                        node_idx = next;
                        retarget(&mut slot, &nodes[next])?;
                        continue;
                    }
                    // no other node: its Retry-After, when the deadline
                    // allows it, is waited out once
                    let wait = retry_after(&resp).filter(|w| Instant::now() + *w < until);
                    if let Some(wait) = wait.filter(|_| !waited && balancer.budget.try_retry()) {
                        waited = true;
                        pause_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
                        continue;
                    }
                }
                ex.upstream_status = Some(resp.status());
                return Ok(resp);
            }
            Ok(Ok(resp))
                if resp.status() == StatusCode::TEMPORARY_REDIRECT
                    || resp.status() == StatusCode::PERMANENT_REDIRECT =>
            {
                gw.metrics.observe_upstream(&node.url, elapsed, None);
                ex.tried.push((node.url.clone(), "redirect"));
                let target = (!redirected && !bound)
                    .then(|| redirect_target(snap, node_idx, &resp, &slot, resend.as_deref()))
                    .flatten();
                let Some(next) = target else {
                    tracing::warn!(
                        node = &*node.url,
                        location = ?resp.headers().get(http::header::LOCATION),
                        "a node redirected outside the gateway; refused"
                    );
                    return Err(Reject::UpstreamRedirect);
                };
                if slot.is_none() {
                    slot = resend.as_ref().map(|r| r.request());
                }
                redirected = true;
                node_idx = next;
                retarget(&mut slot, &nodes[next])?;
                continue;
            }
            Ok(Ok(resp)) => {
                if let Some(Change::Up) = balancer.served(node_idx) {
                    gw.metrics.node_state_changed(&node.url, "up");
                    tracing::info!(node = &*node.url, "node up: answered after its back-off");
                }
                gw.metrics.observe_upstream(&node.url, elapsed, None);
                ex.upstream_status = Some(resp.status());
                return Ok(resp);
            }
            Ok(Err(failed)) => failed,
        };
        let reject = classify(&failure.error, ex.tally.as_deref());
        let kind = error_kind(&reject);
        if let Some(kind) = kind {
            gw.metrics.observe_upstream(&node.url, elapsed, Some(kind));
        }
        let why = match reject {
            Reject::UpstreamUnreachable => "unreachable",
            Reject::UpstreamProtocol => "bad_response",
            Reject::UpstreamTimeout => "timeout",
            Reject::UpstreamTls => "tls",
            _ => "client_body",
        };
        if reject == Reject::UpstreamTls {
            tracing::warn!(node = &*node.url, error = %failure.error, "the node's certificate failed verification");
        }
        ex.tried.push((node.url.clone(), why));
        if matches!(
            reject,
            Reject::UpstreamUnreachable | Reject::UpstreamProtocol | Reject::UpstreamTls
        ) {
            eject(gw, snap, node_idx, &failure.error);
        }
        let safe = !failure.answered
            && (!failure.written || may_repeat)
            && slot.is_some()
            && matches!(reject, Reject::UpstreamUnreachable | Reject::UpstreamTls);
        if safe {
            if let Some(next) = next_node(gw, &mut candidates, snap, node_idx) {
                tracing::debug!(
                    from = &*node.url,
                    to = &*nodes[next].url,
                    error = %failure.error,
                    "retrying on another node"
                );
                node_idx = next;
                retarget(&mut slot, &nodes[next])?;
                continue;
            }
        }
        return Err(reject);
    }
}

/// A `Retry-After` in seconds (an HTTP date is not waited for).
fn retry_after(resp: &Response<NodeBody>) -> Option<Duration> {
    let v = resp.headers().get(http::header::RETRY_AFTER)?;
    crate::wire::decimal(v.as_bytes().trim_ascii()).map(Duration::from_secs)
}

/// The configured node a `regate-node` header names (400 `unknown_node`
/// for any other value).
fn named_node(nodes: &[crate::config::Node], v: &HeaderValue) -> Result<NodeIdx, Reject> {
    nodes
        .iter()
        .position(|n| {
            n.name
                .as_deref()
                .is_some_and(|name| name.as_bytes() == v.as_bytes())
        })
        .ok_or(Reject::BadRequest {
            code: "unknown_node",
            description: "regate-node names no configured node",
        })
}

/// Calls a single node answers about itself: the profile's `node_local`
/// routes (`/v1/local/*`, `/v2/local/*`), `/v1/debuginfo/node*` and
/// `GET /v1/bootstrap`.
fn node_local(permit: &Permit, method: &http::Method) -> bool {
    permit.node_local
        || permit.template.starts_with("/v1/debuginfo/node")
        || (*method == http::Method::GET && &*permit.template == "/v1/bootstrap")
}

/// The next healthy candidate, when the retry budget allows one.
fn next_node(
    gw: &Gateway,
    candidates: &mut super::balance::Candidates<'_>,
    snap: &Snapshot,
    failed: NodeIdx,
) -> Option<NodeIdx> {
    let next = candidates.find(|&n| n != failed)?;
    let url = &snap.config.upstream.nodes[failed].url;
    let granted = snap.balancer.budget.try_retry();
    gw.metrics.upstream_retry(url, granted);
    granted.then_some(next)
}

/// Takes a node out after a failed request, logging the change once.
fn eject(gw: &Gateway, snap: &Snapshot, node: NodeIdx, why: &dyn std::fmt::Display) {
    if let Some(Change::Down) = snap.balancer.eject(node) {
        let url = &snap.config.upstream.nodes[node].url;
        gw.metrics.node_state_changed(url, "down");
        tracing::warn!(node = &**url, error = %why, "node down: a request to it failed");
    }
}

/// `scheme://authority` of the node with the request's path and query.
fn node_uri(node: &crate::config::Node, pq: PathAndQuery) -> Result<Uri, Reject> {
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.scheme = Some(node.scheme.clone());
    uri_parts.authority = Some(node.authority.clone());
    uri_parts.path_and_query = Some(pq);
    Uri::from_parts(uri_parts).map_err(|_| Reject::Internal)
}

/// Points the request (still in `slot`) at another node.
fn retarget(
    slot: &mut Option<Request<RequestBody>>,
    node: &crate::config::Node,
) -> Result<(), Reject> {
    let req = slot.as_mut().ok_or(Reject::Internal)?;
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = node_uri(node, pq)?;
    Ok(())
}

/// Our `X-Forwarded-For`: the socket peer, appended to the client's chain
/// only when the peer is a trusted proxy.
fn forwarded_for(snap: &Snapshot, ex: &Exchange, h: &http::HeaderMap) -> HeaderValue {
    let trusted = &snap.config.trusted_proxies;
    if !trusted.is_empty() && trusted.contains(ex.conn.peer.ip()) {
        let chain: Vec<&str> = h
            .get_all(headers::X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !chain.is_empty() {
            let joined = format!("{}, {}", chain.join(", "), ex.conn.peer.ip());
            if let Ok(v) = HeaderValue::from_str(&joined) {
                return v;
            }
        }
    }
    ex.conn.peer_header.clone()
}

/// The nodes a request was tried on before its answer, and why each
/// failed (audit: `upstream_tried`).
pub type Tried = Vec<(Arc<str>, &'static str)>;

/// Maps a client error to the [`Reject`] the caller sees.
pub fn classify(e: &ClientError, tally: Option<&Tally>) -> Reject {
    match tally.map(Tally::end) {
        Some(BodyEnd::TooLarge) => return Reject::PayloadTooLarge,
        Some(BodyEnd::TimedOut) => return Reject::RequestTimeout,
        Some(BodyEnd::ClientError) => {
            return Reject::BadRequest {
                code: "request_body_error",
                description: "the request body could not be read",
            }
        }
        Some(BodyEnd::Open) | Some(BodyEnd::Complete) | None => {}
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut timed_out = false;
    let mut protocol = false;
    let mut tls = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            // tokio-rustls wraps the handshake's error in an io::Error,
            // whose `source` skips it
            tls |= io.get_ref().is_some_and(|e| {
                matches!(
                    e.downcast_ref::<rustls::Error>(),
                    Some(
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                            | rustls::Error::InvalidCertRevocationList(_)
                    )
                )
            });
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            protocol |= h.is_parse() || h.is_parse_status() || h.is_parse_too_large();
            timed_out |= h.is_timeout();
        }
        protocol |= s.is::<ProtocolError>();
        // the connector reports its own deadline as a plain error message
        timed_out |= s.to_string().contains("timed out");
        source = s.source();
    }
    if timed_out {
        Reject::UpstreamTimeout
    } else if tls {
        Reject::UpstreamTls
    } else if protocol {
        Reject::UpstreamProtocol
    } else {
        Reject::UpstreamUnreachable
    }
}

/// The metrics label of an upstream failure (`None`: not the node's fault).
pub fn error_kind(r: &Reject) -> Option<UpstreamErrorKind> {
    match r {
        Reject::UpstreamUnreachable => Some(UpstreamErrorKind::Unreachable),
        Reject::UpstreamTimeout => Some(UpstreamErrorKind::Timeout),
        Reject::UpstreamProtocol => Some(UpstreamErrorKind::Protocol),
        Reject::UpstreamTls => Some(UpstreamErrorKind::Tls),
        _ => None,
    }
}
