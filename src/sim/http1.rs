//! The simulated node's HTTP/1.1 request reader. It reads heads itself
//! (rather than through hyper) so the recorder sees the target and every
//! header byte for byte and in order, and so fault modes can misbehave on
//! the raw stream. Parsing is lenient enough to record anything that ends
//! in a blank line and strict in judging it: a [`Head::defect`] means 400.
//! Bodies are streamed through a callback, never buffered whole.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::record::BodyTap;

/// Largest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 256 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// A request head as received.
#[derive(Clone, Debug, Default)]
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Why the head is not acceptable HTTP/1.1, if it is not.
    pub defect: Option<&'static str>,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

/// Why no head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    TooLarge,
    Truncated,
    Io(std::io::Error),
}

impl Head {
    pub(crate) fn header_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).next()
    }

    /// Whether the connection may carry another request after this one.
    pub(crate) fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header_all("connection").any(|v| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        match self.version.as_str() {
            "HTTP/1.1" => !has("close"),
            _ => has("keep-alive"),
        }
    }

    /// The body framing, or why it is ambiguous (400, as nginx would).
    pub(crate) fn framing(&self) -> Result<Framing, &'static str> {
        let te: Vec<&[u8]> = self.header_all("transfer-encoding").collect();
        let cl: Vec<&[u8]> = self.header_all("content-length").collect();
        if !te.is_empty() {
            if self.version != "HTTP/1.1" {
                return Err("transfer-encoding on HTTP/1.0");
            }
            if !cl.is_empty() {
                return Err("both content-length and transfer-encoding");
            }
            if te.len() != 1 || !te[0].eq_ignore_ascii_case(b"chunked") {
                return Err("unsupported transfer-encoding");
            }
            return Ok(Framing::Chunked);
        }
        match cl.as_slice() {
            [] => Ok(Framing::Empty),
            [v] => parse_decimal(v)
                .map(|n| {
                    if n == 0 {
                        Framing::Empty
                    } else {
                        Framing::Length(n)
                    }
                })
                .ok_or("invalid content-length"),
            _ => Err("more than one content-length"),
        }
    }

    pub(crate) fn expects_continue(&self) -> bool {
        self.version == "HTTP/1.1"
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn flag(head: &mut Head, why: &'static str) {
    head.defect.get_or_insert(why);
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses everything up to and including the blank line. Never fails: what
/// cannot be understood is still recorded, with a defect.
pub(crate) fn parse_head(raw: &[u8]) -> Head {
    let mut head = Head::default();
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    if let [m, t, v] = parts.as_slice() {
        head.method = lossy(m);
        head.target = lossy(t);
        head.version = lossy(v);
        if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
            flag(&mut head, "invalid method");
        }
        if t.is_empty() || !t.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            flag(&mut head, "invalid request-target");
        }
        if !matches!(*v, b"HTTP/1.1" | b"HTTP/1.0") {
            flag(&mut head, "unsupported HTTP version");
        }
    } else {
        head.method = lossy(request_line);
        flag(&mut head, "malformed request line");
    }
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            flag(&mut head, "obsolete line folding");
            head.headers.push((String::new(), line.to_vec()));
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            flag(&mut head, "header line without a colon");
            head.headers.push((lossy(line), Vec::new()));
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            flag(&mut head, "invalid header name");
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            flag(&mut head, "control byte in a header value");
        }
        head.headers.push((lossy(name), value.to_vec()));
    }
    if head.version == "HTTP/1.1" && head.header_all("host").count() != 1 {
        flag(&mut head, "HTTP/1.1 needs exactly one Host");
    }
    head
}

/// Index just past the blank line ending a head, if `buf` holds one.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
        let next = at + nl + 1;
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => at = next,
        }
    }
    None
}

