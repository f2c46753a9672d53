//! Header rewriting at the gateway boundary. Strict in, regenerated out:
//! hop-by-hop headers (including every name `Connection` lists) and every
//! header a client could use to steer routing, identity or framing are
//! removed first; only then are our own `X-Forwarded-*` and `X-Request-Id`
//! added, so a client cannot strip them (CVE-2024-45410 class).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Names looked up or added on every request, as constants: a `&str` key
/// is parsed and a non-standard one copied into a new `HeaderName` (an
/// allocation) on each use.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_API_VERSION: HeaderName = HeaderName::from_static("x-api-version");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The node a client picks for a node-local call (never forwarded).
pub const REGATE_NODE: HeaderName = HeaderName::from_static("regate-node");

const HOP_BY_HOP_COUNT: usize = 7;

/// Headers that describe one connection, never the message (a `static`:
/// a `const` array of names would be rebuilt and dropped at each use).
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Request headers removed on top of the hop-by-hop set: framing (the
/// client library re-frames the body), identity and routing headers the
/// client must not control, and method-override / rewrite headers.
fn strip_from_request(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "expect"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-forwarded-prefix"
            | "x-forwarded-port"
            | "x-real-ip"
            | "forwarded"
            | "x-request-id"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "x-original-url"
            | "x-original-method"
            | "x-rewrite-url"
            | "r-auth-user"
            | "proxy-authorization"
            | "regate-node"
    ) || HOP_BY_HOP.iter().any(|h| h.as_str() == name)
}

/// Names listed in `Connection` headers (lowercased, valid names only),
/// leaving out the hop-by-hop names, which are removed anyway: the usual
/// `keep-alive` costs no allocation.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        let Ok(text) = v.to_str() else { continue };
        for token in text.split(',') {
            let token = token.trim();
            if token.is_empty()
                || HOP_BY_HOP
                    .iter()
                    .any(|h| token.eq_ignore_ascii_case(h.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.to_ascii_lowercase().as_bytes()) {
                out.push(name);
            }
        }
    }
    out
}

/// What the gateway adds to every forwarded request.
pub struct Forwarded<'a> {
    pub x_forwarded_for: HeaderValue,
    pub request_id: &'a HeaderValue,
    /// `Some` in `forward = "service"` mode: replaces the client's Authorization.
    pub authorization: Option<HeaderValue>,
}

/// Rewrites a client request's headers for the node.
/// Headers [`rewrite_request`] may add: `x-forwarded-for`,
/// `x-forwarded-proto`, `x-request-id`. Maps built for a request reserve
/// room for them, so adding them never regrows the map.
pub const ADDED_TO_REQUEST: usize = 3;

/// Headers the gateway may add to a node's response (`x-request-id`, and a
/// `date` when the node sent none); see [`ADDED_TO_REQUEST`].
pub const ADDED_TO_RESPONSE: usize = 2;

pub fn rewrite_request(headers: &mut HeaderMap, fwd: Forwarded<'_>) {
    let listed = if headers.contains_key(header::CONNECTION) {
        connection_listed(headers)
    } else {
        Vec::new()
    };
    for name in listed {
        headers.remove(name);
    }
    // Usually one or two names (`host`): gathered on the stack, removed
    // after the walk; a longer list goes to the heap.
    let mut few: [Option<HeaderName>; 4] = Default::default();
    let mut more = Vec::new();
    for (i, name) in headers
        .keys()
        .filter(|n| strip_from_request(n.as_str()))
        .enumerate()
    {
        match few.get_mut(i) {
            Some(slot) => *slot = Some(name.clone()),
            None => more.push(name.clone()),
        }
    }
    for name in few.into_iter().flatten().chain(more) {
        headers.remove(name);
    }
    headers.insert(X_FORWARDED_FOR, fwd.x_forwarded_for);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    headers.insert(X_REQUEST_ID, fwd.request_id.clone());
    if let Some(auth) = fwd.authorization {
        headers.insert(header::AUTHORIZATION, auth);
    }
}

