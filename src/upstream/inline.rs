//! The inline HTTP/1.1 path for requests without a body (GET, HEAD,
//! DELETE...): the request's own task takes a pooled connection for
//! itself, writes the request head with one write, and reads the response
//! head; the body ([`InlineBody`]) then reads the rest and gives the
//! connection back. No spawned connection task, no channel hop.
//!
//! A pooled connection the node closed while idle is caught before use
//! when its end already arrived, and otherwise retried once on a fresh
//! connection when not a single response byte came back and the request
//! may be repeated (see [`send`]): a written request is re-sent only when
//! its method is GET, HEAD or OPTIONS. Requests with a body never come
//! here (hyper streams those).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::uri::Authority;
use http::{header, Method, Request, Response};
use tokio::io::AsyncWriteExt;
use tokio_util::io::poll_read_buf;

use super::client::{host_text, ClientError, Failed, UpstreamBody};
use super::framing::{self, Head, HeadLimits};
use super::inline_body::InlineBody;
use super::pool::{Check, IdlePool};
use super::stream::{Connector, NodeStream};

/// Read buffer of a new connection: holds a typical head and small body.
const INITIAL_READ: usize = 4 * 1024;
/// Largest single read of a body (reads grow towards it while they fill up).
const MAX_READ: usize = 64 * 1024;

/// The idle inline connections of one worker.
pub type InlinePool = IdlePool<Box<Conn>>;

/// One connection to a node, owned by one request at a time.
pub struct Conn {
    io: NodeStream,
    /// Bytes received and not consumed yet.
    pub(super) buf: BytesMut,
    /// The encoded request head, reused from request to request.
    wbuf: Vec<u8>,
    /// Spare room ensured before each body read (adaptive).
    read_size: usize,
}

impl Conn {
    fn new(io: NodeStream) -> Box<Conn> {
        Box::new(Conn {
            io,
            buf: BytesMut::with_capacity(INITIAL_READ),
            wbuf: Vec::with_capacity(512),
            read_size: INITIAL_READ,
        })
    }

    /// Reads what the node sent into `buf`; `Ok(0)` is its end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let want = self.read_size;
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        // a read that filled the room suggests more is waiting: read more next time
        if n >= room && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        Poll::Ready(Ok(n))
    }

    /// Readies the connection for the idle pool: the buffers of a large
    /// response are not kept while idle.
    pub(super) fn recycle(&mut self) {
        if self.read_size > INITIAL_READ || self.buf.capacity() > 4 * INITIAL_READ {
            self.read_size = INITIAL_READ;
            self.buf = BytesMut::with_capacity(INITIAL_READ);
        }
    }

    /// Whether an idle connection must not be reused: the node closed it,
    /// sent bytes nobody asked for, or it failed. A poll that does not
    /// wait (no syscall unless the socket reported activity).
    fn is_stale(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(INITIAL_READ);
        }
        poll_read_buf(Pin::new(&mut self.io), &mut cx, &mut self.buf).is_ready()
    }
}

/// How an exchange on one connection failed.
enum Failure {
    /// Nothing came back, and the node may have closed the connection
    /// before it saw the request (`written`: bytes of it were sent).
    Stale { written: bool, err: io::Error },
    /// Anything else, after the request was written; `answered`: bytes of
    /// a response had arrived.
    Other { err: ClientError, answered: bool },
}

