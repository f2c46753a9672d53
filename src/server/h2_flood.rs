//! A guard on HTTP/2 connections against control-frame floods
//! (SECURITY.md F7): h2 answers every PING and acknowledges every SETTINGS
//! frame, keeping one PONG pending at a time, so memory stays bounded but
//! a peer can make the gateway spend CPU and bandwidth forever (2,000
//! PINGs in a row were all answered, no GOAWAY). hyper and h2 expose no
//! limit for either.
//!
//! [`FloodGuard`] wraps the connection's IO and reads the frame headers
//! going by (9 bytes each; payloads are skipped, never parsed). PING and
//! SETTINGS frames that are not acknowledgements spend a token of a
//! per-connection bucket ([`BURST`], refilled at [`PER_SECOND`]). When it
//! runs dry the guard writes `GOAWAY(ENHANCE_YOUR_CALM)` between two of
//! h2's frames and ends the connection's input, so h2 closes it. The
//! outgoing frame boundaries are followed the same way, so the GOAWAY
//! never lands inside another frame (if h2 is mid-frame at that moment,
//! the connection is closed without it).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Control frames a connection may send at once.
pub const BURST: f64 = 100.0;
/// Control frames per second a connection may send in the long run.
pub const PER_SECOND: f64 = 10.0;

const PREFACE_LEN: usize = 24;
const TYPE_SETTINGS: u8 = 0x4;
const TYPE_PING: u8 = 0x6;
const TYPE_HEADERS: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Follows frame boundaries in one direction of an h2 byte stream.
#[derive(Debug, Default)]
struct Frames {
    /// Bytes still to skip before the next frame header (the client preface).
    skip: usize,
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
}

impl Frames {
    fn with_preface() -> Self {
        Frames {
            skip: PREFACE_LEN,
            ..Frames::default()
        }
    }

    /// Between two frames (nothing of a frame half seen).
    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.head_len == 0 && self.payload_left == 0
    }

    /// Feeds bytes; calls `on_head(type, flags, stream)` for each complete
    /// frame header.
    fn feed(&mut self, mut bytes: &[u8], mut on_head: impl FnMut(u8, u8, u32)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len == 9 {
                    let h = self.head;
                    self.head_len = 0;
                    self.payload_left =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    on_head(h[3], h[4], stream);
                }
            }
        }
    }
}

/// A token bucket of control frames.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The IO of an h2 connection, with the flood guard (see the module doc).
pub struct FloodGuard<T> {
    inner: T,
    incoming: Frames,
    outgoing: Frames,
    bucket: Bucket,
    last_stream: u32,
    /// Set when the bucket ran dry: the GOAWAY to write, and how much is out.
    goaway: Option<([u8; 17], usize)>,
}

impl<T> FloodGuard<T> {
    pub fn new(inner: T) -> Self {
        FloodGuard {
            inner,
            incoming: Frames::with_preface(),
            outgoing: Frames::default(),
            bucket: Bucket {
                tokens: BURST,
                at: Instant::now(),
            },
            last_stream: 0,
            goaway: None,
        }
    }
}

fn goaway_frame(last_stream: u32) -> [u8; 17] {
    let mut f = [0u8; 17];
    f[2] = 8; // length
    f[3] = 0x7; // GOAWAY, no flags, stream 0
    f[9..13].copy_from_slice(&last_stream.to_be_bytes());
    f[13..17].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    f
}

impl<T: AsyncRead + AsyncWrite + Unpin> FloodGuard<T> {
    /// Writes the pending GOAWAY (when h2 is between frames); `Ready` once
    /// the connection's input may end.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((frame, sent)) = self.goaway.as_mut() else {
            return Poll::Ready(());
        };
        if *sent == 0 && !self.outgoing.at_boundary() {
            return Poll::Ready(());
        }
        while *sent < frame.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &frame[*sent..]) {
                Poll::Ready(Ok(n)) if n > 0 => *sent += n,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(()),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FloodGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.goaway.is_some() {
            // the peer's input ends here: h2 closes the connection
            std::task::ready!(this.poll_goaway(cx));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let (mut flooded, mut last) = (false, this.last_stream);
        let bucket = &mut this.bucket;
        this.incoming
            .feed(&buf.filled()[before..], |kind, flags, stream| match kind {
                TYPE_PING | TYPE_SETTINGS if flags & FLAG_ACK == 0 => {
                    flooded |= !bucket.take();
                }
                TYPE_HEADERS => last = last.max(stream),
                _ => {}
            });
        this.last_stream = last;
        if flooded {
            tracing::debug!(
                "h2 control-frame flood (PING/SETTINGS): GOAWAY(ENHANCE_YOUR_CALM), closing"
            );
            this.goaway = Some((goaway_frame(last), 0));
            // what was read this time is not handed on: end the input now
            buf.set_filled(before);
            std::task::ready!(this.poll_goaway(cx));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FloodGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.outgoing.feed(&data[..n], |_, _, _| {});
        Poll::Ready(Ok(n))
    }

    /// h2 writes a frame head and its payload as separate slices: without
    /// this, each would be a write (and a TLS record) of its own.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            this.outgoing.feed(&b[..take], |_, _, _| {});
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_heads_are_found_across_reads() {
        let mut f = Frames::with_preface();
        let mut seen = Vec::new();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
        bytes.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]); // PING
        bytes.extend_from_slice(&[1; 8]);
        bytes.extend_from_slice(&[0, 0, 3, 1, 4, 0, 0, 0, 5, 9, 9, 9]); // HEADERS 5
        for chunk in bytes.chunks(5) {
            f.feed(chunk, |t, fl, s| seen.push((t, fl, s)));
        }
        assert_eq!(seen, [(4, 0, 0), (6, 0, 0), (1, 4, 5)]);
        assert!(f.at_boundary());
        f.feed(&[0, 0, 8, 6], |_, _, _| {});
        assert!(!f.at_boundary());
    }

    #[test]
    fn goaway_is_enhance_your_calm() {
        let g = goaway_frame(7);
        assert_eq!(&g[..9], &[0, 0, 8, 7, 0, 0, 0, 0, 0]);
        assert_eq!(&g[9..], &[0, 0, 0, 7, 0, 0, 0, 0xb]);
    }
}
