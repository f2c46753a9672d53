//! The response body of the inline path: it serves the bytes already read
//! with the head first (a small response is one frame, no further read),
//! then reads the rest from the connection it owns, following the framing
//! of the head. When the body ends cleanly on a keep-alive response with
//! nothing extra buffered, the connection goes back to the worker's pool;
//! a body dropped early or failed takes the connection with it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::BoxError;

use super::framing::{Chunked, Framing, ProtocolError, Step};
use super::inline::{Conn, InlinePool};

/// Where a reusable connection goes back to: the pool and node index.
pub type Home = (Arc<InlinePool>, usize);

enum Kind {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the node closes.
    Close,
    Done,
    Failed,
}

/// A node's response body read on the request's own task.
pub struct InlineBody {
    conn: Option<Box<Conn>>,
    kind: Kind,
    /// `Some` while the connection may be reused (keep-alive response).
    home: Option<Home>,
}

/// What to do after looking at the buffered bytes.
enum Next {
    Frame(Bytes),
    Read,
    End,
    Fail(BoxError),
}

impl InlineBody {
    pub(super) fn new(conn: Box<Conn>, framing: Framing, home: Option<Home>) -> InlineBody {
        let kind = match framing {
            Framing::Length(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked(Chunked::default()),
            Framing::Close => Kind::Close,
        };
        let mut body = InlineBody {
            conn: Some(conn),
            kind,
            home,
        };
        if matches!(body.kind, Kind::Length(0)) {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool when
    /// the response allowed it.
    fn finish(&mut self) {
        self.kind = Kind::Done;
        if let (Some(mut conn), Some((pool, node))) = (self.conn.take(), self.home.take()) {
            // Bytes past the framing: the node sent more than it announced,
            // and they would be read as the next request's response.
            if conn.buf.is_empty() {
                conn.recycle();
                pool.put(node, conn);
            }
        }
    }

    fn fail(&mut self) {
        self.kind = Kind::Failed;
        self.conn = None;
        self.home = None;
    }
}

impl Body for InlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // what is buffered first: usually the whole body came with the head
            let next = match &mut this.kind {
                Kind::Done | Kind::Failed => Next::End,
                Kind::Length(remaining) if !conn.buf.is_empty() => {
                    let n = (*remaining).min(conn.buf.len() as u64);
                    *remaining -= n;
                    // n <= buf.len(): lossless
                    Next::Frame(conn.buf.split_to(n as usize).freeze())
                }
                Kind::Length(_) => Next::Read,
                Kind::Chunked(dec) => match dec.step(&mut conn.buf) {
                    Ok(Step::Data(d)) => Next::Frame(d),
                    Ok(Step::More) => Next::Read,
                    Ok(Step::Done) => Next::End,
                    Err(e) => Next::Fail(e.into()),
                },
                Kind::Close if !conn.buf.is_empty() => Next::Frame(conn.buf.split().freeze()),
                Kind::Close => Next::Read,
            };
            match next {
                Next::Frame(data) => {
                    // settle now: the server stops polling once the end is known
                    if matches!(this.kind, Kind::Length(0)) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Next::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Next::Fail(e) => {
                    this.fail();
                    return Poll::Ready(Some(Err(e)));
                }
                Next::Read => {}
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if matches!(this.kind, Kind::Close) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    this.fail();
                    return Poll::Ready(Some(Err(ProtocolError::Truncated.into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.fail();
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.kind {
            Kind::Length(n) => SizeHint::with_exact(n),
            Kind::Done => SizeHint::with_exact(0),
            Kind::Chunked(_) | Kind::Close | Kind::Failed => SizeHint::default(),
        }
    }
}
