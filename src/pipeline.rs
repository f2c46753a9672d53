//! THE request path, top to bottom. Every request runs these stages in
//! this order, and every outcome leaves through [`finish`] exactly once:
//!
//! ```text
//! screen (methods, upgrades, duplicate/illegal headers, declared size)
//!   -> pick a node -> forward (stream both ways) -> finish
//! ```
//! Stages are functions of borrowed inputs returning a typed outcome or a
//! [`Reject`]; only this file knows their order.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{RequestBody, ResponseBody, Tally};
use crate::context::ConnInfo;
use crate::error::Reject;
use crate::gateway::{Gateway, Snapshot};
use crate::observe::{Exchange, Finish};
use crate::upstream::{forward, headers};

/// Serves one request. Never fails: every error becomes a response here.
pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    conn.activity.begin();
    let snap = gw.current_full();
    let mut ex = start(&gw, &snap, conn, &req);
    let outcome = process(&snap, &mut ex, req).await;
    finish(gw, &snap, ex, outcome)
}

fn start(gw: &Gateway, snap: &Snapshot, conn: Arc<ConnInfo>, req: &Request<Incoming>) -> Exchange {
    let id = match req.headers().get("x-request-id") {
        Some(v) if headers::valid_request_id(v) => v.clone(),
        _ => gw.next_request_id(),
    };
    let client_ip = snap
        .config
        .trusted_proxies
        .client_ip(conn.peer.ip(), req.headers());
    Exchange {
        id,
        started: Instant::now(),
        started_at: std::time::SystemTime::now(),
        client_ip,
        method: req.method().clone(),
        raw_target: req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        path: None,
        route: None,
        principal: None,
        node: None,
        upstream_status: None,
        upstream_elapsed: None,
        status: StatusCode::OK,
        reject: None,
        tally: None,
        had_body: !req.body().is_end_stream(),
        conn,
    }
}

async fn process(
    snap: &Snapshot,
    ex: &mut Exchange,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, Reject> {
    // Cheap protocol checks first: nothing below may see a request that
    // could be read two ways (smuggling, tunnelling, ambiguous identity).
    screen(&req, snap)?;

    // Pick a node. Passive health: nodes that refused connections are
    // tried last.
    let node_idx = snap.balancer.pick(None).next().ok_or(Reject::NoUpstream)?;
    let node = &snap.config.upstream.nodes[node_idx];
    ex.node = Some(node.url.clone());

    // Build the upstream request from the authorized path, never from raw
    // bytes, with our own framing and forwarding headers.
    let (mut parts, body) = req.into_parts();
    let path_and_query = ex.raw_target.clone();
    let mut uri_parts = http::uri::Parts::default();
    uri_parts.scheme = Some(node.scheme.clone());
    uri_parts.authority = Some(node.authority.clone());
    uri_parts.path_and_query = Some(path_and_query);
    let uri = Uri::from_parts(uri_parts).map_err(|_| Reject::Internal)?;
    let x_forwarded_for = forwarded_for(snap, ex, &parts.headers);
    headers::rewrite_request(
        &mut parts.headers,
        headers::Forwarded {
            x_forwarded_for,
            request_id: &ex.id,
            authorization: None,
        },
    );
    let body = if body.is_end_stream() {
        RequestBody::empty()
    } else {
        let tally = Arc::new(Tally::default());
        ex.tally = Some(tally.clone());
        let t = &snap.config.timeouts;
        RequestBody::stream(
            body,
            snap.config.limits.max_body_bytes,
            t.request_body,
            tally,
        )
    };
    let mut up = Request::new(body);
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    *up.headers_mut() = parts.headers;

    let sent = Instant::now();
    let result = forward::send(
        &snap.client,
        up,
        snap.config.timeouts.upstream_response,
        ex.tally.as_deref(),
    )
    .await;
    ex.upstream_elapsed = Some(sent.elapsed());
    match &result {
        Ok(resp) => {
            snap.balancer.mark_up(node_idx);
            ex.upstream_status = Some(resp.status());
        }
        Err(Reject::UpstreamUnreachable) => snap.balancer.mark_down(node_idx),
        Err(_) => {}
    }
    result
}

/// Our `X-Forwarded-For`: the socket peer, appended to the client's chain
/// only when the peer is a trusted proxy.
fn forwarded_for(snap: &Snapshot, ex: &Exchange, h: &http::HeaderMap) -> HeaderValue {
    let trusted = &snap.config.trusted_proxies;
    if !trusted.is_empty() && trusted.contains(ex.conn.peer.ip()) {
        let chain: Vec<&str> = h
            .get_all("x-forwarded-for")
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

/// Methods the API uses, exact case (B9: `get` or `FOO` never falls
/// through to a rule written for `GET`).
fn method_allowed(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD
    )
}

fn screen(req: &Request<Incoming>, snap: &Snapshot) -> Result<(), Reject> {
    let h = req.headers();
    if !method_allowed(req.method()) {
        return Err(Reject::MethodNotAllowed);
    }
    if h.contains_key(header::UPGRADE) || req.extensions().get::<hyper::ext::Protocol>().is_some() {
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
    if req.version() == Version::HTTP_2 {
        if let (Some(host), Some(auth)) = (h.get(header::HOST), req.uri().authority()) {
            if host.as_bytes() != auth.as_str().as_bytes() {
                return Err(Reject::BadRequest {
                    code: "host_mismatch",
                    description: "Host differs from :authority",
                });
            }
        }
    }
    if req.body().size_hint().lower() > snap.config.limits.max_body_bytes {
        return Err(Reject::PayloadTooLarge);
    }
    Ok(())
}

/// The single exit: turns the outcome into the client's response and
/// hooks the audit record and metrics to the end of its body.
fn finish(
    gw: Arc<Gateway>,
    snap: &Snapshot,
    mut ex: Exchange,
    outcome: Result<Response<Incoming>, Reject>,
) -> Response<ResponseBody> {
    let mut resp = match outcome {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            headers::rewrite_response(&mut parts.headers);
            let body = ResponseBody::upstream(body, snap.config.timeouts.upstream_body);
            Response::from_parts(parts, body)
        }
        Err(reject) => {
            let (mut parts, body) = reject.to_response().into_parts();
            // An early answer with an unread body closes the connection
            // rather than reading (or smuggling) what follows (CVE-2025-4366).
            if ex.had_body && !ex.conn.h2 {
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ex.reject = Some(reject);
            Response::from_parts(parts, ResponseBody::full(body))
        }
    };
    resp.headers_mut().insert("x-request-id", ex.id.clone());
    ex.status = resp.status();
    resp.body_mut().set_on_done(Box::new(Finish { ex, gw }));
    resp
}
