//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs; not
//! an API). Each wraps a step the gateway keeps private, exactly as the
//! gateway runs it, so a target exercises the real code rather than a copy.
//! The public parsers (`upstream::framing`, `policy::canonical`,
//! `auth::basic`, `config`) are fuzzed through their own functions.

/// What the HTTP/1.1 fast path does with the bytes read so far.
#[derive(Debug)]
pub enum FastPath<R> {
    /// The head is not complete yet: read more.
    NeedMore,
    /// Not the fast path's to serve: hyper takes the connection, replaying
    /// the bytes.
    Handover,
    /// Served here: the request the pipeline receives, from a head of
    /// `head_len` bytes.
    Serve { head_len: usize, req: R },
}

/// The fast path's decision on `buf` (`server::h1`: `parse` then
/// `build_request`) with the given header-line and head-size limits; the
/// served request without its (always empty) body.
pub fn fast_path(buf: &[u8], max_headers: usize, max_head: usize) -> FastPath<http::Request<()>> {
    match crate::server::h1::fuzz_decide(buf, max_headers, max_head) {
        FastPath::NeedMore => FastPath::NeedMore,
        FastPath::Handover => FastPath::Handover,
        FastPath::Serve { head_len, req } => FastPath::Serve {
            head_len,
            req: req.map(|_| ()),
        },
    }
}