/// Strips hop-by-hop headers from a node's response.
pub fn rewrite_response(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        for name in connection_listed(headers) {
            // never let a node remove framing the client relies on
            if name != header::CONTENT_LENGTH {
                headers.remove(name);
            }
        }
    }
    // one pass over the (few) names, then a remove of just those present:
    // usually `connection` alone
    let mut present: [Option<HeaderName>; HOP_BY_HOP_COUNT] = Default::default();
    for (slot, name) in present
        .iter_mut()
        .zip(headers.keys().filter(|n| HOP_BY_HOP.contains(n)))
    {
        *slot = Some(name.clone());
    }
    for name in present.into_iter().flatten() {
        headers.remove(name);
    }
}

/// A client-supplied `X-Request-Id` is kept when it is 1..=128 bytes of
/// `[A-Za-z0-9._:-]`; anything else is replaced by a generated one.
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn client_cannot_strip_our_headers() {
        let mut h = map(&[
            (
                "connection",
                "close, X-Forwarded-For, X-Request-Id, x-custom",
            ),
            ("x-custom", "1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("x-http-method-override", "DELETE"),
            ("r-auth-user", "admin"),
            ("cluster-state-id", "42"),
            ("x-task-id", "t1"),
        ]);
        let id = HeaderValue::from_static("req-1");
        rewrite_request(
            &mut h,
            Forwarded {
                x_forwarded_for: HeaderValue::from_static("192.0.2.1"),
                request_id: &id,
                authorization: None,
            },
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-request-id"], "req-1");
        assert_eq!(h["x-forwarded-proto"], "https");
        for gone in [
            "connection",
            "x-custom",
            "te",
            "transfer-encoding",
            "content-length",
            "x-http-method-override",
            "r-auth-user",
        ] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
        assert_eq!(h["cluster-state-id"], "42");
        assert_eq!(h["x-task-id"], "t1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn service_mode_replaces_authorization() {
        let mut h = map(&[("authorization", "Basic Y2xpZW50OnB3")]);
        let id = HeaderValue::from_static("r");
        rewrite_request(
            &mut h,
            Forwarded {
                x_forwarded_for: HeaderValue::from_static("192.0.2.1"),
                request_id: &id,
                authorization: Some(HeaderValue::from_static("Basic c3ZjOnN2Yw==")),
            },
        );
        assert_eq!(h["authorization"], "Basic c3ZjOnN2Yw==");
        assert_eq!(h.get_all("authorization").iter().count(), 1);
    }

    #[test]
    fn response_hop_by_hop_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("content-type", "application/json"),
        ]);
        rewrite_response(&mut h);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("keep-alive"));
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn connection_tokens_any_case_and_many_stripped_names() {
        let mut h = map(&[
            ("connection", "Keep-Alive, X-Secret"),
            ("connection", "CLOSE"),
            ("close", "named by the close token"),
            ("x-secret", "s"),
            ("keep-alive", "timeout=5"),
            ("host", "client"),
            ("content-length", "0"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=x"),
            ("x-forwarded-host", "evil"),
            ("x-original-url", "/admin"),
            ("accept", "application/json"),
        ]);
        let id = HeaderValue::from_static("rid");
        rewrite_request(
            &mut h,
            Forwarded {
                x_forwarded_for: HeaderValue::from_static("10.0.0.1"),
                request_id: &id,
                authorization: None,
            },
        );
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "accept",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id"
            ]
        );

        let mut r = map(&[
            ("connection", "KEEP-ALIVE"),
            ("keep-alive", "timeout=5"),
            ("content-type", "application/json"),
        ]);
        rewrite_response(&mut r);
        let left: Vec<&str> = r.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type"]);
    }

    #[test]
    fn response_loses_every_hop_by_hop_name_at_once() {
        let mut r = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("content-type", "application/json"),
            ("etag", "\"1\""),
        ]);
        rewrite_response(&mut r);
        let mut left: Vec<&str> = r.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "etag"]);
    }

    #[test]
    fn request_id_validation() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!valid_request_id(&HeaderValue::from_static("")));
        assert!(!valid_request_id(&HeaderValue::from_static("a b")));
        assert!(!valid_request_id(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
