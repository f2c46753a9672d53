//! The upstream client's response framing: `upstream::framing::parse_head`
//! (status line, headers, 1xx skipping, RFC 9112 6.3 body delimitation) and
//! the chunked decoder `Chunked::step`, on whatever a node sends.
//!
//! Input: byte 0 holds flags (bit 0: the request was HEAD) and a read size
//! for the incremental runs; the rest is the node's bytes. Checks:
//! - no panic, whatever the bytes;
//! - a parsed head is consistent: no 1xx, no Content-Length beside a
//!   chunked body, Length(n) agrees with the one remaining Content-Length;
//! - the outcome does not depend on how the bytes arrived: the head parsed
//!   from a prefix is "read more" or the same as from the whole, and the
//!   chunked body decodes to the same bytes and the same end in one read
//!   or in many.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use regate::upstream::framing::{
    parse_head, Chunked, Framing, Head, HeadLimits, ProtocolError, Step,
};

/// What a parse came to, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum HeadOutcome {
    More,
    Err(String),
    Head(String, Framing, bool, usize),
}

fn outcome(r: Result<Option<Head>, ProtocolError>, rest: usize) -> HeadOutcome {
    match r {
        Ok(None) => HeadOutcome::More,
        Err(e) => HeadOutcome::Err(e.to_string()),
        Ok(Some(h)) => HeadOutcome::Head(
            format!("{:?} {:?}", h.response.status(), h.response.headers()),
            h.framing,
            h.keep_alive,
            rest,
        ),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum BodyEnd {
    Done,
    More,
    Err,
}

/// Feeds `body` to a chunked decoder `step` bytes at a time.
fn decode(body: &[u8], step: usize) -> (Vec<u8>, BodyEnd) {
    let mut dec = Chunked::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in body.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.step(&mut buf) {
                Ok(Step::Data(d)) => {
                    assert!(!d.is_empty(), "empty data step");
                    out.extend_from_slice(&d);
                }
                Ok(Step::More) => break,
                Ok(Step::Done) => return (out, BodyEnd::Done),
                Err(_) => return (out, BodyEnd::Err),
            }
        }
    }
    if body.is_empty() {
        // never fed: ask once on the empty buffer
        return match dec.step(&mut buf) {
            Ok(Step::More) => (out, BodyEnd::More),
            Ok(Step::Done) => (out, BodyEnd::Done),
            Ok(Step::Data(_)) => panic!("data from nothing"),
            Err(_) => (out, BodyEnd::Err),
        };
    }
    (out, BodyEnd::More)
}

fuzz_target!(|data: &[u8]| {
    let [flags, bytes @ ..] = data else {
        return;
    };
    let head_request = flags & 1 == 1;
    let step = usize::from(flags >> 1) + 1;

    let mut buf = BytesMut::from(bytes);
    let whole = parse_head(&mut buf, head_request, HeadLimits::default());
    if let Ok(Some(h)) = &whole {
        let status = h.response.status();
        assert!(!status.is_informational());
        let cls: Vec<_> = h
            .response
            .headers()
            .get_all("content-length")
            .iter()
            .collect();
        match h.framing {
            Framing::Chunked => assert!(cls.is_empty(), "Content-Length kept beside chunked"),
            Framing::Length(n) if !head_request && status != 204 && status != 304 => {
                assert_eq!(cls.len(), 1);
                assert_eq!(cls[0].to_str().ok().and_then(|s| s.parse().ok()), Some(n));
            }
            Framing::Length(_) => {}
            Framing::Close => {
                assert!(cls.is_empty());
                assert!(!h.keep_alive, "a close-delimited body on a kept connection");
            }
        }
    }
    let body_at = bytes.len() - buf.len();
    let whole = outcome(whole, buf.len());

    // the head in two reads: the first read alone
    let cut = bytes.len().min(step * 7);
    let mut first = BytesMut::from(&bytes[..cut]);
    let early = parse_head(&mut first, head_request, HeadLimits::default());
    if !matches!(early, Ok(None)) {
        let rest = first.len() + (bytes.len() - cut);
        let early = outcome(early, rest);
        assert_eq!(early, whole, "first {cut} bytes vs all");
    }

    // the body after a chunked head (or the whole input: the decoder alone)
    let body = match &whole {
        HeadOutcome::Head(_, Framing::Chunked, ..) => &bytes[body_at..],
        _ => bytes,
    };
    let (all, end) = decode(body, body.len());
    let (pieces, end_pieces) = decode(body, step);
    assert_eq!(end, end_pieces, "end in one read vs in reads of {step}");
    assert_eq!(all, pieces, "data in one read vs in reads of {step}");
});
