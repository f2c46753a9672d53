//! `Reject`: every way a request can end before (or instead of) a normal
//! upstream answer, and its one mapping to an HTTP response. The match in
//! [`Reject::parts`] is exhaustive on purpose: a new variant must say who is
//! at fault and what the client sees. Descriptions never carry secrets.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// Why a request was answered by the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    // ---- the client's fault (4xx) ----
    /// Malformed request: bad path, duplicate framing headers, bad header values.
    BadRequest {
        code: &'static str,
        description: &'static str,
    },
    /// No usable credentials, or wrong ones. Carries `WWW-Authenticate`.
    Unauthorized,
    /// Too many failed logins from this client or for this user name.
    AuthThrottled { retry_after_secs: u64 },
    /// The user is bound to a client certificate (users-file
    /// `client_cert`) and this connection did not present a matching one.
    ClientCertMismatch,
    /// Authenticated, but the role lacks the permission the route needs.
    Forbidden {
        permission: Cow<'static, str>,
        role: Cow<'static, str>,
    },
    /// No documented route matches (default deny: never forwarded).
    NotFound,
    /// Method outside the exact-case allow-list, `CONNECT`, or `TRACE`.
    MethodNotAllowed,
    /// `Upgrade` / tunnelling requests.
    UpgradeRefused,
    /// The request body exceeds `limits.max_body_bytes`.
    PayloadTooLarge,
    /// The request body did not arrive within `timeouts.request_body`.
    RequestTimeout,
    /// A header (e.g. `Authorization`) exceeds its size limit.
    HeaderTooLarge,
    /// A request rate limit was hit.
    RateLimited {
        scope: &'static str,
        retry_after_secs: u64,
    },
    /// `x-api-version` names a version the route does not support.
    UnsupportedApiVersion,

    // ---- the upstream's fault (5xx) ----
    /// The node refused or reset the connection.
    UpstreamUnreachable,
    /// The node answered with something that is not valid HTTP.
    UpstreamProtocol,
    /// The node did not connect or answer within its deadline.
    UpstreamTimeout,
    /// The node redirected the request somewhere regate does not follow
    /// (not a configured node, another path, a second redirect).
    UpstreamRedirect,
    /// The node's certificate failed verification (CA, name or SPKI pin).
    UpstreamTls,
    /// Every node serving the request is out of rotation (failed requests
    /// or health checks); `Retry-After` says when one may be back.
    NoHealthyNode { retry_after_secs: u64 },
    /// The identity source (cluster) could not be asked.
    AuthUnavailable,
    /// The shared rate-limit store is down and `fail_closed = true`.
    RateLimitUnavailable,

    // ---- ours ----
    /// `[audit] required = true` and the audit sink is failing.
    AuditUnavailable,
    /// A bug or resource failure inside the gateway.
    Internal,
}

/// The rendered form of a [`Reject`].
pub struct RejectParts {
    pub status: StatusCode,
    pub error_code: Cow<'static, str>,
    pub description: Cow<'static, str>,
}

