//! [`AuthMemo`]: the last verification a connection used, so the next
//! request on the same connection with the same `Authorization` value skips
//! the Basic parse, the credential HMAC and the shared cache lookup.
//!
//! What it may and may not change, compared with the shared cache alone:
//! - it holds a keyed HMAC of the header value (never the value, never the
//!   password), like the shared cache's keys;
//! - it belongs to one authenticator (a reload that builds a new one makes
//!   every memo miss) and ends with its connection;
//! - it expires no later than the shared entry it came from: the TTL counts
//!   from the verification, which precedes the cache insert;
//! - every recall is re-checked against the current user table, exactly as
//!   a shared-cache hit is, so a changed or removed user stops matching at
//!   once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cache::Verified;
use crate::context::ClientCert;

/// A keyed HMAC of one `Authorization` header value.
pub type HeaderTag = [u8; 32];

/// The memo of one client connection. Cheap when empty; one uncontended
/// lock per request (HTTP/2 streams of a connection may race for it).
#[derive(Debug, Default)]
pub struct AuthMemo {
    slot: Mutex<Option<Entry>>,
    /// The client certificate verified in this connection's handshake:
    /// users-file `client_cert` bindings are checked against it.
    client_cert: Option<ClientCert>,
}

#[derive(Debug)]
struct Entry {
    /// The authenticator that verified it.
    owner: u64,
    tag: HeaderTag,
    verified: Arc<Verified>,
    expires: Instant,
}

impl AuthMemo {
    /// The memo of a connection that presented `client_cert` (or none).
    pub fn with_client_cert(client_cert: Option<ClientCert>) -> Self {
        AuthMemo {
            slot: Mutex::new(None),
            client_cert,
        }
    }

    /// The connection's verified client certificate.
    pub fn client_cert(&self) -> Option<&ClientCert> {
        self.client_cert.as_ref()
    }

    /// The remembered verification, if `owner` made it, it has not
    /// expired, and `tag` (computed only when needed) matches the header
    /// it was made for. An expired or foreign entry is dropped.
    pub(super) fn recall(
        &self,
        owner: u64,
        tag: impl FnOnce() -> HeaderTag,
    ) -> Option<Arc<Verified>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let entry = slot.as_ref()?;
        if entry.owner != owner || Instant::now() >= entry.expires {
            *slot = None;
            return None;
        }
        same_tag(&entry.tag, &tag()).then(|| entry.verified.clone())
    }

    /// Remembers a verification for the header with this tag, until
    /// `expires`.
    pub(super) fn remember(
        &self,
        owner: u64,
        tag: HeaderTag,
        verified: Arc<Verified>,
        expires: Instant,
    ) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(Entry {
            owner,
            tag,
            verified,
            expires,
        });
    }

    /// Forgets whatever is remembered (the user table changed under it).
    pub(super) fn forget(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = None;
    }

    /// True when something is remembered (tests).
    pub fn is_set(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// Compares two tags in constant time: four 64-bit words folded with XOR
/// and OR, one branch on the result (`subtle`'s byte loop cost more here).
fn same_tag(a: &HeaderTag, b: &HeaderTag) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_ne_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_ne_bytes(y.try_into().unwrap_or_default());
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cache::Stamp;
    use std::time::Duration;

    fn verified() -> Arc<Verified> {
        Arc::new(Verified {
            user: "admin".into(),
            stamp: Stamp::File("h".into()),
            at: Instant::now(),
        })
    }

    #[test]
    fn tags_compare_every_byte() {
        let a = [7u8; 32];
        assert!(same_tag(&a, &a));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert!(!same_tag(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn recalls_only_the_same_tag_owner_and_before_expiry() {
        let memo = AuthMemo::default();
        assert!(memo.recall(1, || [1; 32]).is_none());
        let later = Instant::now() + Duration::from_secs(60);
        memo.remember(1, [1; 32], verified(), later);
        assert!(memo.recall(1, || [1; 32]).is_some());
        assert!(memo.recall(1, || [2; 32]).is_none(), "other header");
        assert!(memo.is_set(), "a different header does not clear it");
        assert!(memo.recall(2, || [1; 32]).is_none(), "other authenticator");
        assert!(!memo.is_set(), "a foreign entry is dropped");

        memo.remember(1, [1; 32], verified(), Instant::now());
        assert!(memo.recall(1, || [1; 32]).is_none(), "expired");
        assert!(!memo.is_set());

        memo.remember(1, [1; 32], verified(), later);
        memo.forget();
        assert!(memo.recall(1, || [1; 32]).is_none());
    }
}
