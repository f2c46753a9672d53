//! The raw-bytes fault modes of a simulated node: what it writes (or fails
//! to write) on the TCP/TLS stream instead of a well-formed response, after
//! the request has been read and recorded. Each function ends the
//! connection except [`smuggle`] and the mis-framed answers of
//! [`misframed`], which leave it open on purpose.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::node::Mode;
use super::reply::{self, Reply};

/// A stream the node serves: plain TCP or TLS over TCP. The fault modes
/// need the TCP socket underneath (for `SO_LINGER`).
pub(crate) trait Transport:
    tokio::io::AsyncRead + AsyncWrite + Unpin + Send + 'static
{
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Bytes that are not HTTP in any version (no `HTTP/` prefix, binary).
pub(crate) const GARBAGE: &[u8] =
    b"\x00\x17\xfe\xff SSH-2.0-not-http \x9c\x01\r\n\r\n\xde\xad\xbe\xef";

/// Size of the header [`huge_head`] adds.
pub(crate) const HUGE_HEADER_LEN: usize = 200 * 1024;

/// RST: `SO_LINGER` 0, then drop, so the kernel sends a reset.
pub(crate) fn reset<S: Transport>(io: S) {
    if let Err(e) = io.tcp().set_zero_linger() {
        tracing::debug!(error = %e, "sim: SO_LINGER 0 failed; closing normally");
    }
    drop(io);
}

/// Non-HTTP bytes, then close.
pub(crate) async fn garbage<S: Transport>(mut io: S) {
    let _ = io.write_all(GARBAGE).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// The response head at once, then the body one byte per second.
pub(crate) async fn slow_body<S: Transport>(mut io: S, reply: &Reply) {
    if io.write_all(&reply.head_bytes(true)).await.is_err() {
        return;
    }
    for offset in 0..reply.payload.len() {
        let byte = [reply.payload.byte_at(offset)];
        if io.write_all(&byte).await.is_err() || io.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = io.shutdown().await;
}

/// `Content-Length: 100`, then 10 bytes, then close.
pub(crate) async fn short_body<S: Transport>(mut io: S) {
    let msg = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"uid\": 1,";
    let _ = io.write_all(msg).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// Two differing `Content-Length` headers, then close.
pub(crate) async fn bad_cl<S: Transport>(mut io: S) {
    let msg = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 17\r\n\r\n{}";
    let _ = io.write_all(msg).await;
    let _ = io.flush().await;
    let _ = io.shutdown().await;
}

/// The normal reply with a 200 KiB header added, then close.
pub(crate) async fn huge_head<S: Transport>(mut io: S, reply: Reply, head_only: bool) {
    let reply = reply.with_header("X-Sim-Huge", "a".repeat(HUGE_HEADER_LEN));
    let _ = reply::write(&mut io, &reply, head_only, true).await;
    let _ = io.shutdown().await;
}

/// The normal reply with 40 header lines added, then close.
pub(crate) async fn many_headers<S: Transport>(mut io: S, mut reply: Reply, head_only: bool) {
    for i in 0..40 {
        reply = reply.with_header("X-Sim-Many", i.to_string());
    }
    let _ = reply::write(&mut io, &reply, head_only, true).await;
    let _ = io.shutdown().await;
}

/// The normal reply followed by a second, unsolicited response. The
/// connection stays open, so a client that reuses it reads the extra
/// response as the answer to its next request.
pub(crate) async fn smuggle<S: Transport>(
    io: &mut S,
    reply: &Reply,
    head_only: bool,
) -> std::io::Result<()> {
    reply::write(io, reply, head_only, false).await?;
    let extra = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Sim-Smuggled: 1\r\nContent-Length: 17\r\n\r\n{\"smuggled\":true}";
    io.write_all(extra).await?;
    io.flush().await
}

/// The fixed bytes of a mode that answers with a mis-framed response and
/// keeps the connection open (a client that reuses it is at fault).
pub(crate) fn misframed(mode: &Mode) -> Option<&'static [u8]> {
    Some(match mode {
        Mode::ClList => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5, 5\r\n\r\nhello",
        Mode::ClAndChunked => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Mode::GzipChunked => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Mode::Switching => b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        Mode::NoContentWithCl => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        Mode::NotModifiedWithCl => b"HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\nContent-Length: 5\r\n\r\n",
        _ => return None,
    })
}
