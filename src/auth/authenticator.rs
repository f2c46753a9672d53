//! [`Authenticator`]: the authentication stage the pipeline calls. The order
//! of checks is the point of this file:
//!
//! 1. parse the `Authorization` header (cheap, size-checked first);
//! 2. look the HMAC of the credentials up in the verified-credential cache,
//!    and accept a hit only if the user's entry is unchanged since (a valid
//!    user keeps working while someone else burns its failure budget);
//! 3. refuse **before** any hashing when the (IP, user), user or IP
//!    failure budget is spent (`throttle.rs`);
//! 4. verify once per credential even under concurrency (moka coalesces),
//!    on a blocking thread, under a bound on concurrent verifications;
//! 5. charge failures, and only failures, to the three budgets.
//!
//! The identity sources themselves (users file, cluster) are in `source.rs`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::basic::{parse_basic, Credentials};
use super::budgets::{SharedFailures, Throttle};
use super::cache::{build_cache, same_user, CredentialKey, Keyer, Stamp, Verified, VerifiedCache};
use super::cluster::ClusterClient;
use super::config::{AuthSettings, SourceSettings};
use super::memo::AuthMemo;
use super::source::{ClusterSource, FileSource, Source, VerifyError};
use super::stats::{AuthStats, FailureReason};
use super::throttle::retry_after_secs;
use crate::context::{IdentitySource, Principal};
use crate::error::Reject;

/// The authentication stage. Cheap to clone (one `Arc`); `Send + Sync`.
#[derive(Clone)]
pub struct Authenticator {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Unique per authenticator: a connection's memo made by another
    /// (before a reload) never matches.
    id: u64,
    ttl: Duration,
    pub(super) source: Source,
    pub(super) cache: VerifiedCache,
    /// Shared with the authenticator a reload replaces, so its cache keys
    /// still match.
    keyer: Arc<Keyer>,
    throttle: Throttle,
    pub(super) verify_slots: Arc<Semaphore>,
    pub(super) stats: AuthStats,
    forward: Option<HeaderValue>,
}

/// The authenticator cannot be built from these settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.source = \"cluster\" needs the cluster node URLs and TLS settings")]
    NoClusterClient,
}

/// Why a verification gives no principal now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotCurrent {
    /// The user's entry changed (or went) since it was verified.
    Stale,
    /// The entry is current but maps to no role.
    NoRole,
    /// The user is bound to a client certificate this connection lacks.
    CertMismatch,
}

impl Authenticator {
    /// Builds the stage. `cluster` is required for `source = "cluster"` and
    /// ignored otherwise.
    pub fn new(
        settings: AuthSettings,
        cluster: Option<ClusterClient>,
    ) -> Result<Authenticator, SetupError> {
        Self::build(settings, cluster, None, None)
    }

    /// Builds the stage with a shared failure store (`[rate_limit] backend
    /// = "redis"`) and, on reload, the authenticator it replaces: its
    /// failure counts carry over while the budgets are unchanged.
    pub fn build(
        settings: AuthSettings,
        cluster: Option<ClusterClient>,
        shared: Option<Arc<dyn SharedFailures>>,
        previous: Option<&Authenticator>,
    ) -> Result<Authenticator, SetupError> {
        for w in settings.warnings() {
            tracing::warn!(key = %w.key, problem = %w.problem, "users file");
        }
        let source = match settings.source {
            SourceSettings::File { path, table } => {
                Source::File(FileSource::new(path, table, settings.role_check))
            }
            SourceSettings::Cluster(cs) => {
                let client = cluster.ok_or(SetupError::NoClusterClient)?;
                Source::Cluster(Box::new(ClusterSource::new(client, cs)))
            }
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let (cache, keyer) = match previous
            .and_then(|p| warm_cache(p, &source, settings.cache_ttl, settings.cache_capacity))
        {
            Some(kept) => kept,
            None => (
                build_cache(settings.cache_ttl, settings.cache_capacity),
                Arc::new(Keyer::random()),
            ),
        };
        let inner = Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ttl: settings.cache_ttl,
            source,
            cache,
            keyer,
            throttle: Throttle::new(settings.failed, shared, previous.map(|p| &p.inner.throttle)),
            verify_slots: Arc::new(Semaphore::new(settings.max_concurrent_verifications.max(1))),
            // the exported counters continue across reloads
            stats: previous.map_or_else(AuthStats::default, |p| {
                AuthStats::continuing(&p.inner.stats)
            }),
            forward: settings.forward.map(|acc| acc.authorization()),
        };
        Ok(Authenticator {
            inner: Arc::new(inner),
        })
    }

