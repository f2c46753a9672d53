//! What happens to the bytes a client is still sending after regate has
//! answered: every early answer (401, 403, 413, 429, a 502 before the
//! body was read...) must reach the client, on both protocols.
//!
//! - **HTTP/2**: dropping an unread request body makes h2 reset the stream
//!   (`CANCEL` while the response is still queued, which also discards the
//!   queued response DATA). So an unread body is never dropped while its
//!   answer may be in flight: [`discard`] reads it to its end in a task of
//!   its own, bounded in bytes and time (nginx's `discard_request_body`),
//!   and only then lets it go (once the response is complete, h2 ends the
//!   stream with `RST_STREAM(NO_ERROR)`, RFC 9113 §8.1).
//! - **HTTP/1.1**: closing a socket with unread input makes the kernel send
//!   RST, which can destroy the answer still in the client's receive
//!   buffer. [`Linger`] wraps a connection's IO so that its shutdown sends
//!   our FIN, then reads and discards what the client still sends until it
//!   closes too, bounded in bytes and time (nginx's lingering close,
//!   Envoy's delayed close).
//!
//! Both bounds come from `[timeouts] linger` and `[limits] max_linger_bytes`.
//! Nothing read here is ever parsed or forwarded.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Body;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep, Sleep};

/// How much of an unwanted request body or connection tail is read and
/// thrown away, and for how long, before the connection is let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub bytes: u64,
    pub time: Duration,
}

/// Reads `body` to its end and drops it, in a task of its own, at most
/// `bounds.bytes` and `bounds.time`. Needs a Tokio runtime; without one
/// (a drop at process exit) the body is simply dropped.
pub fn discard(body: Incoming, bounds: Bounds) {
    if body.is_end_stream() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut body = body;
        let mut read = 0u64;
        let drained = async {
            while let Some(frame) =
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                let Ok(frame) = frame else { return };
                if let Some(d) = frame.data_ref() {
                    read += d.len() as u64;
                    if read > bounds.bytes {
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(bounds.time, drained).await;
    });
}

/// A client's request body that is discarded ([`discard`]), never simply
/// dropped, when regate lets go of it before its end.
pub struct Unread {
    body: Option<Incoming>,
    bounds: Bounds,
}

impl Unread {
    pub fn new(body: Incoming, bounds: Bounds) -> Self {
        Unread {
            body: Some(body),
            bounds,
        }
    }
}

impl Unread {
    /// Drops the body without reading it: for an HTTP/1.1 request that
    /// asked for `100 Continue` and got a final answer instead, whose
    /// client is not sending (reading would only wait for it).
    pub fn abandon(mut self) {
        self.body = None;
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            discard(body, self.bounds);
        }
    }
}

impl Body for Unread {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => http_body::SizeHint::with_exact(0),
        }
    }
}

/// A flag shared by a connection's requests and its [`Linger`] IO: set
/// when an answer was given while the client may still be sending, so the
/// close waits for the client even when nothing has arrived yet.
#[derive(Debug, Default)]
pub struct LingerFlag(AtomicBool);

impl LingerFlag {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Access to the TCP socket under a connection's layers (the lingering
/// read skips TLS: the bytes are thrown away).
pub trait RawTcp {
    fn tcp(&mut self) -> &mut TcpStream;
}

impl RawTcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&mut self) -> &mut TcpStream {
        self.get_mut().0
    }
}

impl<T: RawTcp + ?Sized> RawTcp for &mut T {
    fn tcp(&mut self) -> &mut TcpStream {
        (**self).tcp()
    }
}

impl RawTcp for TcpStream {
    fn tcp(&mut self) -> &mut TcpStream {
        self
    }
}

enum Phase {
    Open,
    /// Our side is shut down; reading what the client still sends.
    Draining {
        read: u64,
        until: Pin<Box<Sleep>>,
    },
    Done,
}

/// An IO whose shutdown is a lingering close (see the module doc).
pub struct Linger<T> {
    inner: T,
    flag: Arc<LingerFlag>,
    bounds: Bounds,
    phase: Phase,
}

impl<T> Linger<T> {
    pub fn new(inner: T, flag: Arc<LingerFlag>, bounds: Bounds) -> Self {
        Linger {
            inner,
            flag,
            bounds,
            phase: Phase::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Linger<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + RawTcp + Unpin> AsyncWrite for Linger<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Open => {
                    // TLS close_notify, then our FIN (TCP shutdown of the write half)
                    if let Err(e) = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(e));
                    }
                    let mut read = 0;
                    this.phase = match drain(this.inner.tcp(), cx, &mut read, this.bounds.bytes) {
                        Poll::Ready(()) => Phase::Done,
                        // nothing there and no reason to expect more: done
                        Poll::Pending if read == 0 && !this.flag.is_set() => Phase::Done,
                        Poll::Pending => Phase::Draining {
                            read,
                            until: Box::pin(sleep(this.bounds.time)),
                        },
                    };
                }
                Phase::Draining { read, until } => {
                    if until.as_mut().poll(cx).is_ready() {
                        this.phase = Phase::Done;
                        continue;
                    }
                    match drain(this.inner.tcp(), cx, read, this.bounds.bytes) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) => this.phase = Phase::Done,
                    }
                }
                Phase::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Reads and drops what is there; `Ready` on the client's end, an error or
/// the byte bound, `Pending` when the socket has nothing more for now.
fn drain(tcp: &mut TcpStream, cx: &mut Context<'_>, read: &mut u64, max: u64) -> Poll<()> {
    let mut scratch = [0u8; 8192];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *tcp).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {
                *read += buf.filled().len() as u64;
                if *read > max {
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// A lingering close for a connection served outside hyper (the HTTP/1.1
/// fast path): shut down, then drain as [`Linger`] does.
pub async fn close<T: AsyncWrite + RawTcp + Unpin>(io: T, flag: Arc<LingerFlag>, bounds: Bounds) {
    let mut l = Linger::new(io, flag, bounds);
    let _ = std::future::poll_fn(|cx| Pin::new(&mut l).poll_shutdown(cx)).await;
}