/// Sends a bodyless `req` (absolute URI) and reads the response head.
///
/// The retry: a pooled connection can be closed by the node at the very
/// moment it is reused. When that connection yields nothing at all (the
/// write fails, or EOF/reset before the first response byte), the request
/// goes once more over a fresh connection: always when not one byte of it
/// was written, and only for GET, HEAD and OPTIONS when some was. In this
/// API a bodyless PUT is an action and DELETE is destructive: a node may
/// have acted on them before it closed, so they are never replayed.
///
/// Not an `async fn`: the request is encoded here, before the future
/// exists (into the connection's buffer), so the future carries ~100
/// bytes of state and no borrow of the request, which the caller keeps to
/// send again (to another node) when that is safe.
pub fn send<'a>(
    pool: &'a Arc<InlinePool>,
    connector: &'a Connector,
    req: &Request<UpstreamBody>,
    https: bool,
    limits: HeadLimits,
) -> impl std::future::Future<Output = Result<Response<InlineBody>, Failed>> + 'a {
    let prepared = prepare(pool, req, https, limits);
    async move {
        let prepared = prepared.map_err(|error| Failed {
            error,
            written: false,
            answered: false,
        })?;
        exchange_prepared(pool, connector, prepared).await
    }
}

/// A request reduced to what the exchange needs: its encoded head (in the
/// pooled connection's buffer, or in `head` until a connection exists).
struct Prepared {
    authority: Authority,
    https: bool,
    head_request: bool,
    idempotent: bool,
    limits: HeadLimits,
    node: usize,
    conn: Option<Box<Conn>>,
    head: Vec<u8>,
}

fn prepare(
    pool: &InlinePool,
    req: &Request<UpstreamBody>,
    https: bool,
    limits: HeadLimits,
) -> Result<Prepared, ClientError> {
    let authority = req.uri().authority().cloned().ok_or(ClientError::BadUri)?;
    let (node, mut conn) = pool.take(https, &authority, |c| {
        if c.is_stale() {
            Check::Drop
        } else {
            Check::Take
        }
    });
    let mut head = Vec::new();
    let out = match conn.as_mut() {
        Some(c) => &mut c.wbuf,
        None => &mut head,
    };
    encode(out, req, host_text(&authority, https));
    Ok(Prepared {
        https,
        head_request: req.method() == Method::HEAD,
        idempotent: repeatable(req.method()),
        limits,
        authority,
        node,
        conn,
        head,
    })
}

async fn exchange_prepared(
    pool: &Arc<InlinePool>,
    connector: &Connector,
    p: Prepared,
) -> Result<Response<InlineBody>, Failed> {
    let Prepared {
        authority,
        https,
        head_request,
        idempotent,
        limits,
        node,
        conn,
        head,
    } = p;
    // Send after the rest of this scheduler tick: the requests that became
    // ready together reach the node together. A node on the same core
    // otherwise wakes (and preempts the gateway) once per request; batched,
    // it serves ~2 per wake-up (harness, node on the same core: 0.74 -> 0.47
    // context switches and 17.4 -> 15.9 us CPU per request). Costs one
    // extra poll of this task, and on an idle worker one non-blocking poll
    // for I/O before the write (a few us).
    tokio::task::yield_now().await;
    let not_written = |error| Failed {
        error,
        written: false,
        answered: false,
    };
    let (mut conn, mut reused) = match conn {
        Some(c) => (c, true),
        None => {
            let io = connect(connector, https, &authority)
                .await
                .map_err(not_written)?;
            let mut fresh = Conn::new(io);
            fresh.wbuf = head;
            (fresh, false)
        }
    };
    loop {
        match exchange(&mut conn, head_request, limits).await {
            Ok(head) => {
                let Head {
                    response,
                    framing,
                    keep_alive,
                } = head;
                let home = keep_alive.then(|| (pool.clone(), node));
                return Ok(response.map(|()| InlineBody::new(conn, framing, home)));
            }
            Err(Failure::Stale { written, err }) => {
                if !reused || (written && !idempotent) {
                    return Err(Failed {
                        error: ClientError::Io(err),
                        written,
                        answered: false,
                    });
                }
                tracing::debug!(error = %err, "pooled upstream connection was closed; retrying once");
                let io = connect(connector, https, &authority)
                    .await
                    .map_err(|error| Failed {
                        error,
                        written,
                        answered: false,
                    })?;
                let mut fresh = Conn::new(io);
                std::mem::swap(&mut fresh.wbuf, &mut conn.wbuf);
                conn = fresh;
                reused = false;
            }
            Err(Failure::Other { err, answered }) => {
                return Err(Failed {
                    error: err,
                    written: true,
                    answered,
                })
            }
        }
    }
}

