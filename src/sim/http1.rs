//! The simulated node's HTTP/1.1 reader. It reads heads itself (rather
//! than through hyper) so the recorder sees the target and every header
//! byte for byte and in order, and so fault modes can misbehave on the raw
//! stream. Bodies are streamed through a [`BodyTap`], never buffered whole.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::head::{parse_head, Framing, Head};
use super::record::BodyTap;

/// Largest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 256 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Why no head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    TooLarge,
    Truncated,
    Io(std::io::Error),
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
    use tokio::io::AsyncWriteExt;

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
