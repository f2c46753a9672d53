//! The pooled HTTP client towards the cluster nodes: hyper-util's legacy
//! client over hyper-rustls, verifying node certificates against
//! `upstream.ca` only (clusters use their own CA; the public web PKI is
//! deliberately not trusted). HTTP/1.1 to the nodes, as the API serves it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{ConfigError, Upstream};
use crate::server::tls::load_certs;

/// The body type the gateway sends upstream.
pub type UpstreamBody = crate::body::RequestBody;

/// The client type used for forwarding.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

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
    // ALPN is set by hyper-rustls from the enabled HTTP versions
    Ok(Arc::new(cfg))
}

/// Builds the pooled client.
pub fn build(up: &Upstream, connect_timeout: std::time::Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*up.tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(up.pool_max_idle_per_node)
        .retry_canceled_requests(false)
        .set_host(true)
        .build(connector)
}

/// Shorthand used by tests and the demo: bytes as an upstream body.
pub fn full(b: impl Into<Bytes>) -> UpstreamBody {
    crate::body::RequestBody::full(b.into())
}
