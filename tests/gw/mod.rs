//! Helpers shared by the `gateway_*` tests, which drive the whole gateway
//! (pipeline, audit, metrics, limits) through its real sockets: reading
//! the admin listener, capturing the gateway's own log output, a
//! `redis-server` child process and a users file written outside the
//! harness's temp dir (for configs that bring their own `[auth]`).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on the plain-HTTP admin listener: (status, head + body).
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("admin listener answers in time")
        .unwrap();
    let text = String::from_utf8(buf).expect("admin answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The `/metrics` text of a running gateway.
pub async fn metrics_text(addr: Option<SocketAddr>) -> String {
    let (status, _, body) = admin_get(addr.expect("metrics listener enabled"), "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// Sum of a metric's samples whose label set contains every `want` pair.
pub fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let ok = want
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The base64 forms an attacker-visible secret can take in a Basic header.
pub fn basic_b64(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// Writes a users file (bcrypt cost 4) outside the harness's directory,
/// for `Setup.extra` that brings its own `[auth]` section.
pub fn users_file(dir: &Path, users: &[(&str, &str, &str)]) -> PathBuf {
    let mut out = String::new();
    for (i, (name, pass, role)) in users.iter().enumerate() {
        let hash = bcrypt::hash(pass, 4).unwrap();
        let name = toml::Value::String(name.to_string());
        out.push_str(&format!(
            "[[users]]\nname = {name}\npassword_hash = \"{hash}\"\nrole = \"{role}\"\nuid = {}\n\n",
            i + 1
        ));
    }
    let path = dir.join("users.toml");
    std::fs::write(&path, out).unwrap();
    path
}

/// Everything the gateway logged (tracing, `debug` and up) in this test
/// binary. Installed once per process as the global subscriber.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Looked up on PATH (tests/run.sh installs it), not at one fixed path.
pub const REDIS: &str = "redis-server";

/// A `redis-server` child on a loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start(port: u16) -> RedisServer {
        let child = Command::new(REDIS)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {REDIS} ({e}): tests/run.sh installs it (apt-get install redis-server)")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    /// Kills the server and waits until the port refuses connections.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
