//! Body wrappers for both directions. They stream (never buffer), count
//! bytes for the audit record, and enforce the limits hyper does not:
//! the request body's size cap and total deadline, and the upstream
//! response's total deadline (a trickling node is cut, and the client
//! stream aborted, instead of being relayed forever).
//!
//! The deadlines are lazy: the inner body is polled first, and a timer is
//! only armed once it has to wait (a body that is already there, the common
//! small response, costs no timer registration). A frame that arrives
//! after the deadline is still refused, so a node is cut at the deadline
//! measured from when the wrapper was created, whether it trickles or not.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::linger::Unread;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::time::{sleep_until, Instant, Sleep};

use crate::upstream::client::NodeBody;

/// Error type of both bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a streamed request body ended, for mapping upstream errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyEnd {
    Open = 0,
    Complete = 1,
    TooLarge = 2,
    TimedOut = 3,
    ClientError = 4,
}

/// Shared between the request body (owned by the upstream client) and
/// the pipeline (which writes the audit record).
#[derive(Debug, Default)]
pub struct Tally {
    bytes: AtomicU64,
    end: AtomicU8,
    digest: OnceLock<[u8; 32]>,
}

impl Tally {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn end(&self) -> BodyEnd {
        match self.end.load(Ordering::Relaxed) {
            1 => BodyEnd::Complete,
            2 => BodyEnd::TooLarge,
            3 => BodyEnd::TimedOut,
            4 => BodyEnd::ClientError,
            _ => BodyEnd::Open,
        }
    }

    /// SHA-256 of the whole body, when asked for and the body completed.
    pub fn digest(&self) -> Option<&[u8; 32]> {
        self.digest.get()
    }

    fn set_end(&self, e: BodyEnd) {
        self.end.store(e as u8, Ordering::Relaxed);
    }
}

/// Why a body stream was cut.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit")]
    TooLarge,
    #[error("request body not received in time")]
    RequestTimedOut,
    #[error("upstream response not completed in time")]
    ResponseTimedOut,
}

/// The body sent upstream.
pub struct RequestBody {
    inner: ReqInner,
}

enum ReqInner {
    Empty,
    Full(Option<Bytes>),
    Stream {
        body: Unread,
        limit: u64,
        seen: u64,
        deadline: Deadline,
        tally: Arc<Tally>,
        hasher: Option<Box<Sha256>>,
    },
}

impl RequestBody {
    pub fn empty() -> Self {
        RequestBody {
            inner: ReqInner::Empty,
        }
    }

    pub fn full(b: Bytes) -> Self {
        RequestBody {
            inner: ReqInner::Full(Some(b)),
        }
    }

