//! [`AuditRecord`]: what one request leaves in the audit trail, borrowed
//! from the pipeline's own state so building it copies nothing, and its
//! encoding as the body of one JSON line. The chain fields (`seq`, `prev`)
//! are not here: only the writer knows them (see [`super::chain`]).
//!
//! Never put a password, an `Authorization` value or a cookie in a record:
//! there is no field for them, and free-text fields are for names, paths
//! and rule identifiers only.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::json::{write_bytes_lossy, write_hex, write_str, write_u64};
use super::time::write_rfc3339_micros;

/// The authorization outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decision {
    /// Authorized and forwarded (or meant to be).
    Allow,
    /// Refused by the gateway: no credentials, wrong ones, missing
    /// permission, unknown route, or any other early reject.
    #[default]
    Deny,
    /// The policy would deny, but runs in dry-run mode and let it through.
    DryRunDeny,
}

impl Decision {
    /// `allow`, `deny` or `dry-run-deny` (also the metrics label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::DryRunDeny => "dry-run-deny",
        }
    }
}

/// What the rate limiter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimit {
    /// The request ended before the limiter was asked.
    #[default]
    NotChecked,
    /// Within every limit.
    Pass,
    /// Refused by the limit of this scope (`"user"`, `"ip"`, `"route"`...).
    Limited(&'static str),
}

/// One request, allowed or denied. Every field is borrowed; absent
/// optional fields are left out of the line.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// When the request started (written as RFC 3339 UTC, microseconds).
    pub time: SystemTime,
    /// The request id also sent upstream as `X-Request-Id`.
    pub request_id: &'a str,
    pub client_ip: IpAddr,
    pub client_port: u16,
    /// `"TLSv1.3"`, `"TLSv1.2"`.
    pub tls_version: &'a str,
    pub sni: Option<&'a str>,
    /// The verified client certificate's subject (CN, or first SAN).
    pub client_cert: Option<&'a str>,
    /// SHA-256 fingerprint of that certificate, lowercase hex.
    pub client_cert_sha256: Option<&'a str>,
    /// The user name as presented (escaped and truncated when written).
    pub user: Option<&'a str>,
    /// A failed login's user name as sent (no principal): escaped and
    /// truncated like every field, never the password.
    pub attempted_user: Option<&'a str>,
    pub role: Option<&'a str>,
    /// `"file"` or `"cluster"`.
    pub identity_source: Option<&'a str>,
    pub method: &'a str,
    /// The canonical path the decision was made on.
    pub path: Option<&'a str>,
    /// The request target exactly as received (invalid UTF-8 becomes U+FFFD).
    pub raw_path: &'a [u8],
    /// The matched route template, e.g. `/v1/bdbs/{uid}`.
    pub route: Option<&'a str>,
    pub api_version: Option<&'a str>,
    pub decision: Decision,
    /// The rule that decided (policy rule id, or the reject code).
    pub rule: Option<&'a str>,
    /// The permission the route requires.
    pub permission: Option<&'a str>,
    pub rate_limit: RateLimit,
    /// The node URL the request went to (the last one tried).
    pub upstream: Option<&'a str>,
    /// Failed attempts, in order: (node URL, why), e.g. a node that
    /// refused the connection before the request was retried on another.
    pub upstream_tried: &'a [(std::sync::Arc<str>, &'static str)],
    pub upstream_status: Option<u16>,
    /// The status the client received.
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// False when the response body was cut short.
    pub complete: bool,
    pub duration: Duration,
    pub upstream_duration: Option<Duration>,
    /// SHA-256 of the request body (`[audit] body_digest = true`, writes only).
    pub body_sha256: Option<&'a [u8; 32]>,
}

impl Default for AuditRecord<'_> {
    fn default() -> Self {
        AuditRecord {
            time: UNIX_EPOCH,
            request_id: "",
            client_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            client_port: 0,
            tls_version: "",
            sni: None,
            client_cert: None,
            client_cert_sha256: None,
            user: None,
            attempted_user: None,
            role: None,
            identity_source: None,
            method: "",
            path: None,
            raw_path: b"",
            route: None,
            api_version: None,
            decision: Decision::Deny,
            rule: None,
            permission: None,
            rate_limit: RateLimit::NotChecked,
            upstream: None,
            upstream_tried: &[],
            upstream_status: None,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            complete: true,
            duration: Duration::ZERO,
            upstream_duration: None,
            body_sha256: None,
        }
    }
}

