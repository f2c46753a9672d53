//! Encoding responses of the HTTP/1.1 fast path: the status line and
//! headers into one buffer, the body framed by the upstream's
//! `Content-Length`, the body's exact size, or chunked encoding.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, StatusCode};

use crate::wire;

/// How the body is delimited on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// No body bytes (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes; `announce`: we add the header ourselves.
    Length {
        len: u64,
        announce: bool,
    },
    Chunked,
}

/// The framing decided for one response.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    kind: Kind,
    /// Keep the connection after this response (else `connection: close`).
    pub keep_alive: bool,
}

impl Framing {
    /// `exact`: the body's exact size when known.
    pub fn new(
        parts: &http::response::Parts,
        exact: Option<u64>,
        is_head: bool,
        keep_alive: bool,
    ) -> Self {
        let status = parts.status;
        let no_body = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let close = parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| wire::has_token(v.as_bytes(), b"close"));
        let declared = declared_length(&parts.headers);
        let kind = if no_body {
            Kind::None
        } else if let Some(len) = declared {
            Kind::Length {
                len,
                announce: false,
            }
        } else if let Some(len) = exact {
            Kind::Length {
                len,
                announce: true,
            }
        } else {
            Kind::Chunked
        };
        Framing {
            kind,
            keep_alive: keep_alive && !close,
        }
    }

    pub fn has_body(&self) -> bool {
        self.kind != Kind::None
    }

    /// Room for the head and as much of the body as one write carries:
    /// the whole body when its length is known and small.
    pub fn buffer_hint(&self) -> usize {
        const HEAD: usize = 512;
        match self.kind {
            Kind::Length { len, .. } => HEAD + len.min(64 * 1024) as usize,
            Kind::None => HEAD,
            Kind::Chunked => HEAD + 4096,
        }
    }
}

/// The one valid `Content-Length` of the response (`5, 5` is 5); an
/// invalid or conflicting one is dropped and the body framed by us instead.
fn declared_length(h: &http::HeaderMap) -> Option<u64> {
    wire::content_length(h).ok().flatten().map(|l| l.value)
}

/// Status line and headers, ending with the empty line.
pub fn head(out: &mut Vec<u8>, parts: &http::response::Parts, f: &Framing) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    let keep_declared = matches!(
        f.kind,
        Kind::Length {
            announce: false,
            ..
        }
    ) || f.kind == Kind::None;
    for (name, value) in parts.headers.iter() {
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        if name == header::CONTENT_LENGTH && !keep_declared {
            continue;
        }
        dated |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match f.kind {
        Kind::Length {
            len,
            announce: true,
        } => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Kind::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !f.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Frames body data as it comes.
pub struct BodyWriter {
    kind: Kind,
    written: u64,
}

impl BodyWriter {
    pub fn new(f: Framing) -> Self {
        BodyWriter {
            kind: f.kind,
            written: 0,
        }
    }

    /// Appends `data`; false when it overruns the announced length (the
    /// excess is not written).
    pub fn data(&mut self, out: &mut Vec<u8>, data: &[u8]) -> bool {
        match self.kind {
            Kind::None => true,
            Kind::Length { len, .. } => {
                let room = len.saturating_sub(self.written);
                let take = (data.len() as u64).min(room) as usize;
                out.extend_from_slice(&data[..take]);
                self.written += take as u64;
                take == data.len()
            }
            Kind::Chunked => {
                if !data.is_empty() {
                    let mut hex = [0u8; 16];
                    out.extend_from_slice(wire::hex(data.len(), &mut hex));
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                    self.written += data.len() as u64;
                }
                true
            }
        }
    }

    /// Ends the body; false when it fell short of the announced length.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        match self.kind {
            Kind::None => true,
            Kind::Length { len, .. } => self.written == len,
            Kind::Chunked => {
                out.extend_from_slice(b"0\r\n\r\n");
                true
            }
        }
    }
}

thread_local! {
    /// The IMF-fixdate of the current second, rendered once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut d = cell.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                d.1.copy_from_slice(text.as_bytes());
                d.0 = secs;
            }
        }
        f(&d.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("response").into_parts().0
    }

    fn render(p: &http::response::Parts, f: &Framing, body: &[&[u8]]) -> String {
        let mut out = Vec::new();
        head(&mut out, p, f);
        let mut w = BodyWriter::new(*f);
        for b in body {
            w.data(&mut out, b);
        }
        w.finish(&mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn upstream_length_is_kept_and_enforced() {
        let p = parts(200, &[("content-length", "4"), ("date", "x")]);
        let f = Framing::new(&p, None, false, true);
        let s = render(&p, &f, &[b"ab", b"cd"]);
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: x\r\n\r\nabcd"
        );
        let mut w = BodyWriter::new(f);
        let mut out = Vec::new();
        assert!(!w.data(&mut out, b"abcde"));
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn unknown_length_is_chunked_and_close_is_announced() {
        let p = parts(200, &[("date", "x"), ("transfer-encoding", "chunked")]);
        let f = Framing::new(&p, None, false, false);
        let s = render(&p, &f, &[b"hello", b"", &[b'x'; 26]]);
        assert_eq!(
            s,
            format!(
                "HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n1a\r\n{}\r\n0\r\n\r\n",
                "x".repeat(26)
            )
        );
    }

    #[test]
    fn exact_size_is_announced_head_and_204_have_no_body() {
        let p = parts(404, &[("date", "x")]);
        let f = Framing::new(&p, Some(3), false, true);
        assert_eq!(
            render(&p, &f, &[b"abc"]),
            "HTTP/1.1 404 Not Found\r\ndate: x\r\ncontent-length: 3\r\n\r\nabc"
        );
        let p = parts(200, &[("content-length", "10"), ("date", "x")]);
        let f = Framing::new(&p, None, true, true);
        assert!(!f.has_body());
        assert_eq!(
            render(&p, &f, &[]),
            "HTTP/1.1 200 OK\r\ncontent-length: 10\r\ndate: x\r\n\r\n"
        );
        let p = parts(204, &[("connection", "close")]);
        let f = Framing::new(&p, Some(0), false, true);
        assert!(!f.keep_alive && !f.has_body());
        assert!(render(&p, &f, &[]).contains("connection: close\r\ndate: "));
    }

    #[test]
    fn bad_or_repeated_length_is_reframed() {
        let p = parts(200, &[("content-length", "1x"), ("date", "x")]);
        let f = Framing::new(&p, None, false, true);
        assert!(render(&p, &f, &[b"a"])
            .starts_with("HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\n\r\n"));
    }
}
