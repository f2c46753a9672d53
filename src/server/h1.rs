//! The HTTP/1.1 fast path: ordinary bodyless requests (what API clients
//! and monitoring agents send all day) are read, handed to the pipeline
//! and answered here, on the connection's own task, without hyper's
//! dispatcher, its per-request header timer or its per-connection buffers.
//!
//! Anything else - a request with a body, `Expect`, `Upgrade`, HTTP/1.0,
//! an absolute-form target, too many or too large headers, a head that
//! does not parse - hands the connection to hyper together with the bytes
//! already read ([`End::Handover`]), so hyper answers exactly as it does
//! for connections it served from the start (400/414/431 and audit
//! included). The decision is made before the pipeline sees the request.
//!
//! While idle between requests the connection holds no buffer at all:
//! it waits for the socket to become readable and only then allocates
//! one. The keep-alive idle time is `timeouts.request_header`, as with
//! hyper: one timer per connection, re-armed per request.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use crate::body::{ClientBody, ResponseBody};
use crate::config::Config;
use crate::context::ConnInfo;
use crate::gateway::Gateway;
use crate::pipeline;
use crate::upstream::headers;

use super::h1_write::{self, Framing};

/// How the fast path left the connection.
pub enum End {
    /// To be closed (the caller's lingering close): nothing more to serve.
    Closed,
    /// Not ours to serve: hyper takes over, replaying `read` first.
    /// `fresh`: no request was served before (an h2 preface may be honoured).
    Handover { read: Bytes, fresh: bool },
}

/// Limits of the fast path, from the config.
#[derive(Clone, Copy)]
pub struct Settings {
    header_timeout: Duration,
    max_head: usize,
    max_headers: usize,
}

impl Settings {
    pub fn new(cfg: &Config) -> Self {
        Settings {
            header_timeout: cfg.timeouts.request_header,
            max_head: cfg.limits.max_header_bytes,
            max_headers: cfg.limits.max_headers.min(MAX_FAST_HEADERS),
        }
    }
}

/// Headers the fast path parses at most (more: hyper's turn).
const MAX_FAST_HEADERS: usize = 64;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8192;

/// A parsed head: positions in the read buffer, checked for the fast path.
struct Head {
    len: usize,
    method: Method,
    target: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    close: bool,
}

enum Parsed {
    Partial,
    Fast(Head),
    Foreign,
}

/// Serves requests until the connection closes or must go to hyper.
pub async fn serve(
    gw: &Arc<Gateway>,
    info: &Arc<ConnInfo>,
    io: &mut TlsStream<TcpStream>,
    drain: &mut watch::Receiver<bool>,
    set: Settings,
) -> End {
    let mut buf = BytesMut::new();
    let mut draining = *drain.borrow();
    // No request served yet: a drain does not close the connection before
    // its first request (accepted moments before the drain, that request
    // is on its way: closing would fail it). It is answered, then closed;
    // the head deadline and the drain timeout still bound the wait. Also
    // what lets a hand-over honour an h2 preface (only as the first bytes).
    let mut fresh = true;
    let deadline = tokio::time::sleep(set.header_timeout);
    tokio::pin!(deadline);
    loop {
        // the head (and the keep-alive wait before it) under one deadline
        deadline.as_mut().reset(Instant::now() + set.header_timeout);
        let head = loop {
            if !buf.is_empty() {
                match parse(&buf, set.max_headers) {
                    // a complete head over the limit is hyper's to refuse (431)
                    Parsed::Fast(h) if h.len > set.max_head => {
                        return handover(buf.freeze(), fresh)
                    }
                    Parsed::Fast(h) => break h,
                    Parsed::Foreign => return handover(buf.freeze(), fresh),
                    Parsed::Partial if buf.len() >= set.max_head => {
                        return handover(buf.freeze(), fresh)
                    }
                    Parsed::Partial => {}
                }
            } else {
                if draining && !fresh {
                    return End::Closed;
                }
                // idle: give the buffer back and wait for the socket
                if !has_plaintext(io) {
                    buf = BytesMut::new();
                    if !wait_readable(io, drain, &mut draining, fresh, deadline.as_mut()).await {
                        return End::Closed;
                    }
                }
            }
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => match r {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                },
                _ = &mut deadline => return End::Closed,
                _ = drain.changed(), if !draining => {
                    draining = true;
                    if buf.is_empty() && !fresh {
                        return End::Closed;
                    }
                }
            }
        };

        let head_bytes = buf.split_to(head.len).freeze();
        let close_asked = head.close;
        let is_head = head.method == Method::HEAD;
        let req = match build_request(head, &head_bytes) {
            Some(r) => r,
            None => {
                // parsed by httparse but not representable (a target over
                // the URI length limit, say): hyper answers it as it would
                // have from the start (414/400, audited), from these bytes
                let mut all = BytesMut::with_capacity(head_bytes.len() + buf.len());
                all.extend_from_slice(&head_bytes);
                all.extend_from_slice(&buf);
                return handover(all.freeze(), fresh);
            }
        };
        drop(head_bytes);

        // boxed: the pipeline's state exists only while a request is in
        // flight, not in every idle connection's task
        let resp = Box::pin(pipeline::handle(gw.clone(), info.clone(), req)).await;
        draining = draining || drain.has_changed().unwrap_or(true);
        let keep_alive = !close_asked && !draining;
        let (parts, body) = resp.into_parts();
        let framing = Framing::new(&parts, body.size_hint().exact(), is_head, keep_alive);
        let done = write_response(io, &parts, body, framing).await;
        fresh = false;
        if !done || !framing.keep_alive {
            return End::Closed;
        }
    }
}