    /// Authenticates a request from its headers and the socket peer's IP
    /// (never an address taken from headers). `memo` is the connection's:
    /// a request repeating the last verified `Authorization` value is
    /// answered from it (still checked against the current user table).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client_ip: IpAddr,
        memo: &AuthMemo,
    ) -> Result<Principal, Reject> {
        let inner = &*self.inner;
        if let Some(p) = self.recall(headers, memo) {
            inner.stats.hit();
            inner.stats.success();
            return Ok(p);
        }
        let creds = parse_basic(headers).inspect_err(|r| {
            let reason = match headers.contains_key(AUTHORIZATION) {
                false => FailureReason::Missing,
                true => FailureReason::of_parse(r),
            };
            inner.stats.failure(reason);
        })?;
        let key = inner.keyer.credential_key(creds.user(), creds.password());

        let mut stale = false;
        if let Some(hit) = inner.cache.get(&key).await {
            match self.principal_if_current(&hit, creds.user(), memo) {
                Ok(p) => {
                    self.remember(headers, memo, hit);
                    inner.stats.hit();
                    inner.stats.success();
                    return Ok(p);
                }
                // Valid credentials on the wrong connection: the entry stays.
                Err(NotCurrent::CertMismatch) => return Err(self.cert_mismatch()),
                Err(_) => stale = true,
            }
        }
        // Boxed: the miss path's state (moka's insert machinery, the
        // verification) would otherwise be part of every request's future
        // and be copied with it, hit or miss.
        Box::pin(self.authenticate_miss(headers, memo, creds, key, client_ip, stale)).await
    }

    /// The principal remembered by this connection for exactly this
    /// `Authorization` value, if it is still current.
    fn recall(&self, headers: &HeaderMap, memo: &AuthMemo) -> Option<Principal> {
        let inner = &*self.inner;
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let verified = memo.recall(inner.id, || inner.keyer.header_tag(value.as_bytes()))?;
        let p = self
            .principal_if_current(&verified, &verified.user, memo)
            .ok();
        if p.is_none() {
            memo.forget();
        }
        p
    }

    /// Lets the connection remember a current verification for its
    /// (single, already parsed) `Authorization` value.
    fn remember(&self, headers: &HeaderMap, memo: &AuthMemo, verified: Arc<Verified>) {
        let inner = &*self.inner;
        let (Some(value), Some(expires)) = (
            headers.get(AUTHORIZATION),
            verified.at.checked_add(inner.ttl),
        ) else {
            return;
        };
        let tag = inner.keyer.header_tag(value.as_bytes());
        memo.remember(inner.id, tag, verified, expires);
    }

    /// The cache had nothing current for these credentials: throttle
    /// checks, one (coalesced) verification, failure accounting.
    async fn authenticate_miss(
        &self,
        headers: &HeaderMap,
        memo: &AuthMemo,
        creds: Credentials,
        key: CredentialKey,
        client_ip: IpAddr,
        stale: bool,
    ) -> Result<Principal, Reject> {
        let inner = &*self.inner;
        if stale {
            inner.cache.invalidate(&key).await;
        }
        inner.stats.miss();
        // A user bound to a client certificate is refused on a connection
        // without it before any hashing: no password oracle for whoever
        // lacks the certificate.
        if let Source::File(fs) = &inner.source {
            let table = fs.table();
            let bound = table.get(creds.user()).and_then(|e| e.client_cert.clone());
            if bound.is_some_and(|b| !cert_matches(memo, &b)) {
                return Err(self.cert_mismatch());
            }
        }

        let attempt = inner
            .throttle
            .attempt(&inner.keyer, client_ip, creds.user());
        if let Err(wait) = inner.throttle.check(&attempt, &inner.stats).await {
            inner.stats.failure(FailureReason::Throttled);
            return Err(Reject::AuthThrottled {
                retry_after_secs: retry_after_secs(wait),
            });
        }

        // A reload can swap the table while a verification runs (or while
        // we wait on someone else's): then verify once more, against the
        // new table, rather than refuse credentials that may be fine. A
        // current entry without a role is refused at once.
        let mut retried = false;
        let failure = loop {
            let outcome = inner
                .cache
                .entry(key)
                .or_try_insert_with(self.verify(&creds))
                .await;
            match outcome {
                Ok(entry) => {
                    if !entry.is_fresh() {
                        inner.stats.coalesce();
                    }
                    let why = match self.principal_if_current(entry.value(), creds.user(), memo) {
                        Ok(p) => {
                            self.remember(headers, memo, entry.into_value());
                            inner.stats.success();
                            return Ok(p);
                        }
                        Err(NotCurrent::CertMismatch) => return Err(self.cert_mismatch()),
                        Err(why) => why,
                    };
                    inner.cache.invalidate(&key).await;
                    if retried || why == NotCurrent::NoRole {
                        break VerifyError::NoRole;
                    }
                    retried = true;
                }
                Err(e) => break (*e).clone(),
            }
        };
        let (reason, reject) = match failure {
            VerifyError::Bad => {
                inner.throttle.charge(&attempt, &inner.stats).await;
                (FailureReason::BadCredentials, Reject::Unauthorized)
            }
            VerifyError::NoRole => (FailureReason::NoRole, Reject::Unauthorized),
            VerifyError::Unavailable => (FailureReason::Unavailable, Reject::AuthUnavailable),
            VerifyError::Internal => (FailureReason::Unavailable, Reject::Internal),
        };
        inner.stats.failure(reason);
        tracing::debug!(reason = reason.as_str(), "authentication failed");
        Err(reject)
    }

    /// Verifies credentials against the source (cache miss path).
    async fn verify(&self, creds: &Credentials) -> Result<Arc<Verified>, VerifyError> {
        match &self.inner.source {
            Source::File(fs) => fs.verify(&self.inner, creds).await,
            Source::Cluster(cs) => cs.verify(self, creds).await,
        }
    }

    /// Counts and returns the refusal of a certificate-bound user.
    fn cert_mismatch(&self) -> Reject {
        self.inner.stats.failure(FailureReason::CertMismatch);
        tracing::debug!("credentials of a certificate-bound user without its certificate");
        Reject::ClientCertMismatch
    }

    /// The principal for a verification, if the user's entry in the current
    /// table still matches what was verified and its certificate binding,
    /// if any, matches the connection's certificate.
    fn principal_if_current(
        &self,
        v: &Verified,
        user: &str,
        memo: &AuthMemo,
    ) -> Result<Principal, NotCurrent> {
        if !same_user(&v.user, user) {
            return Err(NotCurrent::Stale);
        }
        match (&self.inner.source, &v.stamp) {
            (Source::File(fs), Stamp::File(hash)) => {
                let table = fs.table();
                let entry = table.get(user).ok_or(NotCurrent::Stale)?;
                if entry.hash.as_str() != &**hash {
                    return Err(NotCurrent::Stale);
                }
                if let Some(binding) = &entry.client_cert {
                    if !cert_matches(memo, binding) {
                        return Err(NotCurrent::CertMismatch);
                    }
                }
                Ok(Principal {
                    user: entry.name.clone(),
                    uid: entry.uid,
                    role: entry.role.clone(),
                    source: IdentitySource::File,
                })
            }
            (
                Source::Cluster(cs),
                Stamp::Cluster {
                    uid,
                    password_issue_date,
                },
            ) => {
                let table = cs.table().ok_or(NotCurrent::Stale)?;
                let cu = table.get(user).ok_or(NotCurrent::Stale)?;
                if cu.uid != *uid || cu.password_issue_date != *password_issue_date {
                    return Err(NotCurrent::Stale);
                }
                Ok(Principal {
                    user: cu.login.clone(),
                    uid: Some(cu.uid),
                    role: cu.role.clone().ok_or(NotCurrent::NoRole)?,
                    source: IdentitySource::Cluster,
                })
            }
            _ => Err(NotCurrent::Stale),
        }
    }

    /// The stage's counters.
    pub fn stats(&self) -> &AuthStats {
        &self.inner.stats
    }

    /// The `Authorization` the upstream must receive instead of the
    /// client's (`forward = "service"`), or `None` to pass the client's on.
    pub fn upstream_authorization(&self) -> Option<HeaderValue> {
        self.inner.forward.clone()
    }

    /// The role and uid of a user, for `regate explain --user`.
    pub fn role_of(&self, user: &str) -> Option<(Arc<str>, Option<u64>)> {
        match &self.inner.source {
            Source::File(fs) => fs.table().get(user).map(|e| (e.role.clone(), e.uid)),
            Source::Cluster(cs) => {
                let table = cs.table()?;
                let cu = table.get(user)?;
                cu.role.clone().map(|r| (r, Some(cu.uid)))
            }
        }
    }

    /// Which identity source this authenticator uses.
    pub fn identity_source(&self) -> IdentitySource {
        match self.inner.source {
            Source::File(_) => IdentitySource::File,
            Source::Cluster(_) => IdentitySource::Cluster,
        }
    }
}