impl Reject {
    /// Status, `error_code` and description: the one mapping.
    pub fn parts(&self) -> RejectParts {
        use Reject::*;
        let (status, code, description): (StatusCode, Cow<'static, str>, Cow<'static, str>) =
            match self {
                BadRequest { code, description } => {
                    (StatusCode::BAD_REQUEST, (*code).into(), (*description).into())
                }
                Unauthorized => (
                    StatusCode::UNAUTHORIZED,
                    "unauthorized".into(),
                    "valid Basic credentials are required".into(),
                ),
                AuthThrottled { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failed_logins".into(),
                    "too many failed login attempts; retry later".into(),
                ),
                ClientCertMismatch => (
                    StatusCode::FORBIDDEN,
                    "client_certificate_mismatch".into(),
                    "this user must connect with its own client certificate".into(),
                ),
                Forbidden { permission, role } => (
                    StatusCode::FORBIDDEN,
                    format!("missing_permission:{permission}").into(),
                    format!("role '{role}' does not hold the permission '{permission}' this request requires").into(),
                ),
                NotFound => (
                    StatusCode::NOT_FOUND,
                    "not_found".into(),
                    "no such endpoint".into(),
                ),
                MethodNotAllowed => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed".into(),
                    "method not allowed".into(),
                ),
                UpgradeRefused => (
                    StatusCode::BAD_REQUEST,
                    "upgrade_not_supported".into(),
                    "protocol upgrades and tunnels are not supported".into(),
                ),
                PayloadTooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large".into(),
                    "request body exceeds the configured limit".into(),
                ),
                RequestTimeout => (
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout".into(),
                    "request body was not received in time".into(),
                ),
                HeaderTooLarge => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "header_too_large".into(),
                    "a request header exceeds the configured limit".into(),
                ),
                RateLimited { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited".into(),
                    "request rate limit exceeded; retry later".into(),
                ),
                UnsupportedApiVersion => (
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "unsupported_api_version".into(),
                    "the requested API version is not supported for this endpoint".into(),
                ),
                UpstreamUnreachable => (
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable".into(),
                    "the cluster node refused or reset the connection".into(),
                ),
                UpstreamProtocol => (
                    StatusCode::BAD_GATEWAY,
                    "bad_upstream_response".into(),
                    "the cluster node sent an invalid response".into(),
                ),
                UpstreamTimeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout".into(),
                    "the cluster node did not answer in time".into(),
                ),
                UpstreamTls => (
                    StatusCode::BAD_GATEWAY,
                    "upstream_tls".into(),
                    "the cluster node's certificate failed verification".into(),
                ),
                UpstreamRedirect => (
                    StatusCode::BAD_GATEWAY,
                    "upstream_redirect".into(),
                    "the cluster node redirected the request outside the gateway".into(),
                ),
                NoHealthyNode { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_healthy_node".into(),
                    "no cluster node is healthy; retry later".into(),
                ),
                AuthUnavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable".into(),
                    "the identity source is unavailable".into(),
                ),
                RateLimitUnavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rate_limit_unavailable".into(),
                    "the shared rate-limit store is unavailable".into(),
                ),
                AuditUnavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable".into(),
                    "the audit log cannot be written; request refused".into(),
                ),
                Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error".into(),
                    "internal gateway error".into(),
                ),
            };
        RejectParts {
            status,
            error_code: code,
            description,
        }
    }

    /// Status code alone (for metrics and audit).
    pub fn status(&self) -> StatusCode {
        self.parts().status
    }

    /// The JSON body `{"error_code": "...", "description": "..."}`.
    /// Written by hand with the audit log's string escaper: building a
    /// `serde_json::Value` and printing it cost ~2.6k instructions per
    /// refused request, which a flood of 401s or 429s pays in full. Keys
    /// in the order serde_json printed them.
    pub fn body(&self) -> Bytes {
        let p = self.parts();
        let mut out = Vec::with_capacity(40 + p.error_code.len() + p.description.len());
        out.extend_from_slice(b"{\"description\":");
        crate::audit::json::write_str(&mut out, &p.description);
        out.extend_from_slice(b",\"error_code\":");
        crate::audit::json::write_str(&mut out, &p.error_code);
        out.push(b'}');
        Bytes::from(out)
    }

    /// Builds the response head and body (the caller wraps the body type).
    pub fn to_response(&self) -> Response<Bytes> {
        let body = self.body();
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            Reject::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"regate\", charset=\"UTF-8\""),
                );
            }
            Reject::AuthThrottled { retry_after_secs }
            | Reject::NoHealthyNode { retry_after_secs }
            | Reject::RateLimited {
                retry_after_secs, ..
            } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_cluster_shaped_json() {
        let r = Reject::Forbidden {
            permission: "delete_bdb".into(),
            role: "db_viewer".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(v["error_code"], "missing_permission:delete_bdb");
        assert!(v["description"].as_str().unwrap().contains("db_viewer"));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn body_matches_what_serde_json_printed() {
        let all = [
            Reject::Unauthorized,
            Reject::Internal,
            Reject::AuditUnavailable,
            Reject::BadRequest {
                code: "bad_path",
                description: "a \"quoted\" \\ path\n",
            },
            Reject::Forbidden {
                permission: "delete_bdb".into(),
                role: "db_viewer".into(),
            },
        ];
        for r in all {
            let p = r.parts();
            let old = serde_json::json!({
                "error_code": p.error_code,
                "description": p.description,
            })
            .to_string();
            assert_eq!(String::from_utf8(r.body().to_vec()).unwrap(), old, "{r:?}");
        }
    }

    #[test]
    fn unauthorized_carries_challenge() {
        let resp = Reject::Unauthorized.to_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"regate\", charset=\"UTF-8\""
        );
    }

    #[test]
    fn throttles_carry_retry_after() {
        let resp = Reject::AuthThrottled {
            retry_after_secs: 7,
        }
        .to_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    }
}