fn handover(read: Bytes, fresh: bool) -> End {
    End::Handover { read, fresh }
}

/// Writes head and body; false when the connection cannot be reused.
async fn write_response(
    io: &mut TlsStream<TcpStream>,
    parts: &http::response::Parts,
    mut body: ResponseBody,
    framing: Framing,
) -> bool {
    let mut out = Vec::with_capacity(framing.buffer_hint());
    h1_write::head(&mut out, parts, &framing);
    let mut w = h1_write::BodyWriter::new(framing);
    if framing.has_body() {
        loop {
            // take what is ready now; flush before waiting for more
            let ready = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(Pin::new(&mut body).poll_frame(cx))
            })
            .await;
            let next = match ready {
                std::task::Poll::Ready(f) => f,
                std::task::Poll::Pending => {
                    if io.write_all(&out).await.is_err() {
                        return false;
                    }
                    out.clear();
                    if io.flush().await.is_err() {
                        return false;
                    }
                    body.frame().await
                }
            };
            match next {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !w.data(&mut out, &data) {
                            // more than the announced length: cut
                            let _ = io.write_all(&out).await;
                            return false;
                        }
                        if out.len() >= 64 * 1024 {
                            if io.write_all(&out).await.is_err() {
                                return false;
                            }
                            out.clear();
                        }
                    }
                }
                Some(Err(_)) => {
                    // the upstream failed mid-body: the client sees a cut stream
                    let _ = io.write_all(&out).await;
                    let _ = io.flush().await;
                    return false;
                }
            }
        }
    }
    let complete = w.finish(&mut out);
    if io.write_all(&out).await.is_err() || io.flush().await.is_err() {
        return false;
    }
    // the audit record is written when the body is dropped, after the write
    drop(body);
    complete
}

/// True when rustls already holds decrypted bytes we have not read.
fn has_plaintext(io: &mut TlsStream<TcpStream>) -> bool {
    match io.get_mut().1.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() > 0,
        // let the read report it
        Err(_) => true,
    }
}

/// Waits for the socket to become readable; false: close (deadline, or a
/// drain when the connection has already served a request).
async fn wait_readable(
    io: &TlsStream<TcpStream>,
    drain: &mut watch::Receiver<bool>,
    draining: &mut bool,
    fresh: bool,
    mut deadline: Pin<&mut Sleep>,
) -> bool {
    let tcp = io.get_ref().0;
    loop {
        tokio::select! {
            biased;
            r = tcp.readable() => return r.is_ok(),
            _ = &mut deadline => return false,
            _ = drain.changed(), if !*draining => {
                *draining = true;
                if !fresh {
                    return false;
                }
            }
        }
    }
}

