//! Counters of the authentication stage, plain atomics so tests, logs and
//! the Prometheus exporter can read them without locks. Labels are a closed
//! set ([`FailureReason`]): never user names, IPs or credentials. The
//! counters the metrics export (cache hits and misses, identity refreshes)
//! outlive a config reload: the new authenticator continues them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Reject;

/// Why an authentication attempt did not produce a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// No `Authorization` header.
    Missing,
    /// Malformed header: scheme, base64, UTF-8, colon, empty parts.
    Malformed,
    /// Two `Authorization` headers.
    Duplicate,
    /// The header exceeded its size limit.
    TooLarge,
    /// Wrong password or unknown user.
    BadCredentials,
    /// Refused before verification by the failed-login limiter.
    Throttled,
    /// The identity source could not be asked.
    Unavailable,
    /// Verified, but the user has no known role (cluster source).
    NoRole,
    /// A certificate-bound user on a connection without that certificate.
    CertMismatch,
}

impl FailureReason {
    /// Every reason, for exporters.
    pub const ALL: [FailureReason; 9] = [
        FailureReason::Missing,
        FailureReason::Malformed,
        FailureReason::Duplicate,
        FailureReason::TooLarge,
        FailureReason::BadCredentials,
        FailureReason::Throttled,
        FailureReason::Unavailable,
        FailureReason::NoRole,
        FailureReason::CertMismatch,
    ];

    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Missing => "missing",
            FailureReason::Malformed => "malformed",
            FailureReason::Duplicate => "duplicate",
            FailureReason::TooLarge => "too_large",
            FailureReason::BadCredentials => "bad_credentials",
            FailureReason::Throttled => "throttled",
            FailureReason::Unavailable => "unavailable",
            FailureReason::NoRole => "no_role",
            FailureReason::CertMismatch => "client_cert_mismatch",
        }
    }

    /// The reason for a parse rejection.
    pub(crate) fn of_parse(reject: &Reject) -> FailureReason {
        match reject {
            Reject::HeaderTooLarge => FailureReason::TooLarge,
            Reject::BadRequest { .. } => FailureReason::Duplicate,
            _ => FailureReason::Malformed,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one [`Authenticator`](super::Authenticator); the cache and
/// refresh counters are shared with the authenticators it replaces and
/// that replace it (see [`AuthStats::continuing`]).
#[derive(Debug, Default)]
pub struct AuthStats {
    verifications: AtomicU64,
    coalesced: AtomicU64,
    successes: AtomicU64,
    failures: [AtomicU64; 9],
    shared_fallbacks: AtomicU64,
    lasting: Arc<Lasting>,
}

/// The counters that survive reloads (monotonic for the exporter).
#[derive(Debug, Default)]
struct Lasting {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    syncs: AtomicU64,
    sync_failures: AtomicU64,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl AuthStats {
    /// Fresh counters for an authenticator replacing the one `previous`
    /// belongs to (reload): cache hits and misses, users-file reloads and
    /// cluster syncs continue from `previous`; the rest start at zero.
    pub(crate) fn continuing(previous: &AuthStats) -> AuthStats {
        AuthStats {
            lasting: previous.lasting.clone(),
            ..AuthStats::default()
        }
    }

    /// Password hash verifications (or cluster authorize calls) performed.
    pub fn verifications(&self) -> u64 {
        get(&self.verifications)
    }
    /// Requests answered from the verified-credential cache.
    pub fn cache_hits(&self) -> u64 {
        get(&self.lasting.cache_hits)
    }
    /// Requests that found no valid cached verification.
    pub fn cache_misses(&self) -> u64 {
        get(&self.lasting.cache_misses)
    }
    /// Misses that waited for another request's verification instead of
    /// running their own.
    pub fn coalesced(&self) -> u64 {
        get(&self.coalesced)
    }
    /// Requests that produced a principal.
    pub fn successes(&self) -> u64 {
        get(&self.successes)
    }
    /// Failed requests for one reason.
    pub fn failures(&self, reason: FailureReason) -> u64 {
        get(&self.failures[reason.index()])
    }
    /// Users-file reloads that took effect.
    pub fn reloads(&self) -> u64 {
        get(&self.lasting.reloads)
    }
    /// Users-file reloads rejected (the old table stayed).
    pub fn reload_failures(&self) -> u64 {
        get(&self.lasting.reload_failures)
    }
    /// Successful cluster table syncs.
    pub fn syncs(&self) -> u64 {
        get(&self.lasting.syncs)
    }
    /// Failed cluster table syncs.
    pub fn sync_failures(&self) -> u64 {
        get(&self.lasting.sync_failures)
    }

    /// Failed-login checks or charges the shared store (Redis) did not
    /// answer, decided by the local budgets instead.
    pub fn shared_fallbacks(&self) -> u64 {
        get(&self.shared_fallbacks)
    }

    pub(crate) fn shared_fallback(&self) {
        bump(&self.shared_fallbacks)
    }
    pub(crate) fn verification(&self) {
        bump(&self.verifications)
    }
    pub(crate) fn hit(&self) {
        bump(&self.lasting.cache_hits)
    }
    pub(crate) fn miss(&self) {
        bump(&self.lasting.cache_misses)
    }
    pub(crate) fn coalesce(&self) {
        bump(&self.coalesced)
    }
    pub(crate) fn success(&self) {
        bump(&self.successes)
    }
    pub(crate) fn failure(&self, reason: FailureReason) {
        bump(&self.failures[reason.index()])
    }
    pub(crate) fn reload(&self, ok: bool) {
        let l = &self.lasting;
        bump(if ok { &l.reloads } else { &l.reload_failures })
    }
    pub(crate) fn sync(&self, ok: bool) {
        bump(if ok {
            &self.lasting.syncs
        } else {
            &self.lasting.sync_failures
        })
    }
}
