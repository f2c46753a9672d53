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
//!
//! Both paths judge the node's response head with the same checks and
//! limits ([`super::framing::check`]); a response that fails them, or was
//! framed two ways, never leaves its connection in the pool. A failed
//! attempt says how far it got ([`Failed`]): whether a byte of the request
//! may have reached the node, and whether a byte of a response came back,
//! which is what decides a retry elsewhere (`upstream::forward`).

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

/// The CA verification of `ca` alone (SPKI pins are checked on top of it).
pub fn tls_verifier(ca: &Path) -> Result<Arc<rustls::client::WebPkiServerVerifier>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca, "upstream.ca")? {
        roots
            .add(cert)
            .map_err(|e| ConfigError::new("upstream.ca", format!("unusable CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| ConfigError::new("upstream.ca", format!("unusable CA: {e}")))
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

/// A failed attempt at one node, and how far it got: what decides whether
/// the request may go to another node.
#[derive(Debug)]
pub struct Failed {
    pub error: ClientError,
    /// Bytes of the request may have reached the node.
    pub written: bool,
    /// Bytes of a response had arrived.
    pub answered: bool,
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
type InlineResult = Result<Response<InlineBody>, Failed>;

type Attempted<'a> = Pin<Box<dyn Future<Output = Result<Response<NodeBody>, Failed>> + Send + 'a>>;

pin_project_lite::pin_project! {
    /// The future of [`HttpClient::attempt`].
    #[project = AttemptProj]
    pub enum Attempt<'a, F> {
        Inline { #[pin] fut: F },
        Streamed { fut: Attempted<'a> },
        Failed { err: Option<Failed> },
    }
}

impl<F: Future<Output = InlineResult>> Future for Attempt<'_, F> {
    type Output = Result<Response<NodeBody>, Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AttemptProj::Inline { fut } => fut
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(NodeBody::Inline))),
            AttemptProj::Streamed { fut } => fut.as_mut().poll(cx),
            AttemptProj::Failed { err } => Poll::Ready(Err(err.take().unwrap_or(Failed {
                error: ClientError::BadUri,
                written: false,
                answered: false,
            }))),
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
    /// path; the others are streamed by hyper. One attempt, no retry (the
    /// health checks' probes; the gateway's requests use [`Self::attempt`]).
    pub async fn request(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<NodeBody>, ClientError> {
        let mut slot = Some(req);
        self.attempt(&mut slot).await.map_err(|f| f.error)
    }

    /// One attempt at the node `slot`'s request URI names. The request
    /// stays in `slot` when it can be sent again: a bodyless one always
    /// (it is encoded, not consumed), one with a body only when not a
    /// byte of it was written (connect or TLS failure, or a pooled
    /// connection hyper found closed before sending). A plain function
    /// returning a small future, as [`HttpClient::request`].
    pub fn attempt<'a>(
        &'a self,
        slot: &'a mut Option<Request<UpstreamBody>>,
    ) -> Attempt<'a, impl Future<Output = InlineResult> + 'a> {
        let bad_uri = || Failed {
            error: ClientError::BadUri,
            written: false,
            answered: false,
        };
        let https = match slot.as_ref().and_then(|r| r.uri().scheme()) {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => {
                return Attempt::Failed {
                    err: Some(bad_uri()),
                }
            }
        };
        match slot {
            Some(req) if req.body().is_end_stream() => Attempt::Inline {
                fut: inline::send(&self.inline, &self.connector, req, https, self.limits),
            },
            _ => Attempt::Streamed {
                fut: Box::pin(async move {
                    let req = slot.take().ok_or_else(bad_uri)?;
                    match self.request_streamed(req, https).await {
                        Ok(resp) => Ok(resp),
                        Err((failed, back)) => {
                            *slot = back;
                            Err(failed)
                        }
                    }
                }),
            },
        }
    }

    /// A request with a body, streamed by a pooled hyper connection. On
    /// failure, the request comes back when none of it was written (with
    /// its absolute URI and no `Host` added, as it came in).
    async fn request_streamed(
        &self,
        mut req: Request<UpstreamBody>,
        https: bool,
    ) -> Result<Response<NodeBody>, (Failed, Option<Request<UpstreamBody>>)> {
        let uri = req.uri().clone();
        let unsent = |error, req| {
            (
                Failed {
                    error,
                    written: false,
                    answered: false,
                },
                Some(req),
            )
        };
        let Some(authority) = uri.authority().cloned() else {
            return Err(unsent(ClientError::BadUri, req));
        };
        let host = match host_header(&authority, https) {
            Ok(h) => h,
            Err(e) => return Err(unsent(e, req)),
        };

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
            None => match self.handshake(https, &authority).await {
                Ok(tx) => tx,
                Err(e) => return Err(unsent(e, req)),
            },
        };
        let head_request = req.method() == Method::HEAD;
        // the relative form goes to the node; the request comes back in
        // its absolute form when hyper did not send it
        let added_host = !req.headers().contains_key(header::HOST);
        if added_host {
            req.headers_mut().insert(header::HOST, host);
        }
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
        let mut resp = match tx.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => {
                let back = e.take_message().map(|mut r| {
                    *r.uri_mut() = uri;
                    if added_host {
                        r.headers_mut().remove(header::HOST);
                    }
                    r
                });
                let err = e.into_error();
                let answered = err.is_parse() || err.is_parse_status() || err.is_parse_too_large();
                return Err((
                    Failed {
                        error: ClientError::Http(err),
                        written: back.is_none(),
                        answered,
                    },
                    back,
                ));
            }
        };
        // the same head checks as the inline path, on the head hyper
        // parsed; a response that fails them, or was framed two ways,
        // leaves its connection unpooled (dropping the sender closes it)
        let (version, status) = (resp.version(), resp.status());
        let (_, keep_alive) = framing::check(status, version, resp.headers_mut(), head_request)
            .map_err(|e| {
                let failed = Failed {
                    error: ClientError::Protocol(e),
                    written: true,
                    answered: true,
                };
                (failed, None)
            })?;
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
