//! HTTP/1.1 response framing for the inline client: the response head
//! parsed from a connection's read buffer (httparse), how its body is
//! delimited (RFC 9112 §6.3), and the chunked decoder. Pure functions over
//! buffers, no I/O; whatever a node sends ends in a [`ProtocolError`],
//! never a panic.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};

use crate::wire;

/// Most header lines accepted in a response head by default (hyper's).
pub const MAX_HEADERS: usize = 100;
/// Largest response head accepted by default.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header slots kept on the stack while parsing; a configured limit above
/// it parses into slots on the heap.
const STACK_HEADERS: usize = MAX_HEADERS;

/// The size limits of a node's response head, the same on both client
/// paths (`limits.upstream_max_header_bytes`, `limits.upstream_max_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_bytes: MAX_HEAD,
            max_headers: MAX_HEADERS,
        }
    }
}

/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
/// Largest trailer section (read and dropped).
const MAX_TRAILERS: usize = MAX_HEAD;

/// A node's response that cannot be read as HTTP/1.1.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid response head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("response head larger than the limit (limits.upstream_max_header_bytes)")]
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
pub fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    limits: HeadLimits,
) -> Result<Option<Head>, ProtocolError> {
    let n = limits.max_headers.max(1);
    let mut at_stack = [(0u32, 0u32, 0u32, 0u32); STACK_HEADERS];
    let mut at_heap;
    let at: &mut [At] = if n <= STACK_HEADERS {
        &mut at_stack[..n]
    } else {
        at_heap = vec![(0u32, 0u32, 0u32, 0u32); n];
        &mut at_heap
    };
    loop {
        let scanned = if n <= STACK_HEADERS {
            let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
            scan(buf, limits, &mut slots[..n], at)?
        } else {
            let mut slots: Vec<MaybeUninit<httparse::Header<'_>>> =
                (0..n).map(|_| MaybeUninit::uninit()).collect();
            scan(buf, limits, &mut slots, at)?
        };
        let Some(Scanned {
            len,
            status,
            version,
            count,
        }) = scanned
        else {
            return Ok(None);
        };
        if status.is_informational() {
            // we never ask to switch protocols; other 1xx are skipped
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(ProtocolError::UnexpectedUpgrade);
            }
            buf.advance(len);
            continue;
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
        let (framing, keep_alive) = check(status, version, &mut headers, head_request)?;
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

/// Header positions in the head: (name offset, name length, value offset,
/// value length).
type At = (u32, u32, u32, u32);

/// A complete head found at the front of the buffer.
struct Scanned {
    len: usize,
    status: StatusCode,
    version: Version,
    /// Headers recorded in `at`.
    count: usize,
}

/// Parses the head at the front of `buf` into offsets (`at`), so the
/// values can share the buffer's memory once it is split off.
fn scan<'b>(
    buf: &'b [u8],
    limits: HeadLimits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    at: &mut [At],
) -> Result<Option<Scanned>, ProtocolError> {
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, slots)?
    {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= limits.max_bytes => {
            return Err(ProtocolError::HeadTooLarge)
        }
        httparse::Status::Partial => return Ok(None),
    };
    if len > limits.max_bytes {
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
    let base = buf.as_ptr() as usize;
    for (slot, h) in at.iter_mut().zip(res.headers.iter()) {
        // offsets into `buf`, below the head limit (at most 1 MiB): they
        // fit; the ranges are checked again when the values are taken
        let name = (h.name.as_ptr() as usize).wrapping_sub(base);
        let value = (h.value.as_ptr() as usize).wrapping_sub(base);
        *slot = (
            name as u32,
            h.name.len() as u32,
            value as u32,
            h.value.len() as u32,
        );
    }
    Ok(Some(Scanned {
        len,
        status,
        version,
        count: res.headers.len(),
    }))
}

/// RFC 9112 §6.3 for a final response head, and the checks both client
/// paths apply before a response is relayed (the inline path on its own
/// parse, the hyper path on the head hyper parsed):
///
/// - `101` (never asked for) and any other 1xx as a final answer: error;
/// - `Transfer-Encoding` other than exactly `chunked`, or on HTTP/1.0: error;
/// - `Transfer-Encoding` with `Content-Length`: the length is dropped (§6.3
///   (3)) and the connection is not reused (the node framed it two ways);
/// - differing or invalid `Content-Length` values: error; a list of equal
///   values (`5, 5`) is forwarded as one;
/// - no `Content-Length` is relayed on 204 and 304 (RFC 9110 §8.6; an h2
///   client treats one as a protocol error); on answers to HEAD it is kept
///   (it describes the GET) once valid.
pub fn check(
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
    head_request: bool,
) -> Result<(Framing, bool), ProtocolError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(ProtocolError::UnexpectedUpgrade);
    }
    if status.is_informational() {
        return Err(ProtocolError::BadStatus);
    }
    let mut keep_alive = version == Version::HTTP_11
        && !wire::headers_have_token(headers, &header::CONNECTION, b"close");
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        headers.remove(header::CONTENT_LENGTH);
        return Ok((Framing::Length(0), keep_alive));
    }
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if chunked {
        // HTTP/1.0 has no transfer codings; a coding other than chunked
        // could not be forwarded once Transfer-Encoding is stripped
        if version != Version::HTTP_11 || !wire::only_chunked(headers) {
            return Err(ProtocolError::BadTransferEncoding);
        }
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
    }
    let length = wire::content_length(headers).map_err(|_| ProtocolError::BadContentLength)?;
    if let Some(wire::Length {
        value,
        repeated: true,
    }) = length
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(value));
    }
    if head_request {
        return Ok((Framing::Length(0), keep_alive));
    }
    match (chunked, length) {
        (true, _) => Ok((Framing::Chunked, keep_alive)),
        (false, Some(l)) => Ok((Framing::Length(l.value), keep_alive)),
        (false, None) => Ok((Framing::Close, false)),
    }
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
                    let size =
                        wire::chunk_size(&buf[..end]).map_err(|_| ProtocolError::BadChunkSize)?;
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

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