/// One accepted connection with its read-ahead buffer.
pub(crate) struct Http1Conn<S> {
    pub io: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http1Conn<S> {
    pub(crate) fn new(io: S) -> Self {
        Http1Conn {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(16 * 1024);
        self.io.read_buf(&mut self.buf).await
    }

    /// The next head, or `None` on a clean end of stream between requests.
    pub(crate) async fn read_head(&mut self) -> Result<Option<Head>, HeadError> {
        loop {
            // RFC 9112 2.2: ignore empty lines before a request line.
            while self.buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
                self.buf.advance(1);
            }
            if let Some(end) = head_end(&self.buf) {
                let raw = self.buf.split_to(end);
                return Ok(Some(parse_head(&raw)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            if self.fill().await.map_err(HeadError::Io)? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HeadError::Truncated)
                };
            }
        }
    }

    /// Streams the body through `tap`. An error means the body was
    /// truncated or malformed; the connection must then be closed.
    pub(crate) async fn read_body(
        &mut self,
        framing: Framing,
        tap: &mut BodyTap,
    ) -> std::io::Result<()> {
        match framing {
            Framing::Empty => Ok(()),
            Framing::Length(n) => self.read_exact_into(n, tap).await,
            Framing::Chunked => loop {
                let line = self.read_line().await?;
                let size = line.split(|&b| b == b';').next().unwrap_or_default();
                let size = parse_chunk_size(size).ok_or_else(|| invalid("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the blank line that ends the message.
                    while !self.read_line().await?.is_empty() {}
                    return Ok(());
                }
                self.read_exact_into(size, tap).await?;
                if !self.read_line().await?.is_empty() {
                    return Err(invalid("chunk data longer than its size"));
                }
            },
        }
    }

    async fn read_exact_into(&mut self, mut n: u64, tap: &mut BodyTap) -> std::io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() && self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
            tap.update(&self.buf[..take]);
            self.buf.advance(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// A CRLF-terminated line without its CRLF.
    async fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                return line
                    .strip_suffix(b"\r\n")
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| invalid("bare LF in chunked framing"));
            }
            if self.buf.len() > MAX_LINE {
                return Err(invalid("chunked framing line too long"));
            }
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    pub(crate) async fn write_flush(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

fn parse_chunk_size(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 15 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

fn invalid(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn keeps_target_and_headers_verbatim() {
        let h = head("GET /v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\nx-a: 2\r\n\r\n");
        assert_eq!(h.defect, None);
        assert_eq!(
            h.target,
            "/v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b"
        );
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "X-A", "x-a"]);
        assert_eq!(
            h.header_all("x-a").collect::<Vec<_>>(),
            [&b"1"[..], &b"2"[..]]
        );
    }

    #[test]
    fn defects_are_recorded_not_dropped() {
        for raw in [
            "GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            "GET /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /x HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET  /x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        ] {
            let h = head(raw);
            assert!(h.defect.is_some(), "{raw:?}");
            assert!(!h.method.is_empty(), "{raw:?}");
        }
    }

    #[test]
    fn framing_rules() {
        let f =
            |extra: &str| head(&format!("POST /x HTTP/1.1\r\nHost: x\r\n{extra}\r\n")).framing();
        assert_eq!(f(""), Ok(Framing::Empty));
        assert_eq!(f("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(f("Transfer-Encoding: Chunked\r\n"), Ok(Framing::Chunked));
        for bad in [
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            "Content-Length: +3\r\n",
            "Content-Length: 0x3\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
            "Transfer-Encoding: xchunked\r\n",
        ] {
            assert!(f(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn chunked_body_and_pipelining() {
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(raw).await.unwrap();
        let mut conn = Http1Conn::new(server);
        let h = conn.read_head().await.unwrap().unwrap();
        let mut tap = BodyTap::default();
        conn.read_body(h.framing().unwrap(), &mut tap)
            .await
            .unwrap();
        assert_eq!(tap.prefix(), b"abcde");
        let next = conn.read_head().await.unwrap().unwrap();
        assert_eq!(next.target, "/b");
    }

    #[tokio::test]
    async fn bad_chunks_fail() {
        for body in [
            "FFFFFFFFFFFFFFFFF1\r\n",
            "3\r\nabcdef\r\n0\r\n\r\n",
            "-1\r\n",
        ] {
            let raw =
                format!("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
            let (mut client, server) = tokio::io::duplex(1024);
            client.write_all(raw.as_bytes()).await.unwrap();
            drop(client);
            let mut conn = Http1Conn::new(server);
            let h = conn.read_head().await.unwrap().unwrap();
            let mut tap = BodyTap::default();
            assert!(
                conn.read_body(Framing::Chunked, &mut tap).await.is_err(),
                "{body:?}"
            );
            assert_eq!(h.framing(), Ok(Framing::Chunked));
        }
    }
}
