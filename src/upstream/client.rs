//! The pooled HTTP client towards the cluster nodes, one per worker
//! runtime, verifying node certificates against `upstream.ca` only
//! (clusters use their own CA; the public web PKI is deliberately not
//! trusted). HTTP/1.1 to the nodes, as the API serves it.
//!
//! Two paths, picked per request. Bodyless requests (the vast majority)
//! go inline ([`super::inline`]): the request's task writes and reads a
//! pooled connection itself. Requests with a body go through a pooled
//! `hyper::client::conn::http1` sender to its connection task on the same
//! runtime, which streams the body while it may already read an early
//! response. A sender is put back right after the response head; it is
//! reused only once hyper reports it ready again (the previous response
//! body fully read); closed or idle-expired ones are dropped on the way.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{header, HeaderValue, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::body::BoxError;
use crate::config::{ConfigError, Upstream};
use crate::server::tls::load_certs;

use super::framing::{self, HeadLimits, ProtocolError};
use super::inline::{self, InlinePool};
use super::inline_body::InlineBody;
use super::pool::{Check, IdlePool};
use super::stream::Connector;

/// The body type the gateway sends upstream.
pub type UpstreamBody = crate::body::RequestBody;

/// rustls client config trusting only `ca` (or nothing, for plain-HTTP-only setups).
pub fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in load_certs(ca, "upstream.ca")? {
            roots
                .add(cert)
                .map_err(|e| ConfigError::new("upstream.ca", format!("unusable CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::new("upstream", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // ALPN (http/1.1) is set by the client that uses it
    Ok(Arc::new(cfg))
}

/// Why a request to a node failed.
#[derive(Debug)]
pub enum ClientError {
    /// The request URI has no scheme/authority we can connect to.
    BadUri,
    /// TCP connect or TLS handshake failed (or timed out: kind `TimedOut`).
    Connect(std::io::Error),
    /// The HTTP exchange failed (hyper path).
    Http(hyper::Error),
    /// Reading or writing the connection failed (inline path).
    Io(std::io::Error),
    /// The node's response is not valid HTTP/1.1 (inline path).
    Protocol(ProtocolError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadUri => f.write_str("upstream URI without scheme or authority"),
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Http(e) => write!(f, "http: {e}"),
            ClientError::Io(e) => write!(f, "io: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ClientError::BadUri => None,
            ClientError::Connect(e) => Some(e),
            ClientError::Http(e) => Some(e),
            ClientError::Io(e) => Some(e),
            ClientError::Protocol(e) => Some(e),
        }
    }
}

/// The response body of a node: streamed by hyper (requests that had a
/// body) or read inline by the request's task (bodyless requests).
pub enum NodeBody {
    Hyper(Incoming),
    Inline(InlineBody),
}

impl Body for NodeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            NodeBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            NodeBody::Inline(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            NodeBody::Hyper(b) => b.is_end_stream(),
            NodeBody::Inline(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            NodeBody::Hyper(b) => b.size_hint(),
            NodeBody::Inline(b) => b.size_hint(),
        }
    }
}

/// The pooled client of one worker runtime.
pub struct HttpClient {
    connector: Connector,
    /// hyper connections, for requests with a body.
    senders: IdlePool<http1::SendRequest<UpstreamBody>>,
    /// Raw connections, for bodyless requests (shared with their bodies,
    /// which give the connection back).
    inline: Arc<InlinePool>,
    /// Response head limits, the same on both paths.
    limits: HeadLimits,
}

/// What the inline path yields.
type InlineResult = Result<Response<InlineBody>, ClientError>;

type Streamed<'a> =
    Pin<Box<dyn Future<Output = Result<Response<NodeBody>, ClientError>> + Send + 'a>>;

pin_project_lite::pin_project! {
    /// The future of [`HttpClient::request`].
    #[project = SendingProj]
    pub enum Sending<'a, F> {
        Inline { #[pin] fut: F },
        Streamed { fut: Streamed<'a> },
        Failed { err: Option<ClientError> },
    }
}

impl<F: Future<Output = InlineResult>> Future for Sending<'_, F> {
    type Output = Result<Response<NodeBody>, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SendingProj::Inline { fut } => fut
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(NodeBody::Inline))),
            SendingProj::Streamed { fut } => fut.as_mut().poll(cx),
            SendingProj::Failed { err } => {
                Poll::Ready(Err(err.take().unwrap_or(ClientError::BadUri)))
            }
        }
    }
}