/// Parses a head and decides whether the fast path may serve it.
fn parse(buf: &[u8], max_headers: usize) -> Parsed {
    let mut storage = [httparse::EMPTY_HEADER; MAX_FAST_HEADERS];
    let mut req = httparse::Request::new(&mut storage[..max_headers]);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Foreign,
    };
    if req.version != Some(1) {
        return Parsed::Foreign;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Foreign;
    };
    if !path.starts_with('/') || method == "CONNECT" {
        return Parsed::Foreign;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Foreign;
    };
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut close = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Foreign;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") && !t.is_empty() {
                    return Parsed::Foreign;
                }
            }
        }
        headers.push((span(name), span(h.value)));
    }
    Parsed::Fast(Head {
        len,
        method,
        target: span(path.as_bytes()),
        headers,
        close,
    })
}

/// The pipeline's request, sharing the head's bytes (no copies).
fn build_request(head: Head, bytes: &Bytes) -> Option<Request<ClientBody>> {
    let uri = Uri::from_maybe_shared(bytes.slice(head.target)).ok()?;
    let mut map = HeaderMap::with_capacity(head.headers.len() + headers::ADDED_TO_REQUEST);
    for (n, v) in head.headers {
        let name = HeaderName::from_bytes(&bytes[n]).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(v)).ok()?;
        map.append(name, value);
    }
    let mut req = Request::new(ClientBody::Empty);
    *req.method_mut() = head.method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Some(req)
}

/// For the fuzz targets only (`crate::fuzzing::fast_path`): the decision
/// [`serve`] makes on the bytes read so far, with the same limits, and the
/// request it would hand to the pipeline. Keep in step with `serve`.
#[doc(hidden)]
pub fn fuzz_decide(
    buf: &[u8],
    max_headers: usize,
    max_head: usize,
) -> crate::fuzzing::FastPath<Request<ClientBody>> {
    use crate::fuzzing::FastPath;
    match parse(buf, max_headers.min(MAX_FAST_HEADERS)) {
        Parsed::Fast(h) if h.len > max_head => FastPath::Handover,
        Parsed::Fast(h) => {
            let len = h.len;
            match build_request(h, &Bytes::copy_from_slice(&buf[..len])) {
                Some(req) => FastPath::Serve { head_len: len, req },
                None => FastPath::Handover,
            }
        }
        Parsed::Foreign => FastPath::Handover,
        Parsed::Partial if buf.len() >= max_head => FastPath::Handover,
        Parsed::Partial => FastPath::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(raw: &[u8]) -> Option<Head> {
        match parse(raw, 64) {
            Parsed::Fast(h) => Some(h),
            _ => None,
        }
    }

    #[test]
    fn ordinary_get_is_fast_and_shares_positions() {
        let raw = b"GET /v1/bdbs?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eA==\r\n\r\nGET";
        let h = fast(raw).expect("fast");
        assert_eq!(&raw[h.target.clone()], b"/v1/bdbs?x=1");
        assert_eq!(h.len, raw.len() - 3);
        let bytes = Bytes::copy_from_slice(&raw[..h.len]);
        let req = build_request(h, &bytes).expect("request");
        assert_eq!(req.uri().path(), "/v1/bdbs");
        assert_eq!(req.headers()["authorization"], "Basic eA==");
    }

    #[test]
    fn bodies_and_oddities_go_to_hyper() {
        for raw in [
            &b"POST /v1/bdbs HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"[..],
            b"POST /v1/bdbs HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(matches!(parse(raw, 64), Parsed::Foreign), "{raw:?}");
        }
    }

    #[test]
    fn partial_and_close() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost:", 64),
            Parsed::Partial
        ));
        let h = fast(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").expect("fast");
        assert!(h.close);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 2),
            Parsed::Foreign
        ));
    }
}
