//! One client connection: the TLS handshake under its deadline, then by
//! ALPN either HTTP/2 through hyper's h2 server, or HTTP/1.1 on the
//! fast path ([`super::h1`]) until a request it does not serve hands the
//! connection to that same builder; hyper's connections run under a
//! watchdog that closes them when idle too long or when the gateway drains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::ClientBody;
use crate::config::Config;
use crate::context::{Activity, ConnInfo};
use crate::gateway::Gateway;
use crate::linger::{self, Linger, Unread};
use crate::{observe, pipeline};

use super::h1;
use super::h2_flood::FloodGuard;
use super::listener::ConnGuard;
use super::rewind::Rewind;
use super::tls::version_name;

/// The HTTP/2 settings, applied alike to hyper's h2 builder and to the auto
/// builder's h2 half (different types with the same setters). Resets: 20
/// pending-accept resets (rapid reset), 256 streams reset for a peer's
/// errors, then the connection is closed. No HTTP/2 PINGs: dead peers are
/// detected by the kernel (see `listener::tune`), which costs nothing per
/// frame.
macro_rules! h2_settings {
    ($b:expr, $cfg:expr) => {
        $b.timer(TokioTimer::new())
            .max_concurrent_streams($cfg.limits.max_h2_streams)
            .max_header_list_size($cfg.limits.max_header_bytes as u32)
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256))
    };
}

/// The HTTP server settings derived from the config (built once per
/// snapshot): HTTP/1.1 after a handover from the fast path, and h2 when a
/// client without ALPN sends the h2 preface there (prior knowledge).
pub fn http_builder(cfg: &Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.timeouts.request_header)
        .max_buf_size(cfg.limits.max_header_bytes.max(8192))
        .max_headers(cfg.limits.max_headers)
        .keep_alive(true)
        .half_close(false);
    h2_settings!(b.http2(), cfg);
    b
}

/// The server for connections that chose h2 by ALPN: hyper's h2 server
/// directly, without the auto builder's version sniff and its replay
/// wrapper on every read.
pub fn h2_builder(cfg: &Config) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    h2_settings!(b, cfg);
    b
}

/// Counts the connection in the open-connections gauge while alive.
struct OpenConn(Arc<Gateway>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// Serves one accepted TCP connection to completion.
pub async fn serve(
    gw: Arc<Gateway>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut drain: watch::Receiver<bool>,
    _guard: ConnGuard,
    worker: usize,
) {
    gw.metrics.connection_opened();
    let _open = OpenConn(gw.clone());
    let snap = gw.current_full();
    let acceptor = TlsAcceptor::from(snap.config.tls.clone());
    let tls = match tokio::time::timeout(snap.config.timeouts.tls_handshake, acceptor.accept(tcp))
        .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            gw.observer.tls_failure();
            gw.metrics.tls_handshake_failed();
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            gw.observer.tls_failure();
            gw.metrics.tls_handshake_failed();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let info = Arc::new(ConnInfo {
        peer,
        peer_header: HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown")),
        tls_version: version_name(session.protocol_version()),
        sni: session.server_name().map(Arc::from),
        h2: session.alpn_protocol() == Some(b"h2"),
        worker,
        activity: Activity::new(),
        auth_memo: crate::auth::AuthMemo::with_client_cert(
            session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| super::client_cert::read(leaf)),
        ),
        linger: Default::default(),
    });
    // The h2 preface is honoured only as the first bytes of a connection
    // that negotiated no ALPN: `http/1.1` by ALPN means HTTP/1.1 for good.
    let alpn_h1 = session.alpn_protocol() == Some(b"http/1.1");
    let idle = snap.config.timeouts.idle;
    let linger = snap.config.linger_bounds();
    let builder = snap.http.clone();
    let builder_h1 = snap.http1.clone();
    let h2 = info.h2.then(|| snap.h2.clone());
    let fast = h1::Settings::new(&snap.config);
    drop(snap);

    let svc_info = info.clone();
    let svc_gw = gw.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let gw = svc_gw.clone();
        let info = svc_info.clone();
        async move {
            let req = req.map(|b| ClientBody::Hyper(Unread::new(b, linger)));
            Ok::<_, Infallible>(Box::pin(pipeline::handle(gw, info, req)).await)
        }
    });
    if let Some(h2) = h2 {
        let conn = h2.serve_connection(TokioIo::new(FloodGuard::new(tls)), svc);
        Box::pin(drive(conn, &gw, &info, drain, idle)).await;
        return;
    }
    // HTTP/1.1: ordinary requests on the fast path, the rest through hyper
    let mut tls = tls;
    match h1::serve(&gw, &info, &mut tls, &mut drain, fast).await {
        h1::End::Closed => linger::close(&mut tls, info.linger.clone(), linger).await,
        h1::End::Handover { read, fresh } => {
            let io = Linger::new(Rewind::new(tls, read), info.linger.clone(), linger);
            let io = TokioIo::new(io);
            let conn = match fresh && !alpn_h1 {
                true => builder.serve_connection(io, svc),
                false => builder_h1.serve_connection(io, svc),
            };
            Box::pin(drive(conn, &gw, &info, drain, idle)).await;
        }
    }
}

/// Runs a hyper connection to its end, closing it gracefully when the
/// gateway drains or it has been idle for `idle`; a head hyper refused
/// is audited.
async fn drive<C>(
    conn: C,
    gw: &Gateway,
    info: &ConnInfo,
    mut drain: watch::Receiver<bool>,
    idle: Duration,
) where
    C: GracefulConnection,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let peer = info.peer;
    let mut draining = *drain.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let mut tick = tokio::time::interval(idle / 4);
    tick.tick().await;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                    // hyper answered an unparsable head itself: audit it
                    let status = e
                        .downcast_ref::<hyper::Error>()
                        .and_then(observe::parse_error_status);
                    if let Some(status) = status {
                        observe::malformed(gw, info, status).await;
                    }
                }
                return;
            }
            changed = drain.changed(), if !draining => {
                // a closed channel means the gateway is gone: drain too
                let _ = changed;
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick(), if !draining => {
                if info.activity.idle_for().is_some_and(|d| d >= idle) {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
