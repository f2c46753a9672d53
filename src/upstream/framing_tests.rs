//! Unit tests of response head parsing, framing decisions and the chunked
//! decoder, on byte strings a node might send.

use super::*;

fn head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    parse_head(&mut buf, head_request, HeadLimits::default())
}

fn framing_of(bytes: &[u8]) -> (Framing, bool) {
    let h = head(bytes, false).unwrap().unwrap();
    (h.framing, h.keep_alive)
}

/// Decodes `wire` fed `step` bytes at a time; the body, or the first error.
fn dechunk(wire: &[u8], step: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut dec = Chunked::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        match dec.step(&mut buf)? {
            Step::Data(d) => out.extend_from_slice(&d),
            Step::Done => {
                assert!(buf.is_empty(), "bytes left after the body: {buf:?}");
                return Ok(out);
            }
            Step::More if fed >= wire.len() => return Err(ProtocolError::Truncated),
            Step::More => {
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
        }
    }
}

#[test]
fn head_keeps_headers_and_leaves_the_body() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 2\r\n\r\n{}"[..],
    );
    let h = parse_head(&mut buf, false, HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(h.response.status(), 200);
    assert_eq!(h.response.version(), Version::HTTP_11);
    assert_eq!(h.response.headers()["content-type"], "application/json");
    assert_eq!(h.response.headers().get_all("x-multi").iter().count(), 2);
    assert_eq!(h.framing, Framing::Length(2));
    assert!(h.keep_alive);
    assert_eq!(&buf[..], b"{}");
}

#[test]
fn partial_heads_need_more_and_huge_ones_fail() {
    assert!(head(b"HTTP/1.1 200 OK\r\nContent-Len", false)
        .unwrap()
        .is_none());
    let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    big.resize(MAX_HEAD + 10, b'a');
    assert!(matches!(
        head(&big, false),
        Err(ProtocolError::HeadTooLarge)
    ));
}

#[test]
fn informational_heads_are_skipped_but_101_is_refused() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"[..],
    );
    let h = parse_head(&mut buf, false, HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(h.response.status(), 201);
    assert!(!h.response.headers().contains_key("link"));
    assert!(buf.is_empty());
    // only the 1xx arrived so far: consumed, more needed
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, false, HeadLimits::default())
        .unwrap()
        .is_none());
    assert!(buf.is_empty());
    assert!(matches!(
        head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            false
        ),
        Err(ProtocolError::UnexpectedUpgrade)
    ));
}

#[test]
fn garbage_and_bad_headers_are_protocol_errors() {
    for bad in [
        &b"\x00\x17\xfe\xff SSH-2.0-not-http \r\n\r\n"[..],
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
    ] {
        assert!(
            head(bad, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(head(&many, false).is_err());
}

#[test]
fn framing_follows_rfc9112_section_6_3() {
    // no body: HEAD, 204, 304, whatever Content-Length says
    let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(h.framing, Framing::Length(0));
    assert_eq!(h.response.headers()["content-length"], "1234");
    for status in ["204 No Content", "304 Not Modified"] {
        let wire = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(framing_of(wire.as_bytes()).0, Framing::Length(0));
    }
    // chunked wins over Content-Length, which is removed
    let h = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: Chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.response.headers().contains_key("content-length"));
    // other codings, and any coding in HTTP/1.0, are refused
    for bad in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(matches!(
            head(bad, false),
            Err(ProtocolError::BadTransferEncoding)
        ));
    }
    // neither: until close, never reused
    assert_eq!(
        framing_of(b"HTTP/1.1 200 OK\r\n\r\n"),
        (Framing::Close, false)
    );
    // keep-alive only for HTTP/1.1 without Connection: close
    assert!(!framing_of(b"HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n").1);
    assert!(
        !framing_of(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").1
    );
}

#[test]
fn content_length_must_be_one_valid_number() {
    let h = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7, 7\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Length(7));
    assert_eq!(
        h.response
            .headers()
            .get_all("content-length")
            .iter()
            .count(),
        1
    );
    assert_eq!(h.response.headers()["content-length"], "7");
    for bad in [
        &b"Content-Length: 2\r\nContent-Length: 17"[..],
        b"Content-Length: 2, 3",
        b"Content-Length: +2",
        b"Content-Length: 0x10",
        b"Content-Length: ",
        b"Content-Length: 1,",
        b"Content-Length: 18446744073709551616",
    ] {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        wire.extend_from_slice(bad);
        wire.extend_from_slice(b"\r\n\r\n");
        assert!(
            matches!(head(&wire, false), Err(ProtocolError::BadContentLength)),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n").0,
        Framing::Length(u64::MAX)
    );
}

#[test]
fn chunked_with_extensions_and_trailers_at_any_split() {
    let wire = b"5;name=value\r\nhello\r\n6 ; quoted=\"a;b\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n";
    for step in [1, 2, 3, 7, wire.len()] {
        assert_eq!(
            dechunk(wire, step).unwrap(),
            b"hello world0123456789",
            "step {step}"
        );
    }
    assert_eq!(dechunk(b"0\r\n\r\n", 1).unwrap(), b"");
    assert_eq!(
        dechunk(b"000F\r\n0123456789abcde\r\n0\r\n\r\n", 4)
            .unwrap()
            .len(),
        15
    );
}

#[test]
fn chunked_rejects_bad_sizes_and_framing() {
    for (wire, what) in [
        (&b"g\r\nx\r\n0\r\n\r\n"[..], "bad hex"),
        (b"\r\n", "empty size"),
        (b"-1\r\n", "sign"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "0x prefix"),
        (b"5 x\r\nhello\r\n", "junk after size"),
        (b"5\nhello\r\n0\r\n\r\n", "bare LF"),
        (b"10000000000000000\r\n", "overflow"),
        (b"5\r\nhelloXY0\r\n\r\n", "missing CRLF after data"),
        (b"5\r\nhello\rX", "half CRLF"),
        (b"5;ext\x00\r\nhello\r\n", "control in extension"),
    ] {
        assert!(
            dechunk(wire, 1).is_err() && dechunk(wire, wire.len()).is_err(),
            "{what}"
        );
    }
    assert!(matches!(
        dechunk(b"5\r\nhelloXY", 100),
        Err(ProtocolError::BadChunkEnd)
    ));
    assert!(matches!(
        dechunk(b"10000000000000000\r\n", 100),
        Err(ProtocolError::BadChunkSize)
    ));
    // truncated mid-chunk: the decoder asks for more
    assert!(matches!(
        dechunk(b"5\r\nhel", 100),
        Err(ProtocolError::Truncated)
    ));
    let long = vec![b'1'; MAX_LINE + 1];
    assert!(matches!(
        dechunk(&long, long.len()),
        Err(ProtocolError::LineTooLong)
    ));
}
