//! Following a node's `307`/`308` inside regate: which configured node a
//! `Location` names (its URL's host and port, or an `[upstream.aliases]`
//! address), only for the very path and query the policy decided on, and
//! the small request body kept to send again. Deciding only; the sending
//! is `upstream::forward`'s.

use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};

use crate::body::{BodyEnd, RequestBody, Tally};
use crate::error::Reject;
use crate::gateway::Snapshot;

use super::balance::NodeIdx;
use super::client::NodeBody;

/// A request kept whole to follow a node's redirect with.
pub(super) struct Resend {
    pub(super) method: http::Method,
    pub(super) uri: Uri,
    pub(super) headers: http::HeaderMap,
    pub(super) body: bytes::Bytes,
}

impl Resend {
    pub(super) fn request(&self) -> Request<RequestBody> {
        let mut req = Request::new(RequestBody::full(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Reads a small request body whole (its limits and deadline are the
/// stream's own); a failure is the client's, as the tally says.
pub(super) async fn read_small(
    body: RequestBody,
    tally: Option<&Tally>,
) -> Result<bytes::Bytes, Reject> {
    use http_body_util::BodyExt;
    match body.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(match tally.map(Tally::end) {
            Some(BodyEnd::TooLarge) => Reject::PayloadTooLarge,
            Some(BodyEnd::TimedOut) => Reject::RequestTimeout,
            _ => Reject::BadRequest {
                code: "request_body_error",
                description: "the request body could not be read",
            },
        }),
    }
}

/// The configured node a `307`/`308` points at, when regate may follow
/// it: `Location` names a node by its configured authority or an
/// `[upstream.aliases]` one (or is relative: the same node), for the very
/// path and query the policy decided on, and the request can be sent
/// again (bodyless, or its body kept).
pub(super) fn redirect_target(
    snap: &Snapshot,
    from: NodeIdx,
    resp: &Response<NodeBody>,
    slot: &Option<Request<RequestBody>>,
    resend: Option<&Resend>,
) -> Option<NodeIdx> {
    let sent = match (slot, resend) {
        (Some(req), _) => req.uri(),
        (None, Some(r)) => &r.uri,
        (None, None) => return None,
    };
    let location: Uri = resp
        .headers()
        .get(http::header::LOCATION)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    if location.path_and_query().map(PathAndQuery::as_str)
        != sent.path_and_query().map(PathAndQuery::as_str)
    {
        return None;
    }
    let Some(authority) = location.authority() else {
        return Some(from);
    };
    let https = location.scheme() != Some(&http::uri::Scheme::HTTP);
    let up = &snap.config.upstream;
    let port = |a: &http::uri::Authority, https: bool| {
        a.port_u16().unwrap_or(if https { 443 } else { 80 })
    };
    let same = |a: &http::uri::Authority, a_https: bool| {
        a.host().eq_ignore_ascii_case(authority.host())
            && port(a, a_https) == port(authority, https)
    };
    up.nodes
        .iter()
        .position(|n| same(&n.authority, n.scheme == http::uri::Scheme::HTTPS))
        .or_else(|| {
            up.aliases
                .iter()
                .find(|(a, i)| same(a, up.nodes[*i].scheme == http::uri::Scheme::HTTPS))
                .map(|(_, i)| *i)
        })
}
