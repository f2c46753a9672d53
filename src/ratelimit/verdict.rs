//! The outcomes of a rate-limit check and their header rendering:
//! [`Verdict`] (allowed; `RateLimit-*` headers when `headers_on_success`),
//! [`Limited`] (429 through [`Reject::RateLimited`], plus `RateLimit-*`)
//! and [`Denied`] (what the async, possibly shared, checks return, adding
//! "the shared store is down and `fail_closed` is set"). The headers follow
//! the IETF `RateLimit` header draft in its three-header form; values are
//! whole numbers the gateway computed, never client input.

use std::time::Duration;

use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::error::Reject;

/// `RateLimit-Limit`: the burst of the most restrictive limit.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left before that limit denies.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until that limit is full again (or, on a
/// 429, until the next request can pass).
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds, rounded up (a client told "0" would retry at once).
pub(crate) fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// An allowed request: the state of the most restrictive limit it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Burst of the most restrictive limit (0 when nothing was checked).
    pub limit: u32,
    /// Tokens left in it after this request.
    pub remaining: u32,
    /// Seconds until it is full again.
    pub reset_secs: u64,
    /// Name of that limit (`"user"`, `"write"`, `"global"`, ...).
    pub scope: &'static str,
    /// Copied from `headers_on_success`.
    emit: bool,
}

impl Verdict {
    /// Nothing checked (limiting disabled): no headers.
    pub(crate) fn unlimited() -> Self {
        Verdict {
            limit: 0,
            remaining: 0,
            reset_secs: 0,
            scope: "none",
            emit: false,
        }
    }

    pub(crate) fn new(scope: &'static str, limit: u32, remaining: u32, reset: Duration) -> Self {
        Verdict {
            limit,
            remaining,
            reset_secs: secs_ceil(reset),
            scope,
            emit: false,
        }
    }

    pub(crate) fn emitting(mut self, emit: bool) -> Self {
        self.emit = emit && self.limit > 0;
        self
    }

    /// The tighter of two verdicts: fewer tokens left, then later reset.
    pub(crate) fn tighter(self, other: Verdict) -> Verdict {
        if (other.remaining, std::cmp::Reverse(other.reset_secs))
            < (self.remaining, std::cmp::Reverse(self.reset_secs))
        {
            other
        } else {
            self
        }
    }

    /// Adds `RateLimit-Limit/Remaining/Reset` to a successful response
    /// when `headers_on_success = true`; otherwise does nothing.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        if self.emit {
            put(headers, self.limit, self.remaining, self.reset_secs);
        }
    }
}

fn put(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: u64) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
}

/// A request a limit refused: answer 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which limit: `"ip"`, `"user"`, `"read"`, `"write"`, `"destructive"`, `"global"`.
    pub scope: &'static str,
    /// Burst of that limit.
    pub limit: u32,
    /// Seconds until a request would pass (at least 1).
    pub retry_after_secs: u64,
}

impl Limited {
    /// The 429 the pipeline renders through `Reject` (body + `Retry-After`).
    pub fn reject(&self) -> Reject {
        Reject::RateLimited {
            scope: self.scope,
            retry_after_secs: self.retry_after_secs,
        }
    }

    /// `RateLimit-*` (remaining 0) and `Retry-After` for the 429 response;
    /// call after `Reject::to_response` (setting `Retry-After` again is
    /// harmless: same value).
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        put(headers, self.limit, 0, self.retry_after_secs);
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_secs),
        );
    }
}

/// Why an async (possibly shared) check refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Over a limit: 429, see [`Limited`].
    Limited(Limited),
    /// `backend = "redis"`, `fail_closed = true` and Redis did not answer
    /// within `redis_timeout`: the pipeline answers 503 (no `Retry-After`
    /// promise can be made). `Reject` has no variant for this yet: proposed
    /// `Reject::RateLimitUnavailable` (503, "rate_limit_unavailable").
    Unavailable,
}

impl From<Limited> for Denied {
    fn from(l: Limited) -> Self {
        Denied::Limited(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_headers() {
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_secs(2)), 2);
        let v = Verdict::new("user", 40, 39, Duration::from_millis(50));
        let mut h = HeaderMap::new();
        v.apply_headers(&mut h);
        assert!(h.is_empty(), "headers_on_success = false by default");
        v.emitting(true).apply_headers(&mut h);
        assert_eq!(h[RATELIMIT_LIMIT], "40");
        assert_eq!(h[RATELIMIT_REMAINING], "39");
        assert_eq!(h[RATELIMIT_RESET], "1");
        let l = Limited {
            scope: "write",
            limit: 10,
            retry_after_secs: 3,
        };
        let mut resp = l.reject().to_response();
        assert_eq!(resp.status(), 429);
        l.apply_headers(resp.headers_mut());
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
        assert_eq!(resp.headers()[RATELIMIT_REMAINING], "0");
        assert_eq!(resp.headers()[RATELIMIT_RESET], "3");
    }

    #[test]
    fn tighter_prefers_fewer_remaining() {
        let a = Verdict::new("user", 40, 10, Duration::from_secs(1));
        let b = Verdict::new("write", 10, 2, Duration::from_secs(1));
        assert_eq!(a.tighter(b).scope, "write");
        assert_eq!(b.tighter(a).scope, "write");
    }
}