/// Methods a written request may be sent again for (RFC 9110 §9.2.1 safe
/// methods): PUT and DELETE are idempotent on paper, but this API's bodyless
/// PUTs are actions (`/actions/rebalance`) and DELETE destroys.
pub fn repeatable(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A new connection to the node. Boxed: the connect state (TCP, TLS
/// handshake, deadline) is needed once per connection, not in every
/// request's future.
async fn connect(
    connector: &Connector,
    https: bool,
    authority: &Authority,
) -> Result<NodeStream, ClientError> {
    Box::pin(connector.connect(https, authority)).await
}

/// Writes the request head, then reads until a final response head.
async fn exchange(
    conn: &mut Conn,
    head_request: bool,
    limits: HeadLimits,
) -> Result<Head, Failure> {
    // Bytes the transport accepted may have reached the node: only a
    // write that failed before any was accepted leaves nothing written.
    let mut sent = 0;
    let written = async {
        while sent < conn.wbuf.len() {
            match conn.io.write(&conn.wbuf[sent..]).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => sent += n,
            }
        }
        conn.io.flush().await
    };
    if let Err(err) = written.await {
        return Err(Failure::Stale {
            written: sent > 0,
            err,
        });
    }
    let mut received = 0;
    loop {
        if !conn.buf.is_empty() {
            match framing::parse_head(&mut conn.buf, head_request, limits) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Other {
                        err: ClientError::Protocol(e),
                        answered: true,
                    })
                }
            }
        }
        match poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) if received == 0 => {
                return Err(Failure::Stale {
                    written: true,
                    err: io::Error::new(io::ErrorKind::UnexpectedEof, "node closed the connection"),
                })
            }
            Ok(0) => {
                return Err(Failure::Other {
                    err: ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "node closed the connection mid-head",
                    )),
                    answered: true,
                })
            }
            Ok(n) => received += n,
            Err(err) if received == 0 && dropped(&err) => {
                return Err(Failure::Stale { written: true, err })
            }
            Err(err) => {
                return Err(Failure::Other {
                    err: ClientError::Io(err),
                    answered: received > 0,
                })
            }
        }
    }
}

/// Errors that mean the peer had closed the connection.
fn dropped(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// `METHOD path?query HTTP/1.1`, `host` (when the request has none), the
/// request's headers, a blank line: into `out`, replacing what it held.
/// Bodyless, so no framing header (hyper sends none for an empty body
/// either); a `Transfer-Encoding` would promise a body and is left out.
fn encode(out: &mut Vec<u8>, req: &Request<UpstreamBody>, host: &str) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    match req.uri().path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => out.extend_from_slice(pq.as_str().as_bytes()),
        _ => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers().contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.headers() {
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::RequestBody;

    #[test]
    fn request_head_bytes() {
        let req = Request::builder()
            .method("DELETE")
            .uri("https://n1:9443/v1/bdbs/7?force=1")
            .header("authorization", "Basic eA==")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("transfer-encoding", "chunked")
            .body(RequestBody::empty())
            .unwrap();
        let mut out = b"stale".to_vec();
        encode(&mut out, &req, "n1:9443");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "DELETE /v1/bdbs/7?force=1 HTTP/1.1\r\nhost: n1:9443\r\nauthorization: Basic eA==\r\n\
             x-multi: a\r\nx-multi: b\r\n\r\n"
        );
        let req = Request::builder()
            .uri("http://n1")
            .header("host", "given")
            .body(RequestBody::empty())
            .unwrap();
        let mut out = Vec::new();
        encode(&mut out, &req, "n1");
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: given\r\n\r\n");
    }
}
