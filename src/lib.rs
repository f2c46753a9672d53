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
    pub gateway: Arc<Gateway>,
    pub connections: Arc<ConnTracker>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (up to `timeouts.drain`)
    /// and returns when the accept loop has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits for the accept loop to end (after a shutdown signal).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// A sender that triggers the shutdown (for signal handlers).
    pub fn take_stop(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

/// Binds `config.listen` and serves. Must run inside a Tokio runtime.
pub async fn start(config: Config) -> std::io::Result<Running> {
    for node in &config.upstream.nodes {
        if node.scheme == http::uri::Scheme::HTTP {
            tracing::warn!(node = %node.url, "upstream node uses plain HTTP: credentials and data cross the network unencrypted");
        }
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(Snapshot::build(config));
    let connections = ConnTracker::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(listener::serve(
        gateway.clone(),
        listener,
        connections.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(%addr, "regate listening");
    Ok(Running {
        addr,
        gateway,
        connections,
        stop: Some(stop_tx),
        task,
    })
}

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub async fn serve_until_signal(mut running: Running) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    if let Some(stop) = running.take_stop() {
        let _ = stop.send(());
    }
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}
