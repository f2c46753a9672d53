//! The pooled HTTP client towards the cluster nodes: a lean per-worker pool
//! of `hyper::client::conn::http1` connections (plain TCP, or rustls for
//! `https` nodes), verifying node certificates against `upstream.ca` only
//! (clusters use their own CA; the public web PKI is deliberately not
//! trusted). HTTP/1.1 to the nodes, as the API serves it.
//!
//! One client per worker runtime: a request goes straight through the
//! pooled `SendRequest` to the connection task on the same runtime (no
//! mpsc hop through a pool task, no task spawned per request). A sender is
//! put back right after the response head; it is reused only once hyper
//! reports it ready again (the previous response body fully read), closed
//! or idle-expired ones are dropped on the way.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{ConfigError, Upstream};
use crate::server::tls::load_certs;

/// The body type the gateway sends upstream.
pub type UpstreamBody = crate::body::RequestBody;

/// How long an unused pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The HTTP exchange failed.
    Http(hyper::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadUri => f.write_str("upstream URI without scheme or authority"),
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Http(e) => write!(f, "http: {e}"),
        }
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ClientError::BadUri => None,
            ClientError::Connect(e) => Some(e),
            ClientError::Http(e) => Some(e),
        }
    }
}

struct Pooled {
    tx: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// The connections of one node (scheme + authority).
struct NodePool {
    https: bool,
    authority: Authority,
    conns: VecDeque<Pooled>,
}

/// The pooled client of one worker runtime.
pub struct HttpClient {
    tls: TlsConnector,
    connect_timeout: Duration,
    max_per_node: usize,
    pools: Mutex<Vec<NodePool>>,
}

/// Builds the pooled client.
pub fn build(up: &Upstream, connect_timeout: Duration) -> HttpClient {
    let mut tls = (*up.tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    HttpClient {
        tls: TlsConnector::from(Arc::new(tls)),
        connect_timeout,
        max_per_node: up.pool_max_idle_per_node.max(1),
        pools: Mutex::new(Vec::new()),
    }
}

impl HttpClient {
    /// Sends `req` (absolute URI) to its node; `Host` is set from the
    /// node's authority when absent.
    pub async fn request(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, ClientError> {
        let uri = req.uri().clone();
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(ClientError::BadUri),
        };
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

        let mut tx = match self.checkout(https, &authority) {
            Some(tx) => tx,
            None => self.connect(https, &authority).await?,
        };
        let resp = tx.send_request(req).await.map_err(ClientError::Http)?;
        self.checkin(https, &authority, tx);
        Ok(resp)
    }

    /// A ready pooled connection to the node, dropping dead or expired ones.
    fn checkout(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let pool = pools
            .iter_mut()
            .find(|p| p.https == https && p.authority == *authority)?;
        let now = Instant::now();
        pool.conns
            .retain(|c| !c.tx.is_closed() && now.duration_since(c.since) < IDLE_TIMEOUT);
        // most recently used first: the warmest connection
        let i = pool.conns.iter().rposition(|c| c.tx.is_ready())?;
        pool.conns.remove(i).map(|c| c.tx)
    }

    /// Keeps `tx` for reuse (it may still be streaming the response body).
    fn checkin(&self, https: bool, authority: &Authority, tx: http1::SendRequest<UpstreamBody>) {
        if tx.is_closed() {
            return;
        }
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match pools
            .iter()
            .position(|p| p.https == https && p.authority == *authority)
        {
            Some(i) => i,
            None => {
                pools.push(NodePool {
                    https,
                    authority: authority.clone(),
                    conns: VecDeque::new(),
                });
                pools.len() - 1
            }
        };
        let pool = &mut pools[i];
        if pool.conns.len() >= self.max_per_node {
            // over the cap: the connection finishes this response, then closes
            return;
        }
        pool.conns.push_back(Pooled {
            tx,
            since: Instant::now(),
        });
    }

    /// A new connection (TCP, then TLS for https) under the connect timeout.
    async fn connect(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<http1::SendRequest<UpstreamBody>, ClientError> {
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let timed_out =
            || std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream connect timed out");
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Connect(timed_out()))?
            .map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
        let builder = http1::Builder::new();
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                ClientError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?;
            let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| ClientError::Connect(timed_out()))?
                .map_err(ClientError::Connect)?;
            let (tx, conn) = builder
                .handshake(TokioIo::new(tls))
                .await
                .map_err(ClientError::Http)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(tx)
        } else {
            let (tx, conn) = builder
                .handshake(TokioIo::new(tcp))
                .await
                .map_err(ClientError::Http)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(tx)
        }
    }
}

/// `Host` for a node: its authority, without a default port.
fn host_header(authority: &Authority, https: bool) -> Result<HeaderValue, ClientError> {
    let default = if https { 443 } else { 80 };
    let text = match authority.port_u16() {
        Some(p) if p == default => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(text).map_err(|_| ClientError::BadUri)
}

/// Shorthand used by tests and the demo: bytes as an upstream body.
pub fn full(b: impl Into<Bytes>) -> UpstreamBody {
    crate::body::RequestBody::full(b.into())
}
