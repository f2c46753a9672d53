//! HTTP/1.1 response framing for the inline client: the response head
//! parsed from a connection's read buffer (httparse), how its body is
//! delimited (RFC 9112 §6.3), and the chunked decoder. Pure functions over
//! buffers, no I/O; whatever a node sends ends in a [`ProtocolError`],
//! never a panic.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

/// Most header lines accepted in a response head (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
/// Largest trailer section (read and dropped).
const MAX_TRAILERS: usize = MAX_HEAD;

/// A node's response that cannot be read as HTTP/1.1.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid response head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid status code or version")]
    BadStatus,
    #[error("unsolicited 101 Switching Protocols")]
    UnexpectedUpgrade,
    #[error("invalid header name or value")]
    BadHeader,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding")]
    BadTransferEncoding,
    #[error("invalid chunk size line")]
    BadChunkSize,
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    #[error("chunk-size or trailer line too long")]
    LineTooLong,
    #[error("response body ended before its framing said")]
    Truncated,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0 for HEAD, 1xx, 204, 304).
    Length(u64),
    Chunked,
    /// Until the node closes the connection.
    Close,
}

/// A final response head.
#[derive(Debug)]
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses the final response head at the front of `buf`, removing it (and
/// any 1xx informational heads before it) from the buffer. `None`: more
/// bytes are needed.
pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, ProtocolError> {
    loop {
        // header positions in `buf`, so the values can share its memory
        let mut at = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots)?
        {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() >= MAX_HEAD => {
                return Err(ProtocolError::HeadTooLarge)
            }
            httparse::Status::Partial => return Ok(None),
        };
        if len > MAX_HEAD {
            return Err(ProtocolError::HeadTooLarge);
        }
        let status = res
            .code
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(ProtocolError::BadStatus)?;
        let version = match res.version {
            Some(0) => Version::HTTP_10,
            Some(1) => Version::HTTP_11,
            _ => return Err(ProtocolError::BadStatus),
        };
        if status.is_informational() {
            // we never ask to switch protocols; other 1xx are skipped
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(ProtocolError::UnexpectedUpgrade);
            }
            buf.advance(len);
            continue;
        }
        let base = buf.as_ptr() as usize;
        let count = res.headers.len();
        for (slot, h) in at.iter_mut().zip(res.headers.iter()) {
            // offsets into `buf`, below MAX_HEAD (64 KiB): they fit; the
            // ranges are checked again below
            let name = (h.name.as_ptr() as usize).wrapping_sub(base);
            let value = (h.value.as_ptr() as usize).wrapping_sub(base);
            *slot = (
                name as u32,
                h.name.len() as u32,
                value as u32,
                h.value.len() as u32,
            );
        }
        let raw = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count + super::headers::ADDED_TO_RESPONSE);
        for &(n, nl, v, vl) in &at[..count] {
            let (n, v) = (n as usize, v as usize);
            let name = raw
                .get(n..n + nl as usize)
                .and_then(|b| HeaderName::from_bytes(b).ok())
                .ok_or(ProtocolError::BadHeader)?;
            let end = v + vl as usize;
            if end > raw.len() {
                return Err(ProtocolError::BadHeader);
            }
            let value = HeaderValue::from_maybe_shared(raw.slice(v..end))
                .map_err(|_| ProtocolError::BadHeader)?;
            headers.append(name, value);
        }
        let (framing, keep_alive) = framing(status, version, &mut headers, head_request)?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// RFC 9112 §6.3, for a final (non-1xx) response.
fn framing(
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
    head_request: bool,
) -> Result<(Framing, bool), ProtocolError> {
    let keep_alive =
        version == Version::HTTP_11 && !has_token(headers, header::CONNECTION, "close");
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Length(0), keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // HTTP/1.0 has no transfer codings; a coding other than chunked
        // could not be forwarded once Transfer-Encoding is stripped
        if version != Version::HTTP_11 || !only_chunked(headers) {
            return Err(ProtocolError::BadTransferEncoding);
        }
        // §6.3 (3): an intermediary removes Content-Length before forwarding
        headers.remove(header::CONTENT_LENGTH);
        return Ok((Framing::Chunked, keep_alive));
    }
    match content_length(headers)? {
        Some(n) => Ok((Framing::Length(n), keep_alive)),
        None => Ok((Framing::Close, false)),
    }
}

/// Whether a comma-list header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `Transfer-Encoding` is exactly `chunked` (in one or more lines).
fn only_chunked(headers: &HeaderMap) -> bool {
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

/// The one Content-Length all values agree on; differing or invalid values
/// are an error, identical duplicates are folded into one header.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, ProtocolError> {
    let mut found = None;
    let mut values = 0;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            values += 1;
            let n = decimal(part.trim_ascii()).ok_or(ProtocolError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(ProtocolError::BadContentLength);
            }
            found = Some(n);
        }
    }
    if let (Some(n), true) = (found, values > 1) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(found)
}

/// `1*DIGIT` as a u64, overflow-checked.
fn decimal(b: &[u8]) -> Option<u64> {
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

/// What the chunked decoder made of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// The buffer is used up mid-body: read more.
    More,
    /// The last chunk and the trailers are consumed.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

/// Decodes a chunked body (RFC 9112 §7.1): extensions ignored, trailers
/// read and dropped, sizes strict hex and overflow-checked.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    remaining: u64,
    trailer_bytes: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            remaining: 0,
            trailer_bytes: 0,
        }
    }
}

impl Chunked {
    /// Consumes framing from the front of `buf` up to the next piece of data.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(end) = line(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    self.remaining = size;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = self.remaining.min(buf.len() as u64);
                    self.remaining -= n;
                    if self.remaining == 0 {
                        self.state = State::DataEnd;
                    }
                    // n <= buf.len(): the conversion is lossless
                    return Ok(Step::Data(buf.split_to(n as usize).freeze()));
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(ProtocolError::BadChunkEnd),
                    None if buf.first().is_some_and(|&b| b != b'\r') => {
                        return Err(ProtocolError::BadChunkEnd)
                    }
                    None => return Ok(Step::More),
                },
                State::Trailers => {
                    let Some(end) = line(buf)? else {
                        return Ok(Step::More);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = State::Done;
                    } else {
                        self.trailer_bytes += end + 2;
                        if self.trailer_bytes > MAX_TRAILERS {
                            return Err(ProtocolError::LineTooLong);
                        }
                    }
                }
                State::Done => return Ok(Step::Done),
            }
        }
    }
}

/// Length of the CRLF-terminated line at the front of `buf` (without the
/// CRLF), `None` when incomplete. A bare LF is an error.
fn line(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(0) => Err(ProtocolError::BadChunkSize),
        Some(lf) if window[lf - 1] == b'\r' => Ok(Some(lf - 1)),
        Some(_) => Err(ProtocolError::BadChunkSize),
        None if buf.len() >= MAX_LINE => Err(ProtocolError::LineTooLong),
        None => Ok(None),
    }
}

/// `1*HEXDIG [ BWS ";" extensions ]`, extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ProtocolError::BadChunkSize);
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
            .ok_or(ProtocolError::BadChunkSize)?;
    }
    let rest = &line[digits..];
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match rest.get(ws) {
        // trailing whitespace is tolerated, as hyper does
        None => Ok(size),
        Some(b';') if rest.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)) => Ok(size),
        _ => Err(ProtocolError::BadChunkSize),
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
