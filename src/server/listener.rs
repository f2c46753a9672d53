//! The accept loop: caps connections (total and per client IP), survives
//! accept errors (EMFILE/ENFILE: log, back off, recover), spawns one task
//! per connection (the handshake runs in that task, never in the loop),
//! and drains gracefully: stop accepting, ask every connection to finish
//! its in-flight requests, wait up to the drain timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};

use crate::gateway::Gateway;
use crate::metrics::ops::Refusal;

/// Open-connection accounting.
pub struct ConnTracker {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    idle: Notify,
}

impl ConnTracker {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnTracker {
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            idle: Notify::new(),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip` if both caps allow it, else says
    /// which cap refused it.
    fn try_admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<ConnGuard, Refusal> {
        let ip = crate::net::canonical(ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= max_total {
            return Err(Refusal::MaxConnections);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err(Refusal::MaxConnectionsPerIp);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnGuard {
            tracker: self.clone(),
            ip,
        })
    }

    /// Waits until no connection is open.
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a connection task; releases its slot on drop.
pub struct ConnGuard {
    tracker: Arc<ConnTracker>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut per_ip = self
            .tracker
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        if self.tracker.total.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.tracker.idle.notify_waiters();
        }
    }
}

/// True for accept errors caused by resource exhaustion, where retrying
/// at once would spin.
fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(23 /* ENFILE */)
            | Some(24 /* EMFILE */)
            | Some(12 /* ENOMEM */)
            | Some(105 /* ENOBUFS */)
    )
}

/// Binds `addr` with `SO_REUSEPORT`, so that each worker runtime can
/// have its own listener on the same address and the kernel spreads new
/// connections over them. Must run inside the runtime that will accept.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Binds the first listener of a multi-worker gateway on `addr`, after
/// making sure no other process listens there. `SO_REUSEPORT` lets any
/// socket of the same user join a listening group; without this check a
/// second regate (another config, other users and policy) started on the
/// same address would silently take half of the connections. The probe is
/// a plain bind (no `SO_REUSEPORT`), which fails while any socket listens
/// on the address; it is closed before the workers bind. Two processes
/// starting within the same few microseconds could still both pass it.
pub fn bind_workers(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if addr.port() != 0 {
        let probe = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        probe.set_reuse_address(true)?;
        probe
            .bind(&addr.into())
            .map_err(|e| bind_error(addr, "server.listen", e))?;
    }
    bind_reuseport(addr).map_err(|e| bind_error(addr, "server.listen", e))
}

/// A bind failure that names the address and the config key: "cannot
/// listen on 0.0.0.0:9443 (server.listen): Address in use (os error 98)".
pub fn bind_error(addr: SocketAddr, key: &str, e: std::io::Error) -> std::io::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => ": another process listens there",
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            ": ports below 1024 need CAP_NET_BIND_SERVICE"
        }
        _ => "",
    };
    std::io::Error::new(
        e.kind(),
        format!("cannot listen on {addr} ({key}): {e}{hint}"),
    )
}

/// Accepts until `shutdown` resolves, then drains. Connections are served
/// on the calling runtime; `worker` is its index (which upstream client
/// they use).
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tracker: Arc<ConnTracker>,
    worker: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    let mut refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(10);
                let limits = gw.current().config.limits;
                let guard = match tracker.try_admit(
                    peer.ip(),
                    limits.max_connections,
                    limits.max_connections_per_ip,
                ) {
                    Ok(g) => g,
                    Err(why) => {
                        gw.observer.conn_refused();
                        gw.metrics.ops.connection_refused(why);
                        refusals.note(why, &limits, worker);
                        drop(tcp);
                        continue;
                    }
                };
                tune(&tcp);
                tokio::spawn(super::conn::serve(
                    gw.clone(),
                    tcp,
                    peer,
                    drain_rx.clone(),
                    guard,
                    worker,
                ));
            }
            Err(e) if is_exhaustion(&e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed: out of resources; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                // per-connection errors (ECONNABORTED and the like): keep going
                tracing::debug!(error = %e, "accept failed");
            }
        }
    }
    drop(listener);
    let drain = gw.current().config.timeouts.drain;
    tracing::info!(open = tracker.open(), "draining connections");
    let _ = drain_tx.send(true);
    if tokio::time::timeout(drain, tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.open(),
            "drain timeout reached; closing remaining connections"
        );
    }
}

/// Logs connection-cap refusals at most once per [`RefusalLog::EVERY`]
/// per accept loop, with the count since the last line (a flood of
/// refused connections must not become a flood of log lines).
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    unlogged: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn note(&mut self, why: Refusal, limits: &crate::config::Limits, worker: usize) {
        self.unlogged += 1;
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return;
        }
        let (key, cap) = match why {
            Refusal::MaxConnections => ("limits.max_connections", limits.max_connections),
            Refusal::MaxConnectionsPerIp => (
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip,
            ),
        };
        tracing::warn!(
            reason = why.as_str(),
            limit = key,
            cap,
            refused = self.unlogged,
            worker,
            "connections refused at accept: {key} ({cap}) reached (logged at most every 10s)"
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}

/// How long sent data may stay unacknowledged, and an idle connection
/// unanswered to keep-alive probes, before the kernel drops a client
/// connection: 30 s idle, then 2 probes 10 s apart.
pub const DEAD_PEER_AFTER: Duration = Duration::from_secs(50);

/// Socket options of an accepted client connection: no Nagle delay, and
/// dead-peer detection in the kernel. A client that vanished (power loss,
/// a dropped NAT entry) with requests in flight is noticed within
/// [`DEAD_PEER_AFTER`] whether regate is sending to it (TCP_USER_TIMEOUT)
/// or waiting (keep-alive probes). This replaces HTTP/2 PINGs, whose
/// bookkeeping in hyper took a lock and a clock read on every frame.
pub fn tune(tcp: &tokio::net::TcpStream) {
    let sock = socket2::SockRef::from(tcp);
    let _ = sock.set_tcp_nodelay(true);
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(2);
    let _ = sock.set_tcp_keepalive(&probes);
    let _ = sock.set_tcp_user_timeout(Some(DEAD_PEER_AFTER));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_nodelay_and_dead_peer_detection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        tune(&tcp);
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 2);
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(DEAD_PEER_AFTER));
    }
}
