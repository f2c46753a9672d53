//! regate: an authenticating TLS gateway for the Redis Enterprise Software
//! REST API. The binary (`main.rs`) is a thin CLI over this library so that
//! tests and benches drive the real gateway in-process.
#![forbid(unsafe_code)]
// Nothing a client, a file or the network controls may panic the gateway:
// outside tests, every fallible step is handled, never unwrapped.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod context;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod linger;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod ops;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod ratelimit;
pub mod server;
pub mod sim;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
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
    /// Set when a shutdown begins: `/readyz` answers 503 from then on.
    draining: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (up to `timeouts.drain`),
    /// flushes the audit trail and returns.
    pub async fn shutdown(mut self) {
        self.begin_drain();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits for the gateway to stop (after a shutdown signal).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// Marks the gateway as going away: `/readyz` answers 503 while the
    /// listener keeps serving (the `shutdown_delay` before the drain).
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// A sender that triggers the shutdown (for signal handlers).
    pub fn take_stop(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

/// Binds the listeners and serves on the calling runtime. Must run inside
/// a Tokio runtime (any flavour: the tests use a multi-thread one).
pub async fn start(config: Config) -> std::io::Result<Running> {
    start_workers(config, 1).await
}

/// Like [`start`], with `workers` accept loops: the calling runtime is
/// worker 0, and each other worker is an OS thread running its own
/// current-thread runtime with its own `SO_REUSEPORT` listener on the same
/// address, so a connection lives on one thread from accept to close (no
/// work stealing, no cross-thread wake-ups). All workers share the
/// [`Gateway`] (snapshot, audit, metrics, connection caps); each has its own
/// upstream client pool.
pub async fn start_workers(config: Config, workers: usize) -> std::io::Result<Running> {
    start_with(config, workers, None).await
}

/// Like [`start_workers`], serving on `inherited` (a listening socket
/// passed by systemd's socket activation) instead of binding
/// `server.listen`; every worker accepts on a clone of it.
pub async fn start_with(
    config: Config,
    workers: usize,
    inherited: Option<std::net::TcpListener>,
) -> std::io::Result<Running> {
    let workers = workers.max(1);
    // version, revision, config, nodes, policy mode; risky settings
    ops::startup::log_start(&config);
    let listen = config.listen;
    // Before any port: a trail locked by another regate refuses the start.
    let audit = if config.audit.enabled {
        audit::AuditLog::open(config.audit.clone()).map_err(|e| match &config.audit.sink {
            audit::config::SinkSettings::File { path, .. } => std::io::Error::new(
                e.kind(),
                format!(
                    "cannot open the audit file {} (audit.path): {e}",
                    path.display()
                ),
            ),
            _ => e,
        })?
    } else {
        audit::AuditLog::disabled()
    };
    let (listener, inherited) = match (inherited, workers) {
        (Some(l), _) => {
            let local = l.local_addr()?;
            if local != listen {
                tracing::info!(passed = %local, %listen, "socket activation: serving on the passed socket, not server.listen");
            }
            (TcpListener::from_std(l.try_clone()?)?, Some(l))
        }
        (None, 1) => (
            TcpListener::bind(listen)
                .await
                .map_err(|e| listener::bind_error(listen, "server.listen", e))?,
            None,
        ),
        (None, _) => (listener::bind_workers(listen)?, None),
    };
    let addr = listener.local_addr()?;
    let nodes: Vec<&str> = config.upstream.nodes.iter().map(|n| &*n.url).collect();
    let routes: Vec<&str> = config.policy.routes().map(|r| r.template).collect();
    let metrics = Arc::new(metrics::Metrics::new(&routes, &nodes).map_err(std::io::Error::other)?);
    metrics.attach_audit(audit.clone());
    let admin_listener = match config.metrics.enabled {
        true => Some(
            TcpListener::bind(config.metrics.listen)
                .await
                .map_err(|e| listener::bind_error(config.metrics.listen, "metrics.listen", e))?,
        ),
        false => None,
    };
    let snapshot = Snapshot::build(config, None, workers).map_err(std::io::Error::other)?;
    let gateway = Gateway::new(snapshot, audit, metrics.clone());
    // node, auth-cache, refresh, Redis and certificate series: read live
    let live: std::sync::Weak<dyn metrics::LiveSource> = Arc::downgrade(&gateway) as _;
    metrics.attach_live(live);
    let connections = ConnTracker::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (admin_stop_tx, admin_stop_rx) = oneshot::channel::<()>();
    let (stop_all_tx, stop_all_rx) = watch::channel(false);

    let mut others = Vec::with_capacity(workers - 1);
    for w in 1..workers {
        let clone = match &inherited {
            Some(l) => Some(l.try_clone()?),
            None => None,
        };
        match spawn_worker(
            w,
            addr,
            clone,
            gateway.clone(),
            connections.clone(),
            stop_all_rx.clone(),
        )
        .await
        {
            Ok(done) => others.push(done),
            Err(e) => {
                let _ = stop_all_tx.send(true);
                return Err(e);
            }
        }
    }

    let draining = Arc::new(AtomicBool::new(false));
    let metrics_addr = match admin_listener {
        Some(l) => {
            let a = l.local_addr()?;
            let weak = Arc::downgrade(&gateway);
            let leaving = draining.clone();
            let ready: admin::Ready = Arc::new(move || {
                !leaving.load(Ordering::Relaxed)
                    && weak
                        .upgrade()
                        .is_some_and(|g| g.current().balancer.up_count() > 0)
            });
            tokio::spawn(admin::serve(l, metrics.clone(), ready, async move {
                let _ = admin_stop_rx.await;
            }));
            Some(a)
        }
        None => None,
    };
    tokio::spawn(upstream::health::run(Arc::downgrade(&gateway)));
    ops::cert_watch::spawn(&gateway);

    let gw = gateway.clone();
    let conns = connections.clone();
    let task = tokio::spawn(async move {
        listener::serve(gw.clone(), listener, conns, 0, async move {
            let _ = stop_rx.await;
            let _ = stop_all_tx.send(true);
        })
        .await;
        // the other workers drain too: wait for their threads to end
        for done in others {
            let _ = done.await;
        }
        // every request has finished (or the drain timed out): flush the trail
        gw.audit.shutdown().await;
        let _ = admin_stop_tx.send(());
    });
    tracing::info!(%addr, workers, "regate listening");
    if let Some(m) = metrics_addr {
        tracing::info!(addr = %m, "metrics listening");
    }
    Ok(Running {
        addr,
        metrics_addr,
        gateway,
        connections,
        draining,
        stop: Some(stop_tx),
        task,
    })
}

/// Starts worker `w`: a thread with a current-thread runtime accepting on
/// its own `SO_REUSEPORT` listener (or on `inherited`, a clone of the
/// socket systemd passed) until `stop` turns true. Returns once the
/// listener is bound; the receiver resolves when the thread has ended.
async fn spawn_worker(
    w: usize,
    addr: SocketAddr,
    inherited: Option<std::net::TcpListener>,
    gw: Arc<Gateway>,
    conns: Arc<ConnTracker>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<oneshot::Receiver<()>> {
    let (ready_tx, ready_rx) = oneshot::channel::<std::io::Result<()>>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("regate-worker-{w}"))
        .spawn(move || {
            let _done = done_tx;
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let bound = match inherited {
                    Some(l) => TcpListener::from_std(l),
                    None => listener::bind_reuseport(addr)
                        .map_err(|e| listener::bind_error(addr, "server.listen", e)),
                };
                let listener = match bound {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                listener::serve(gw, listener, conns, w, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            });
        })?;
    match ready_rx.await {
        Ok(Ok(())) => Ok(done_rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other(format!(
            "worker {w} ended while starting"
        ))),
    }
}

/// Serves until SIGTERM, SIGINT or SIGQUIT, then shuts down: `/readyz`
/// answers 503 at once, the listener keeps serving for `[server]
/// shutdown_delay` (a second signal cuts it short) so that load balancers
/// stop routing here, then in-flight requests drain and it returns.
/// SIGHUP reloads the config (certificates, users, policy, limits) and
/// reopens the audit file (logrotate); SIGUSR1 only reopens the audit file
/// (what logrotate snippets written for nginx send). systemd hears of
/// readiness, reloads and the stop (`Type=notify`).
pub async fn serve_until_signal(mut running: Running) -> std::io::Result<()> {
    use ops::sdnotify;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    sdnotify::ready();
    let why = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = quit.recv() => break "SIGQUIT",
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                sdnotify::reloading();
                running.gateway.audit.reopen();
                let gw = running.gateway.clone();
                // loading may hash a dummy password: off the async workers
                let _ = tokio::task::spawn_blocking(move || gw.reload()).await;
                sdnotify::ready();
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening the audit file");
                running.gateway.audit.reopen();
            }
        }
    };
    running.begin_drain();
    sdnotify::stopping();
    let delay = running.gateway.current().config.shutdown_delay;
    tracing::info!(
        signal = why,
        shutdown_delay_ms = delay.as_millis() as u64,
        "shutting down: /readyz answers 503; draining after the shutdown delay (a second signal skips it)"
    );
    if !delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => tracing::info!("second signal: skipping the shutdown delay"),
            _ = int.recv() => tracing::info!("second signal: skipping the shutdown delay"),
            _ = quit.recv() => tracing::info!("second signal: skipping the shutdown delay"),
        }
    }
    if let Some(stop) = running.take_stop() {
        let _ = stop.send(());
    }
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}