    /// Streams `body` with a byte cap and a total deadline, counting into
    /// `tally` (and hashing into it when `digest`, for the audit record).
    pub fn stream(
        body: Unread,
        limit: u64,
        deadline: Duration,
        tally: Arc<Tally>,
        digest: bool,
    ) -> Self {
        RequestBody {
            inner: ReqInner::Stream {
                body,
                limit,
                seen: 0,
                deadline: Deadline::after(deadline),
                tally,
                hasher: digest.then(|| Box::new(Sha256::new())),
            },
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            ReqInner::Empty => Poll::Ready(None),
            ReqInner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqInner::Stream {
                body,
                limit,
                seen,
                deadline,
                tally,
                hasher,
            } => {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => {
                        if deadline.poll_expired(cx) {
                            tally.set_end(BodyEnd::TimedOut);
                            return Poll::Ready(Some(Err(BodyError::RequestTimedOut.into())));
                        }
                        Poll::Pending
                    }
                    Poll::Ready(None) => {
                        if let Some(h) = hasher.take() {
                            let _ = tally.digest.set(h.finalize().into());
                        }
                        tally.set_end(BodyEnd::Complete);
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tally.set_end(BodyEnd::ClientError);
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        if deadline.passed() {
                            tally.set_end(BodyEnd::TimedOut);
                            return Poll::Ready(Some(Err(BodyError::RequestTimedOut.into())));
                        }
                        if let Some(data) = frame.data_ref() {
                            if let Some(h) = hasher.as_mut() {
                                h.update(data);
                            }
                            *seen += data.len() as u64;
                            tally.bytes.store(*seen, Ordering::Relaxed);
                            if *seen > *limit {
                                tally.set_end(BodyEnd::TooLarge);
                                return Poll::Ready(Some(Err(BodyError::TooLarge.into())));
                            }
                        }
                        // the client library may stop polling once the body
                        // reports its end: settle the tally now
                        if body.is_end_stream() {
                            if let Some(h) = hasher.take() {
                                let _ = tally.digest.set(h.finalize().into());
                            }
                            tally.set_end(BodyEnd::Complete);
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            ReqInner::Empty => true,
            ReqInner::Full(b) => b.is_none(),
            ReqInner::Stream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            ReqInner::Empty => SizeHint::with_exact(0),
            ReqInner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqInner::Stream { body, .. } => body.size_hint(),
        }
    }
}

/// Called once when a response body is finished or dropped, with the
/// number of bytes sent and whether the stream completed.
pub trait OnDone: Send + 'static {
    fn done(self: Box<Self>, bytes_out: u64, complete: bool);
}

/// The body sent to the client.
pub struct ResponseBody {
    inner: RespInner,
    sent: u64,
    complete: bool,
    on_done: Option<Box<dyn OnDone>>,
    /// The request body of an early answer, let go (discarded) once the
    /// answer's head is written: its first poll, or its drop.
    unread: Option<ClientBody>,
}

enum RespInner {
    Full(Option<Bytes>),
    Upstream { body: NodeBody, deadline: Deadline },
}

impl ResponseBody {
    pub fn full(b: Bytes) -> Self {
        ResponseBody {
            inner: RespInner::Full(Some(b)),
            sent: 0,
            complete: false,
            on_done: None,
            unread: None,
        }
    }

    /// Relays a node's response body, cut `deadline` from now.
    pub fn upstream(body: NodeBody, deadline: Duration) -> Self {
        ResponseBody {
            inner: RespInner::Upstream {
                body,
                deadline: Deadline::after(deadline),
            },
            sent: 0,
            complete: false,
            on_done: None,
            unread: None,
        }
    }

    /// Keeps the unread request body of an early answer until the answer's
    /// head is written, then lets it be discarded ([`crate::linger`]):
    /// reading it sooner could make hyper send `100 Continue` first.
    pub fn discard_after_head(&mut self, body: ClientBody) {
        if !body.is_end_stream() {
            self.unread = Some(body);
        }
    }

    /// Registers the single exit hook (audit record + metrics).
    pub fn set_on_done(&mut self, d: Box<dyn OnDone>) {
        self.on_done = Some(d);
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(d) = self.on_done.take() {
            let complete = self.complete || self.is_end_stream();
            d.done(self.sent, complete);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.unread.is_some() {
            this.unread = None;
        }
        let polled = match &mut this.inner {
            RespInner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespInner::Upstream { body, deadline } => match Pin::new(body).poll_frame(cx) {
                Poll::Pending if deadline.poll_expired(cx) => {
                    return Poll::Ready(Some(Err(BodyError::ResponseTimedOut.into())));
                }
                Poll::Ready(Some(Ok(_))) if deadline.passed() => {
                    return Poll::Ready(Some(Err(BodyError::ResponseTimedOut.into())));
                }
                polled => polled,
            },
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            RespInner::Full(b) => b.is_none(),
            RespInner::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            RespInner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespInner::Upstream { body, .. } => body.size_hint(),
        }
    }
}

/// A total deadline whose timer is armed only when a body has to wait.
struct Deadline {
    at: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn after(d: Duration) -> Self {
        Deadline {
            at: Instant::now() + d,
            timer: None,
        }
    }

    /// Called when the body is pending: arms the timer (waking the task
    /// at the deadline) and reports whether the deadline has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let at = self.at;
        self.timer
            .get_or_insert_with(|| Box::pin(sleep_until(at)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }

    /// Whether the deadline has passed (a frame that is ready too late).
    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// A client's request body as the pipeline receives it: hyper's stream,
/// or none at all (the HTTP/1.1 fast path serves only bodyless requests).
pub enum ClientBody {
    Empty,
    Hyper(Unread),
}

impl ClientBody {
    /// Lets go of the body without reading it ([`Unread::abandon`]).
    pub fn abandon(self) {
        if let ClientBody::Hyper(b) = self {
            b.abandon();
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Hyper(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Hyper(b) => b.size_hint(),
        }
    }
}