/// Builds the pooled client, with the default response head limits.
pub fn build(up: &Upstream, connect_timeout: Duration) -> HttpClient {
    build_with(up, connect_timeout, HeadLimits::default())
}

/// Builds the pooled client with these response head limits.
pub fn build_with(up: &Upstream, connect_timeout: Duration, limits: HeadLimits) -> HttpClient {
    HttpClient {
        connector: Connector::new(up, connect_timeout),
        senders: IdlePool::new(up.pool_max_idle_per_node),
        inline: Arc::new(IdlePool::new(up.pool_max_idle_per_node)),
        limits,
    }
}

impl HttpClient {
    /// Sends `req` (absolute URI) to its node; `Host` is set from the
    /// node's authority when absent. Bodyless requests take the inline
    /// path; the others are streamed by hyper. Not an `async fn`, so the
    /// request is not carried in the future (twice) next to the path's
    /// own state.
    pub fn request(
        &self,
        req: Request<UpstreamBody>,
    ) -> Sending<'_, impl Future<Output = InlineResult> + '_> {
        let https = match req.uri().scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                return Sending::Failed {
                    err: Some(ClientError::BadUri),
                }
            }
        };
        if req.body().is_end_stream() {
            let fut = inline::send(&self.inline, &self.connector, req, https, self.limits);
            return Sending::Inline { fut };
        }
        // Boxed: hyper's state stays out of the bodyless requests' futures.
        Sending::Streamed {
            fut: Box::pin(self.request_streamed(req, https)),
        }
    }

    /// A request with a body, streamed by a pooled hyper connection.
    async fn request_streamed(
        &self,
        mut req: Request<UpstreamBody>,
        https: bool,
    ) -> Result<Response<NodeBody>, ClientError> {
        let uri = req.uri().clone();
        let authority = uri.authority().cloned().ok_or(ClientError::BadUri)?;
        if !req.headers().contains_key(header::HOST) {
            let host = host_header(&authority, https)?;
            req.headers_mut().insert(header::HOST, host);
        }
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);

        // the most recently used sender that is ready (its previous
        // response body fully read); closed ones are dropped
        let (node, pooled) = self.senders.take(https, &authority, |tx| {
            if tx.is_closed() {
                Check::Drop
            } else if tx.is_ready() {
                Check::Take
            } else {
                Check::Skip
            }
        });
        let mut tx = match pooled {
            Some(tx) => tx,
            None => self.handshake(https, &authority).await?,
        };
        let head_request = req.method() == Method::HEAD;
        let mut resp = tx.send_request(req).await.map_err(ClientError::Http)?;
        // the same head checks as the inline path, on the head hyper
        // parsed; a response that fails them, or was framed two ways,
        // leaves its connection unpooled (dropping the sender closes it)
        let (version, status) = (resp.version(), resp.status());
        let (_, keep_alive) = framing::check(status, version, resp.headers_mut(), head_request)
            .map_err(ClientError::Protocol)?;
        // kept while it may still be streaming the response body; over the
        // cap it finishes this response, then closes
        if keep_alive && !tx.is_closed() {
            self.senders.put(node, tx);
        }
        Ok(resp.map(NodeBody::Hyper))
    }

    /// A new hyper connection, driven by a task on this runtime.
    async fn handshake(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<http1::SendRequest<UpstreamBody>, ClientError> {
        let io = self.connector.connect(https, authority).await?;
        let (tx, conn) = http1::Builder::new()
            .max_headers(self.limits.max_headers)
            .max_header_size(self.limits.max_bytes)
            .handshake(TokioIo::new(io))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(tx)
    }
}

/// `Host` for a node: its authority, without a default port.
fn host_header(authority: &Authority, https: bool) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(host_text(authority, https)).map_err(|_| ClientError::BadUri)
}

/// The text of [`host_header`] (an `Authority` holds only valid characters).
pub(super) fn host_text(authority: &Authority, https: bool) -> &str {
    let default = if https { 443 } else { 80 };
    match authority.port_u16() {
        Some(p) if p == default => authority.host(),
        _ => authority.as_str(),
    }
}

/// Shorthand used by tests and the demo: bytes as an upstream body.
pub fn full(b: impl Into<Bytes>) -> UpstreamBody {
    crate::body::RequestBody::full(b.into())
}
