//! The HTTP/1.1 fast path's head parser and hand-over decision
//! (`server::h1::parse` + `build_request`, as `serve` runs them).
//!
//! Input: byte 0 picks the limits (header lines 1..=64, head size),
//! byte 1 a split point; the rest is what the client sent. Checks:
//! - no panic, whatever the bytes;
//! - a served request is one the fast path may serve: HTTP/1.1, origin
//!   form, no CONNECT, no Content-Length / Transfer-Encoding / Expect /
//!   Upgrade, within both limits;
//! - the decision does not depend on how the bytes arrived: a prefix is
//!   "read more", or the same decision as the whole (a prefix handed over
//!   is handed over whole; a prefix served is the same request whole);
//! - what follows a complete head never changes how it is served.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regate::fuzzing::{fast_path, FastPath};

type Req = http::Request<()>;

fn same(a: &Req, b: &Req) -> bool {
    a.method() == b.method()
        && a.uri() == b.uri()
        && a.version() == b.version()
        && a.headers() == b.headers()
}

fuzz_target!(|data: &[u8]| {
    let [limits, split, bytes @ ..] = data else {
        return;
    };
    let max_headers = 1 + usize::from(limits & 63);
    let max_head = match limits >> 6 {
        0 => 64,
        1 => 512,
        2 => 4096,
        _ => 16384,
    };
    let whole = fast_path(bytes, max_headers, max_head);
    if let FastPath::Serve { head_len, req } = &whole {
        assert!(*head_len <= max_head && *head_len <= bytes.len());
        assert!(req.headers().len() <= max_headers);
        assert_eq!(req.version(), http::Version::HTTP_11);
        assert_ne!(req.method(), http::Method::CONNECT);
        assert!(req.uri().scheme().is_none() && req.uri().authority().is_none());
        assert!(req.uri().path().starts_with('/'));
        for name in ["content-length", "transfer-encoding", "expect", "upgrade"] {
            assert!(!req.headers().contains_key(name), "{name} on the fast path");
        }
        // the pipelined rest never changes the first request
        let head = fast_path(&bytes[..*head_len], max_headers, max_head);
        match head {
            FastPath::Serve {
                head_len: n,
                req: r,
            } => {
                assert_eq!(n, *head_len);
                assert!(same(&r, req), "{r:?} vs {req:?}");
            }
            other => panic!("head alone: {other:?}, with the rest: served"),
        }
    }
    // arrival in two reads: the first read alone
    let cut = usize::from(*split) * bytes.len() / 256;
    match (fast_path(&bytes[..cut], max_headers, max_head), &whole) {
        (FastPath::NeedMore, _) => {}
        (FastPath::Handover, FastPath::Handover) => {}
        (
            FastPath::Serve {
                head_len: a,
                req: ra,
            },
            FastPath::Serve {
                head_len: b,
                req: rb,
            },
        ) => {
            assert_eq!(a, *b);
            assert!(same(&ra, rb), "{ra:?} vs {rb:?}");
        }
        (first, whole) => panic!("first {cut} bytes: {first:?}, all: {whole:?}"),
    }
});
