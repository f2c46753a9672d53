//! The verified-credential cache. Keys are HMAC-SHA256 under a random
//! per-process key of `len(user) ‖ user ‖ 0x00 ‖ password`, so neither the
//! plaintext nor an unkeyed fast hash of a password is kept in memory. Only
//! successful verifications are stored, each with a stamp of what it was
//! checked against (the user's hash text, or the cluster's
//! `password_issue_date`), so a changed or removed user stops matching at
//! once even before the entry is evicted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use moka::future::Cache;
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// A cache key: HMAC of the credentials.
pub type CredentialKey = [u8; 32];
/// A limiter key for a user name: a truncated HMAC of the name, so spoofed
/// names of any length cost the same fixed memory.
pub type NameKey = [u8; 16];

/// What a verification was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// The users-file hash text of that user at verification time.
    File(Arc<str>),
    /// The cluster user's uid and `password_issue_date` at verification time.
    Cluster {
        uid: u64,
        password_issue_date: Option<Arc<str>>,
    },
}

/// A successful verification.
#[derive(Debug)]
pub struct Verified {
    /// Exact user name verified (checked again on every hit).
    pub user: Arc<str>,
    pub stamp: Stamp,
    /// When the verification finished (before the cache insert, so a TTL
    /// counted from here never outlives the cache entry).
    pub at: Instant,
}

/// The cache type.
pub type VerifiedCache = Cache<CredentialKey, Arc<Verified>>;

/// Builds the cache with its TTL and capacity.
pub fn build_cache(ttl: Duration, capacity: u64) -> VerifiedCache {
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(ttl)
        .support_invalidation_closures()
        .build()
}

/// Derives cache and limiter keys under a per-process secret.
pub struct Keyer {
    /// HMAC keyed once with the secret; cloned per key (saves the two
    /// key-schedule compressions on every request).
    keyed: Hmac<Sha256>,
}

impl Keyer {
    /// A keyer with a fresh random secret.
    pub fn random() -> Keyer {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        // HMAC accepts keys of any length; this cannot fail for 32 bytes.
        let keyed = match Hmac::<Sha256>::new_from_slice(&secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Keyer { keyed }
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// The cache key of a user name and password.
    pub fn credential_key(&self, user: &str, password: &str) -> CredentialKey {
        let mut mac = self.mac();
        mac.update(b"cred");
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The per-connection memo tag of a raw `Authorization` value
    /// ([`AuthMemo`](super::memo::AuthMemo)).
    pub fn header_tag(&self, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(b"hdr\0");
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The failed-login limiter key of a (client key, user name) pair.
    pub fn ip_user_key(&self, ip: std::net::IpAddr, user: &str) -> NameKey {
        let mut mac = self.mac();
        mac.update(b"ipus");
        match ip {
            std::net::IpAddr::V4(v4) => {
                mac.update(&[4]);
                mac.update(&v4.octets());
            }
            std::net::IpAddr::V6(v6) => {
                mac.update(&[6]);
                mac.update(&v6.octets());
            }
        }
        mac.update(user.as_bytes());
        truncate(mac)
    }

    /// The failed-login limiter key of a user name.
    pub fn name_key(&self, user: &str) -> NameKey {
        let mut mac = self.mac();
        mac.update(b"name");
        mac.update(user.as_bytes());
        truncate(mac)
    }
}

fn truncate(mac: Hmac<Sha256>) -> NameKey {
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Constant-time equality of two user names (exact bytes).
pub fn same_user(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_user_and_password() {
        let k = Keyer::random();
        assert_ne!(k.credential_key("a\0b", "c"), k.credential_key("a", "b\0c"));
        assert_ne!(k.credential_key("ab", "c"), k.credential_key("a", "bc"));
        assert_eq!(k.credential_key("a", "b"), k.credential_key("a", "b"));
        let other = Keyer::random();
        assert_ne!(k.credential_key("a", "b"), other.credential_key("a", "b"));
        assert_ne!(k.name_key("admin"), k.name_key("Admin"));
        assert_ne!(k.header_tag(b"Basic YTpi"), k.header_tag(b"Basic YTpj"));
        assert_ne!(k.header_tag(b"Basic YTpi"), other.header_tag(b"Basic YTpi"));
    }

    #[test]
    fn user_comparison_is_exact() {
        assert!(same_user("admin", "admin"));
        assert!(!same_user("admin", "ａｄｍｉｎ"));
        assert!(!same_user("é", "e\u{301}"));
    }
}
