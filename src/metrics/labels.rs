//! The fixed label vocabularies of the metrics: auth outcomes, upstream
//! error kinds, methods and status classes. Each maps to a bounded set of
//! label values (and an index for the pre-resolved handle tables), so no
//! caller-supplied string ever becomes a label.

/// How an authentication attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    /// Wrong or unknown credentials.
    Failure,
    /// No usable credentials at all.
    Missing,
    /// Refused by the failed-login throttle.
    Throttled,
    /// The identity source could not be asked.
    Unavailable,
}

impl AuthOutcome {
    /// How many outcomes there are (the metrics' slot table size).
    pub(super) const COUNT: usize = 5;

    /// A dense index below [`AuthOutcome::COUNT`].
    pub(super) fn index(self) -> usize {
        match self {
            AuthOutcome::Success => 0,
            AuthOutcome::Failure => 1,
            AuthOutcome::Missing => 2,
            AuthOutcome::Throttled => 3,
            AuthOutcome::Unavailable => 4,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Success => "success",
            AuthOutcome::Failure => "failure",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Throttled => "throttled",
            AuthOutcome::Unavailable => "unavailable",
        }
    }
}

/// Why a call to a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Refused or reset.
    Unreachable,
    /// No connection or answer in time.
    Timeout,
    /// Not valid HTTP.
    Protocol,
    /// The node's certificate failed verification.
    Tls,
}

impl UpstreamErrorKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Unreachable => "unreachable",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Tls => "tls",
        }
    }
}

pub(super) fn method_label(method: &str) -> (usize, &'static str) {
    match method {
        "GET" => (0, "GET"),
        "HEAD" => (1, "HEAD"),
        "POST" => (2, "POST"),
        "PUT" => (3, "PUT"),
        "PATCH" => (4, "PATCH"),
        "DELETE" => (5, "DELETE"),
        "OPTIONS" => (6, "OPTIONS"),
        _ => (7, "other"),
    }
}

pub(super) fn status_class(status: u16) -> (usize, &'static str) {
    match status {
        100..=199 => (0, "1xx"),
        200..=299 => (1, "2xx"),
        300..=399 => (2, "3xx"),
        400..=499 => (3, "4xx"),
        500..=599 => (4, "5xx"),
        _ => (5, "other"),
    }
}