/// True when the connection's verified client certificate names `binding`.
fn cert_matches(memo: &AuthMemo, binding: &str) -> bool {
    memo.client_cert().is_some_and(|c| c.matches(binding))
}

/// The cache (and keyer) of the authenticator a reload replaces, when both
/// use the users file with the same TTL and capacity: verifications of
/// users whose entry (hash, role, uid, certificate binding) is unchanged
/// stay warm; those of changed and removed users are dropped now. (Hits
/// are re-checked against the current table anyway; this frees them.)
fn warm_cache(
    previous: &Authenticator,
    source: &Source,
    ttl: Duration,
    capacity: u64,
) -> Option<(VerifiedCache, Arc<Keyer>)> {
    let old = &previous.inner;
    let (Source::File(old_fs), Source::File(new_fs)) = (&old.source, source) else {
        return None;
    };
    if old.ttl != ttl || old.cache.policy().max_capacity() != Some(capacity) {
        return None;
    }
    let changed: std::collections::HashSet<Arc<str>> = old_fs
        .table()
        .changed_in(&new_fs.table())
        .into_iter()
        .collect();
    if !changed.is_empty() {
        let _ = old
            .cache
            .invalidate_entries_if(move |_, v| changed.contains(&v.user));
    }
    Some((old.cache.clone(), old.keyer.clone()))
}
