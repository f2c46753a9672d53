//! HTTP/1 wire grammar shared by the server's fast path and the upstream
//! client: comma-separated token lists, `Content-Length` values (RFC 9110
//! §8.6: a list of identical values is one value), `Transfer-Encoding`
//! that is exactly `chunked`, and chunk sizes in hex, read and written.
//! Pure functions over bytes and header maps; no I/O, no allocation, no
//! policy (callers decide what an invalid value costs).

use http::header::{self, HeaderMap, HeaderName};

/// Whether one comma-separated header value holds `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether any `name` header holds `token`.
pub fn headers_have_token(headers: &HeaderMap, name: &HeaderName, token: &[u8]) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| has_token(v.as_bytes(), token))
}

/// Why a `Content-Length` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLength;

/// What the `Content-Length` headers of a message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    pub value: u64,
    /// More than one value was given (in one line or several), all equal:
    /// a forwarder sends the one value instead.
    pub repeated: bool,
}

/// The one length every `Content-Length` value agrees on; `None` when
/// there is none. Differing, empty or non-decimal values are an error:
/// `5, 5` is 5, `5, 6` and `5x` are not lengths.
pub fn content_length(headers: &HeaderMap) -> Result<Option<Length>, BadLength> {
    let mut found: Option<u64> = None;
    let mut values = 0usize;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            values += 1;
            let n = decimal(part.trim_ascii()).ok_or(BadLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(BadLength);
            }
            found = Some(n);
        }
    }
    Ok(found.map(|value| Length {
        value,
        repeated: values > 1,
    }))
}

/// `1*DIGIT` as a u64, overflow-checked.
pub fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `Transfer-Encoding` is exactly `chunked` (in one or more lines): the
/// only coding a forwarder that strips the header can decode.
pub fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    codings
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// Why a chunk-size line is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunkSize;

/// A chunk-size line without its CRLF: `1*HEXDIG [ BWS ";" extensions ]`,
/// extensions ignored, trailing blanks tolerated (as hyper does), the size
/// overflow-checked.
pub fn chunk_size(line: &[u8]) -> Result<u64, BadChunkSize> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BadChunkSize);
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(v)))
            .ok_or(BadChunkSize)?;
    }
    let rest = &line[digits..];
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match rest.get(ws) {
        None => Ok(size),
        Some(b';') if rest.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)) => Ok(size),
        _ => Err(BadChunkSize),
    }
}

/// `n` in lowercase hex without leading zeros, written at the end of
/// `buf`: the chunk-size of an encoded chunk.
pub fn hex(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 || i == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cl(values: &[&'static str]) -> Result<Option<Length>, BadLength> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::CONTENT_LENGTH, HeaderValue::from_static(v));
        }
        content_length(&h)
    }

    #[test]
    fn content_length_lists() {
        assert_eq!(cl(&[]), Ok(None));
        let one = |value, repeated| Ok(Some(Length { value, repeated }));
        assert_eq!(cl(&["5"]), one(5, false));
        assert_eq!(cl(&["5, 5"]), one(5, true));
        assert_eq!(cl(&["5", " 5 "]), one(5, true));
        for bad in [
            &["5, 6"][..],
            &["5", "6"],
            &["5x"],
            &[""],
            &["5,"],
            &["+5"],
            &["-1"],
            &["99999999999999999999"],
        ] {
            assert_eq!(cl(bad), Err(BadLength), "{bad:?}");
        }
    }

    #[test]
    fn tokens_and_codings() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(!has_token(b"closed", b"close"));
        let te = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::TRANSFER_ENCODING, HeaderValue::from_static(v));
            }
            only_chunked(&h)
        };
        assert!(te(&["chunked"]));
        assert!(te(&["Chunked "]));
        assert!(!te(&["gzip, chunked"]));
        assert!(!te(&["chunked", "chunked"]));
        assert!(!te(&["gzip"]));
        assert!(!te(&[]));
    }

    #[test]
    fn chunk_sizes_and_hex() {
        assert_eq!(chunk_size(b"1aF"), Ok(0x1af));
        assert_eq!(chunk_size(b"4 ; name=\"v;x\""), Ok(4));
        assert_eq!(chunk_size(b"0  "), Ok(0));
        for bad in [
            &b""[..],
            b"x",
            b"-1",
            b"1 2",
            b"11111111111111111",
            b"4;\x01",
        ] {
            assert_eq!(chunk_size(bad), Err(BadChunkSize), "{bad:?}");
        }
        assert_eq!(hex(0, &mut [0; 16]), b"0");
        assert_eq!(hex(0x1234abc, &mut [0; 16]), b"1234abc");
        assert_eq!(hex(usize::MAX, &mut [0; 16]), b"ffffffffffffffff");
    }
}
