//! Restarts and reloads under continuous load fail no request.
//!
//! A restart under systemd socket activation refuses no connection: the
//! listening socket belongs to the service manager (here, this test), the
//! old process stops, requests keep arriving (they wait in the kernel's
//! accept queue while no regate runs), the new process starts on the same
//! socket and serves them. This is `systemctl restart regate` with
//! `regate.socket`. Its own test binary: the socket is made inheritable,
//! which no other test's children should see.
//!
//! SIGHUP reloads with a new certificate, a new user and a changed role
//! while HTTP/1.1 and HTTP/2 clients send without pause on kept-alive
//! connections: every request is answered 200.

mod common;
mod proc;

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use proc::*;

/// `regate run` with `listener` as fd 3 and LISTEN_FDS/LISTEN_PID set, as
/// systemd starts a socket-activated service (`bash` execs regate, so `$$`
/// is regate's pid).
fn activated(listener: &std::net::TcpListener, cfg: &std::path::Path) -> Proc {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("exec 3<&{fd}; LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" run --config \"$1\""),
        BIN,
    ])
    .arg(cfg)
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::null());
    Proc::from_command(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_on_an_activated_socket_refuses_no_connection() {
    let site = Site::new().await;
    // no rate limit: the clients below run flat out from one address
    let cfg = site.write(
        "regate.toml",
        &site.config("shutdown_delay = \"0s\"", "[rate_limit]\nenabled = false\n"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // inheritable, like the socket systemd passes
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("https://localhost:{port}/v1/bdbs");

    let mut old = activated(&listener, &cfg);
    old.wait_ready_notify();

    // clients on fresh connections, without pause, through the restart
    let load = Load::start(&site.pki.ca_pem, &url, &[false, false, false], true);
    load.more_served("30 served by the old process", 30).await;

    // stop the old process (as systemd does on restart)
    old.signal("TERM");
    let code = tokio::task::spawn_blocking(move || old.wait_exit())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    // with no regate running, new connections are made: the kernel queues
    // them (the socket stays open) instead of refusing them; their TLS
    // handshake and request wait for the next process
    let addr = listener.local_addr().unwrap();
    let mut gap = Vec::new();
    for _ in 0..3 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let ca = site.pki.ca_pem.clone();
        gap.push(tokio::spawn(async move {
            let tls = Arc::new(client_tls(&ca, &[b"http/1.1"]));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .unwrap();
            let req = format!(
                "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                basic(ADMIN.0, ADMIN.1)
            );
            let (resp, _) = raw_exchange(&mut tls, req.as_bytes(), Duration::from_secs(60)).await;
            statuses(&resp)
        }));
    }

    let new = activated(&listener, &cfg);
    let line = new.wait_line("socket activation: serving on the passed socket");
    assert!(line.contains(&port.to_string()), "{line}");
    new.wait_ready_notify();
    load.more_served("30 served by the new process", 30).await;
    for t in gap {
        assert_eq!(t.await.unwrap(), [200], "a connection made in the gap");
    }
    let (started, served, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {started} requests failed across the restart: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(served, started);
}

/// Clients sending `GET url` as the admin without pause, one task each,
/// counting requests started, answered 200, and anything else.
struct Load {
    stop: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// One task per entry of `h2` (true: HTTP/2); `fresh`: a new
    /// connection for every request, else one kept-alive client per task.
    fn start(ca: &str, url: &str, h2: &[bool], fresh: bool) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            started: Arc::new(AtomicUsize::new(0)),
            served: Arc::new(AtomicUsize::new(0)),
            failures: Arc::new(std::sync::Mutex::new(Vec::new())),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for &h2 in h2 {
            let (stop, started, served, failures) = (
                load.stop.clone(),
                load.started.clone(),
                load.served.clone(),
                load.failures.clone(),
            );
            let (ca, url) = (ca.to_string(), url.to_string());
            tasks.push(tokio::spawn(async move {
                let mut client = TestClient::new(&ca, h2);
                while !stop.load(Ordering::Relaxed) {
                    if fresh {
                        client = TestClient::new(&ca, h2);
                    }
                    let req = http::Request::get(&url)
                        .header("authorization", basic(ADMIN.0, ADMIN.1))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    started.fetch_add(1, Ordering::SeqCst);
                    match client.raw_request(req).await {
                        Ok(r) if r.status() == 200 => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            }));
        }
        Load { tasks, ..load }
    }

    /// Waits until `n` more requests have been answered 200.
    async fn more_served(&self, what: &str, n: usize) {
        let target = self.served.load(Ordering::SeqCst) + n;
        wait_until(what, || self.served.load(Ordering::SeqCst) >= target).await;
    }

    /// Stops the clients: (requests started, answered 200, failures).
    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (
            self.started.load(Ordering::SeqCst),
            self.served.load(Ordering::SeqCst),
            failures,
        )
    }
}

/// Polls a counter the load loops advance (60 s at most).
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_load_fail_no_request() {
    let site = Site::new().await;
    let unwatched = |c: String| {
        c.replace(
            "key = \"server.key\"\n",
            "key = \"server.key\"\nwatch_interval = \"0s\"\n",
        )
    };
    let cfg = site.write(
        "regate.toml",
        &unwatched(site.config("", "[rate_limit]\nenabled = false\n")),
    );
    let p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    let addr = p.wait_field("regate listening", "addr");
    p.wait_ready_notify();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}/v1/bdbs");
    // the clients trust the first CA and the one the reload brings
    let next = regate::pki::TestPki::generate().unwrap();
    let both = format!("{}{}", site.pki.ca_pem, next.ca_pem);

    // HTTP/1.1 and HTTP/2 clients on kept-alive connections
    let load = Load::start(&both, &url, &[false, false, true, true], false);
    let c = TestClient::new(&both, false);
    let r = c
        .call("DELETE", &format!("{url}/1"), Some(VIEWER), &[], b"")
        .await;
    assert_eq!(r.status, 403);
    load.more_served("50 served before the reloads", 50).await;

    // 1: a certificate from another CA
    site.write("server.pem", &next.cert_pem);
    site.write("server.key", &next.key_pem);
    p.signal("HUP");
    p.wait_line("configuration reloaded");
    load.more_served("50 served after reload 1", 50).await;
    // 2: a new user, and the viewer becomes an admin
    let carol = ("carol@redis.local", "carol-pass-1");
    site.write(
        "users.toml",
        &users_toml_for(&[
            (ADMIN.0, ADMIN.1, "admin", Some(1)),
            (VIEWER.0, VIEWER.1, "admin", Some(2)),
            (carol.0, carol.1, "db_viewer", None),
        ]),
    );
    p.signal("HUP");
    p.wait_line("configuration reloaded");
    load.more_served("50 served after reload 2", 50).await;
    let r = c
        .call("DELETE", &format!("{url}/1"), Some(VIEWER), &[], b"")
        .await;
    assert_eq!(r.status, 200, "the changed role applies");
    let r = c.get(&url, carol).await;
    assert_eq!(
        r.status, 401,
        "the gateway knows carol; the simulated node does not"
    );
    assert_eq!(
        r.json()["description"],
        "Authentication required",
        "the node's 401, not the gateway's"
    );

    let (_, _, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} requests failed across the reloads: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
