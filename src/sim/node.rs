//! One simulated node: its listening socket on 127.0.0.1, its accept loop,
//! its [`Mode`] and its request log. `Down` closes the listener and every
//! open connection at once; leaving `Down` binds the same port again.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::api::Api;
use super::conn;
use super::record::{RecordedRequest, Recorder};

/// How a node behaves; switchable at run time with [`SimNode::set_mode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers like a healthy cluster node.
    Normal,
    /// Every request gets 503 with a JSON error.
    NotInCluster,
    /// Not listening: connects are refused, open connections are closed.
    Down,
    /// Reads the request, then resets the connection (RST).
    Reset,
    /// Reads the request, then closes without sending a byte.
    Close,
    /// Reads the request, then sends bytes that are not HTTP.
    Garbage,
    /// Waits this long before sending the status line.
    SlowHead(Duration),
    /// Sends the head, then the body at one byte per second.
    SlowBody,
    /// Announces `Content-Length: 100`, sends 10 bytes, closes.
    ShortBody,
    /// Answers every request with this status and a JSON error body.
    Status(u16),
    /// Answers every request `503` with `Retry-After:` these seconds.
    Busy(u64),
    /// Sends two differing `Content-Length` headers.
    BadCl,
    /// Adds a 200 KiB header to the response.
    HugeHead,
    /// Adds 40 header lines to the response.
    ManyHeaders,
    /// A follower: answers `307 Temporary Redirect` with `Location:` this
    /// base URL followed by the request's target (e.g. the master's
    /// internal address); `GET /v1/bootstrap` (node-local) it answers itself.
    Redirect(String),
    /// Sends a valid response, then an unsolicited second one.
    Smuggle,
    /// `200` with `Content-Length: 5, 5` and a 5-byte body (kept open).
    ClList,
    /// `200` with `Content-Length: 3` and a chunked 5-byte body (kept open).
    ClAndChunked,
    /// `200` with `Transfer-Encoding: gzip, chunked` (kept open).
    GzipChunked,
    /// An unsolicited `101 Switching Protocols` (kept open).
    Switching,
    /// `204` carrying `Content-Length: 5` (kept open).
    NoContentWithCl,
    /// `304` carrying `Content-Length: 5` (kept open).
    NotModifiedWithCl,
}

/// State shared by a node's handle, accept loop and connections.
pub(crate) struct NodeShared {
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    mode: Mutex<Mode>,
    pub(crate) recorder: Recorder,
    pub(crate) api: Arc<Api>,
    listener: Mutex<Option<TcpListener>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    /// Bumped to close every open connection.
    epoch: watch::Sender<u64>,
    /// Connections accepted since start.
    accepted: AtomicUsize,
    runtime: Handle,
}

/// A handle on one node of a simulated cluster. Cheap to clone.
#[derive(Clone)]
pub struct SimNode {
    shared: Arc<NodeShared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Closed connections linger in TIME_WAIT; rebinding after Down must work.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl SimNode {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub(crate) async fn start(tls: Option<TlsAcceptor>, api: Arc<Api>) -> std::io::Result<SimNode> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let shared = Arc::new(NodeShared {
            addr: listener.local_addr()?,
            tls,
            mode: Mutex::new(Mode::Normal),
            recorder: Recorder::default(),
            api,
            listener: Mutex::new(Some(listener)),
            accept_task: Mutex::new(None),
            epoch: watch::Sender::new(0),
            accepted: AtomicUsize::new(0),
            runtime: Handle::current(),
        });
        spawn_accept(&shared);
        Ok(SimNode { shared })
    }

    /// `https://127.0.0.1:PORT` with TLS, else `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Switches the mode. `Down` closes the listener and all connections
    /// before returning; any other mode rebinds the port if it was down
    /// (retrying in the background if the port is briefly unavailable).
    pub fn set_mode(&self, m: Mode) {
        let down = m == Mode::Down;
        *lock(&self.shared.mode) = m;
        if down {
            self.shared.close_all();
        } else if lock(&self.shared.listener).is_none() {
            let _guard = self.shared.runtime.enter();
            relisten(self.shared.clone());
        }
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Every request received since start or the last [`clear_requests`](Self::clear_requests).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    pub fn request_count(&self) -> usize {
        self.shared.recorder.len()
    }

    /// TCP connections accepted since start (TLS or not).
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Closes everything for good (the mode stays `Down`).
    pub(crate) fn stop(&self) {
        *lock(&self.shared.mode) = Mode::Down;
        self.shared.close_all();
    }

    pub(crate) async fn join(&self) {
        let task = lock(&self.shared.accept_task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl NodeShared {
    pub(crate) fn mode(&self) -> Mode {
        lock(&self.mode).clone()
    }

    fn close_all(&self) {
        // Dropping the listener closes the port now, not when the accept
        // task is next polled.
        drop(lock(&self.listener).take());
        if let Some(task) = lock(&self.accept_task).as_ref() {
            task.abort();
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<(TcpStream, SocketAddr)>>> {
        match lock(&self.listener).as_ref() {
            Some(l) => l.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        }
    }
}

fn relisten(shared: Arc<NodeShared>) {
    match bind(shared.addr) {
        Ok(listener) => {
            *lock(&shared.listener) = Some(listener);
            spawn_accept(&shared);
        }
        Err(e) => {
            tracing::warn!(addr = %shared.addr, error = %e, "sim: rebinding failed; retrying");
            tokio::spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if shared.mode() == Mode::Down || lock(&shared.listener).is_some() {
                        return;
                    }
                    if let Ok(listener) = bind(shared.addr) {
                        *lock(&shared.listener) = Some(listener);
                        spawn_accept(&shared);
                        return;
                    }
                }
                tracing::error!(addr = %shared.addr, "sim: could not rebind after Down");
            });
        }
    }
}

fn spawn_accept(shared: &Arc<NodeShared>) {
    let task = tokio::spawn(accept_loop(shared.clone()));
    if let Some(old) = lock(&shared.accept_task).replace(task) {
        old.abort();
    }
}

async fn accept_loop(shared: Arc<NodeShared>) {
    loop {
        let (tcp, _peer) = match poll_fn(|cx| shared.poll_accept(cx)).await {
            None => return,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(error = %e, "sim: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let node = shared.clone();
        let mut epoch = shared.epoch.subscribe();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            tokio::select! {
                _ = epoch.changed() => {}
                _ = handle(tcp, node) => {}
            }
        });
    }
}

async fn handle(tcp: TcpStream, node: Arc<NodeShared>) {
    match node.tls.clone() {
        None => conn::serve(tcp, node).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => conn::serve(tls, node).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "sim: TLS handshake failed"),
                Err(_) => tracing::debug!("sim: TLS handshake timed out"),
            }
        }
    }
}
