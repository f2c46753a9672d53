//! The admin listener: plain HTTP/1.1 on its own (loopback by default)
//! address, apart from the client port, serving `/metrics` (Prometheus
//! text), `/healthz` (200 while the process runs) and `/readyz` (200 when
//! the readiness closure says so, else 503). Anything else is 404; no
//! request here is ever forwarded or authenticated. Also the `[metrics]`
//! config section ([`MetricsConfig`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ConfigError;
use crate::metrics::Metrics;

/// Concurrent admin connections; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;
/// Deadline for a request head on the admin port.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a shutdown waits for in-flight scrapes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// `[metrics]` as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve the admin listener at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address of the admin listener. Default `"127.0.0.1:9464"`. It has no
    /// authentication: keep it on loopback or a private network.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: default_listen(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

/// The validated `[metrics]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl MetricsConfig {
    /// Checks the keys; errors name them (`metrics.listen`).
    pub fn validate(&self) -> Result<MetricsSettings, Vec<ConfigError>> {
        match self.listen.parse::<SocketAddr>() {
            Ok(listen) => Ok(MetricsSettings {
                enabled: self.enabled,
                listen,
            }),
            Err(_) => Err(vec![ConfigError::new(
                "metrics.listen",
                format!("`{}` is not an IP:port address", self.listen),
            )]),
        }
    }
}

/// Readiness: config loaded and at least one node healthy.
pub type Ready = Arc<dyn Fn() -> bool + Send + Sync>;

/// Serves the admin endpoints on `listener` until `shutdown` completes,
/// then lets in-flight requests finish (up to 5 s) and returns.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Ready,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropping the stream closes it
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        let service = service_fn(move |req| {
            let resp = respond(&req, &metrics, &ready);
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// The whole routing table of the admin port.
fn respond<B>(req: &Request<B>, metrics: &Metrics, ready: &Ready) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match path {
        "/metrics" => {
            let body = metrics.render();
            let gzip = accepts_gzip(req.headers());
            let body = match gzip.then(|| gzip_bytes(body.as_bytes())).flatten() {
                Some(z) => z,
                None => Bytes::from(body),
            };
            let mut resp = Response::new(Full::new(body));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        }
        "/readyz" if ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::OK, "ok\n"),
    }
}

/// True when `Accept-Encoding` lists `gzip` (or `*`) without `q=0`, as
/// Prometheus sends it: the exposition shrinks about tenfold.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// The gzip stream of `data` (fast level: a scrape is compressed each time).
fn gzip_bytes(data: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    z.write_all(data).ok()?;
    z.finish().ok().map(Bytes::from)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let cfg: MetricsConfig = toml::from_str("").unwrap();
        let s = cfg.validate().unwrap();
        assert_eq!(s.listen, "127.0.0.1:9464".parse().unwrap());
        assert!(s.enabled);
        let bad: MetricsConfig = toml::from_str("listen = \"localhost\"").unwrap();
        assert_eq!(bad.validate().unwrap_err()[0].key, "metrics.listen");
        assert!(toml::from_str::<MetricsConfig>("port = 1").is_err());
    }

    #[test]
    fn gzip_is_used_when_the_scraper_accepts_it() {
        let accepts = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(accepts("gzip"));
        assert!(accepts("deflate, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
    }
}
