//! regate: an authenticating TLS gateway for the Redis Enterprise Software
//! REST API. The binary (`main.rs`) is a thin CLI over this library so that
//! tests and benches drive the real gateway in-process.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod ratelimit;
pub mod server;
pub mod sim;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use config::Config;
use gateway::{Gateway, Snapshot};
use server::listener::{self, ConnTracker};

/// A gateway serving in the background (tests, demo, `run`).
pub struct Running {
    pub addr: SocketAddr,
    /// The metrics/health listener, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    pub connections: Arc<ConnTracker>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (up to `timeouts.drain`),
    /// flushes the audit trail and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits for the gateway to stop (after a shutdown signal).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// A sender that triggers the shutdown (for signal handlers).
    pub fn take_stop(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

/// Binds the listeners and serves. Must run inside a Tokio runtime.
pub async fn start(config: Config) -> std::io::Result<Running> {
    for node in &config.upstream.nodes {
        if node.scheme == http::uri::Scheme::HTTP {
            tracing::warn!(node = %node.url, "upstream node uses plain HTTP: credentials and data cross the network unencrypted");
        }
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let audit = if config.audit.enabled {
        audit::AuditLog::open(config.audit.clone())?
    } else {
        audit::AuditLog::disabled()
    };
    let nodes: Vec<&str> = config.upstream.nodes.iter().map(|n| &*n.url).collect();
    let routes: Vec<&str> = config.policy.routes().map(|r| r.template).collect();
    let metrics = Arc::new(metrics::Metrics::new(&routes, &nodes).map_err(std::io::Error::other)?);
    metrics.attach_audit(audit.clone());
    let admin_listener = match config.metrics.enabled {
        true => Some(TcpListener::bind(config.metrics.listen).await?),
        false => None,
    };
    let snapshot = Snapshot::build(config, None).map_err(std::io::Error::other)?;
    let gateway = Gateway::new(snapshot, audit, metrics.clone());
    let connections = ConnTracker::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (admin_stop_tx, admin_stop_rx) = oneshot::channel::<()>();

    let metrics_addr = match admin_listener {
        Some(l) => {
            let a = l.local_addr()?;
            let weak = Arc::downgrade(&gateway);
            let ready: admin::Ready = Arc::new(move || {
                weak.upgrade()
                    .is_some_and(|g| g.current().balancer.up_count() > 0)
            });
            tokio::spawn(admin::serve(l, metrics.clone(), ready, async move {
                let _ = admin_stop_rx.await;
            }));
            Some(a)
        }
        None => None,
    };
    tokio::spawn(sync_gauges(Arc::downgrade(&gateway)));

    let gw = gateway.clone();
    let conns = connections.clone();
    let task = tokio::spawn(async move {
        listener::serve(gw.clone(), listener, conns, async move {
            let _ = stop_rx.await;
        })
        .await;
        // every request has finished (or the drain timed out): flush the trail
        gw.audit.shutdown().await;
        let _ = admin_stop_tx.send(());
    });
    tracing::info!(%addr, "regate listening");
    if let Some(m) = metrics_addr {
        tracing::info!(addr = %m, "metrics listening");
    }
    Ok(Running {
        addr,
        metrics_addr,
        gateway,
        connections,
        stop: Some(stop_tx),
        task,
    })
}

/// Once a second: copies counters kept elsewhere (auth cache, node health,
/// open connections) into the metrics registry, off the request path.
async fn sync_gauges(gw: std::sync::Weak<Gateway>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let (mut hits, mut misses) = (0u64, 0u64);
    loop {
        tick.tick().await;
        let Some(gw) = gw.upgrade() else { return };
        let snap = gw.current();
        let stats = snap.auth.stats();
        let (h, m) = (stats.cache_hits(), stats.cache_misses());
        // a reload builds a new authenticator whose counters restart at 0
        let (dh, dm) = if h < hits || m < misses {
            (h, m)
        } else {
            (h - hits, m - misses)
        };
        gw.metrics.auth_cache_add(dh, dm);
        (hits, misses) = (h, m);
        for (i, node) in snap.config.upstream.nodes.iter().enumerate() {
            gw.metrics.set_node_up(&node.url, snap.balancer.is_up(i));
        }
    }
}

/// Serves until SIGTERM or SIGINT, then drains and returns. SIGHUP reloads
/// the config (certificates, users, policy, limits) and reopens the audit
/// file (logrotate).
pub async fn serve_until_signal(mut running: Running) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                running.gateway.audit.reopen();
                let gw = running.gateway.clone();
                // loading may hash a dummy password: off the async workers
                let _ = tokio::task::spawn_blocking(move || gw.reload()).await;
            }
        }
    }
    if let Some(stop) = running.take_stop() {
        let _ = stop.send(());
    }
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}