impl AuditRecord<'_> {
    /// Appends the record's fields and the closing brace:
    /// `"time":"...",...,"duration_us":N}`. The writer puts
    /// `{"seq":N,"prev":"...",` in front. Never fails, never panics.
    pub fn encode_fields(&self, out: &mut Vec<u8>) {
        self.encode_decision(out);
        self.encode_outcome(out);
    }

    /// The intent record of `required = true` (written before the request
    /// is forwarded): who, what, the decision and the node, then
    /// `"phase":"intent"`. Its outcome follows in the ordinary record with
    /// the same `id`.
    pub fn encode_intent(&self, out: &mut Vec<u8>) {
        self.encode_decision(out);
        out.extend_from_slice(b",\"phase\":\"intent\"}");
    }

    fn encode_decision(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"time\":\"");
        write_rfc3339_micros(self.time, out);
        out.extend_from_slice(b"\",\"id\":");
        write_str(out, self.request_id);
        out.extend_from_slice(b",\"client_ip\":\"");
        write_ip(out, self.client_ip);
        out.extend_from_slice(b"\",\"client_port\":");
        write_u64(out, u64::from(self.client_port));
        out.extend_from_slice(b",\"tls\":");
        write_str(out, self.tls_version);
        opt_str(out, "sni", self.sni);
        opt_str(out, "client_cert", self.client_cert);
        opt_str(out, "client_cert_sha256", self.client_cert_sha256);
        opt_str(out, "user", self.user);
        opt_str(out, "attempted_user", self.attempted_user);
        opt_str(out, "role", self.role);
        opt_str(out, "identity_source", self.identity_source);
        out.extend_from_slice(b",\"method\":");
        write_str(out, self.method);
        opt_str(out, "path", self.path);
        out.extend_from_slice(b",\"raw_path\":");
        write_bytes_lossy(out, self.raw_path);
        opt_str(out, "route", self.route);
        opt_str(out, "api_version", self.api_version);
        out.extend_from_slice(b",\"decision\":\"");
        out.extend_from_slice(self.decision.as_str().as_bytes());
        out.push(b'"');
        opt_str(out, "rule", self.rule);
        opt_str(out, "permission", self.permission);
        match self.rate_limit {
            RateLimit::NotChecked => {}
            RateLimit::Pass => out.extend_from_slice(b",\"rate_limit\":\"pass\""),
            RateLimit::Limited(scope) => {
                out.extend_from_slice(b",\"rate_limit\":\"limited\",\"rate_limit_scope\":");
                write_str(out, scope);
            }
        }
        opt_str(out, "upstream", self.upstream);
    }

    fn encode_outcome(&self, out: &mut Vec<u8>) {
        // every node tried before the answer, and why (retries)
        if !self.upstream_tried.is_empty() {
            out.extend_from_slice(b",\"upstream_tried\":[");
            for (i, (node, why)) in self.upstream_tried.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"node\":");
                write_str(out, node);
                out.extend_from_slice(b",\"error\":");
                write_str(out, why);
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(s) = self.upstream_status {
            out.extend_from_slice(b",\"upstream_status\":");
            write_u64(out, u64::from(s));
        }
        out.extend_from_slice(b",\"status\":");
        write_u64(out, u64::from(self.status));
        out.extend_from_slice(b",\"bytes_in\":");
        write_u64(out, self.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        write_u64(out, self.bytes_out);
        out.extend_from_slice(if self.complete {
            b",\"complete\":true"
        } else {
            b",\"complete\":false"
        });
        if let Some(d) = self.body_sha256 {
            out.extend_from_slice(b",\"body_sha256\":\"");
            write_hex(out, d);
            out.push(b'"');
        }
        if let Some(d) = self.upstream_duration {
            out.extend_from_slice(b",\"upstream_duration_us\":");
            write_u64(out, micros(d));
        }
        out.extend_from_slice(b",\"duration_us\":");
        write_u64(out, micros(self.duration));
        out.push(b'}');
    }
}

fn opt_str(out: &mut Vec<u8>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        write_str(out, v);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// IPv4 by hand (the common case, and `fmt` is the slowest part of a
/// record otherwise); IPv6 through its `Display`, which is plain ASCII.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(*octet));
            }
        }
        IpAddr::V6(_) => out.extend_from_slice(IpText::new(ip).as_bytes()),
    }
}

/// An IP address rendered on the stack (at most 45 bytes for IPv6 with an
/// embedded IPv4), without allocating.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // Cannot overflow 48 bytes; on the impossible error the field is empty.
        let len = match write!(cursor, "{ip}") {
            Ok(()) => cursor.position() as usize,
            Err(_) => 0,
        };
        IpText { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_full_record_as_valid_json() {
        let digest = [7u8; 32];
        let rec = AuditRecord {
            request_id: "r-1",
            client_ip: "2001:db8::1".parse().unwrap(),
            client_port: 443,
            tls_version: "TLSv1.3",
            sni: Some("gw.example"),
            user: Some("alice"),
            role: Some("db_viewer"),
            identity_source: Some("file"),
            method: "PUT",
            path: Some("/v1/bdbs/1"),
            raw_path: b"/v1//bdbs/1",
            route: Some("/v1/bdbs/{uid}"),
            api_version: Some("v1"),
            decision: Decision::DryRunDeny,
            rule: Some("rbac"),
            permission: Some("update_bdb"),
            rate_limit: RateLimit::Limited("user"),
            upstream: Some("https://n1:9443"),
            upstream_status: Some(200),
            status: 200,
            bytes_in: 12,
            bytes_out: 34,
            complete: false,
            duration: Duration::from_micros(1500),
            upstream_duration: Some(Duration::from_micros(900)),
            body_sha256: Some(&digest),
            ..AuditRecord::default()
        };
        let mut out = b"{".to_vec();
        rec.encode_fields(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["client_ip"], "2001:db8::1");
        assert_eq!(v["decision"], "dry-run-deny");
        assert_eq!(v["rate_limit_scope"], "user");
        assert_eq!(v["upstream_status"], 200);
        assert_eq!(v["complete"], false);
        assert_eq!(v["duration_us"], 1500);
        assert_eq!(v["upstream_duration_us"], 900);
        assert_eq!(v["body_sha256"], "07".repeat(32));
    }

    #[test]
    fn minimal_record_omits_absent_fields() {
        let mut out = b"{".to_vec();
        AuditRecord::default().encode_fields(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("user").is_none());
        assert!(v.get("rate_limit").is_none());
        assert_eq!(v["decision"], "deny");
    }
}
