//! What each simulated node received: one [`RecordedRequest`] per request
//! head read, with the target and headers byte for byte and a digest of the
//! body. Tests assert on these ("nothing was forwarded", "the Authorization
//! was replaced"). The body itself is never kept beyond its first 4 KiB.

use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::head::Head;
use super::ids::hex;

/// How many leading body bytes a record keeps.
pub const BODY_PREFIX_LEN: usize = 4096;

/// One request as the node received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method as sent (case kept).
    pub method: String,
    /// The request-target exactly as received: path and query, or the whole
    /// absolute-form URI if that is what came.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0` (or whatever malformed text was sent).
    pub version: String,
    /// Every header line in order: name as sent (case kept), raw value
    /// with surrounding whitespace trimmed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes received (after chunked decoding).
    pub body_len: u64,
    /// SHA-256 of the body bytes received, lower-case hex.
    pub body_sha256: String,
    /// The first [`BODY_PREFIX_LEN`] body bytes.
    pub body_prefix: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub(crate) fn new(head: &Head, body: BodyTap) -> Self {
        RecordedRequest {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version.clone(),
            headers: head.headers.clone(),
            body_len: body.len,
            body_sha256: hex(&body.hasher.finalize()),
            body_prefix: body.prefix,
        }
    }
}

/// Digest of a body seen as it streams past; memory stays bounded.
pub(crate) struct BodyTap {
    hasher: Sha256,
    len: u64,
    prefix: Vec<u8>,
}

impl Default for BodyTap {
    fn default() -> Self {
        BodyTap {
            hasher: Sha256::new(),
            len: 0,
            prefix: Vec::new(),
        }
    }
}

impl BodyTap {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        let room = BODY_PREFIX_LEN.saturating_sub(self.prefix.len());
        self.prefix
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The first bytes, or all of them when the body was short.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }
}

/// A node's request log, shared by its connection tasks and its handle.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<RecordedRequest>>>);

impl Recorder {
    // A panicking test thread must not hide the log from the others.
    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, r: RecordedRequest) {
        self.lock().push(r);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_hashes_everything_and_keeps_a_prefix() {
        let mut tap = BodyTap::default();
        let data = vec![7u8; 10_000];
        tap.update(&data[..3000]);
        tap.update(&data[3000..]);
        assert_eq!(tap.len(), 10_000);
        assert_eq!(tap.prefix().len(), BODY_PREFIX_LEN);
        let head = Head::default();
        let rec = RecordedRequest::new(&head, tap);
        assert_eq!(rec.body_sha256, hex(&Sha256::digest(&data)));
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_ordered() {
        let head = Head {
            headers: vec![
                ("X-A".into(), b"1".to_vec()),
                ("host".into(), b"h".to_vec()),
                ("x-a".into(), b"2".to_vec()),
            ],
            ..Head::default()
        };
        let rec = RecordedRequest::new(&head, BodyTap::default());
        assert_eq!(rec.header("x-A"), Some(&b"1"[..]));
        assert_eq!(rec.header_all("X-a"), vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(rec.header("missing"), None);
    }
}
