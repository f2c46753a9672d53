//! The TLS listener (SECURITY.md group A, F4): plain HTTP and silent
//! connections are closed promptly, old protocol versions are refused,
//! ALPN picks h2 or http/1.1, connection caps hold, and the accept loop
//! survives file-descriptor exhaustion.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until EOF or `limit`; returns (bytes, closed).
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_closed_at_once() {
    // a handshake deadline far beyond the wait: a close can only come from
    // the bytes being refused, not from the timer
    let w = World::with(Setup {
        extra: "[timeouts]\ntls_handshake = \"300s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    s.write_all(b"GET /v1/bdbs HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (bytes, closed) = read_until_close(&mut s, Duration::from_secs(60)).await;
    assert!(closed, "connection left open");
    assert!(!bytes.starts_with(b"HTTP/"), "no HTTP may be exchanged");
    assert!(w.upstream_requests().is_empty());
}

/// The server side of a loopback connection in /proc/net/tcp: its
/// `tr` (timer kind) and `tm->when` (clock ticks) fields.
fn server_side_timer(server: std::net::SocketAddr, client_port: u16) -> Option<(u32, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want_local = format!(":{:04X}", server.port());
    let want_remote = format!(":{client_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, timer) = (f.get(1)?, f.get(2)?, f.get(5)?);
        if !local.ends_with(&want_local) || !remote.ends_with(&want_remote) {
            return None;
        }
        let (kind, when) = timer.split_once(':')?;
        Some((kind.parse().ok()?, u64::from_str_radix(when, 16).ok()?))
    })
}

#[tokio::test]
async fn client_connections_have_dead_peer_detection() {
    // A client that vanishes without a FIN must not hold a connection (and
    // its streams) forever: accepted sockets carry TCP keep-alive probes
    // (and TCP_USER_TIMEOUT, checked in the unit test of `tune`).
    let w = World::with(Setup {
        extra: "[timeouts]\ntls_handshake = \"10s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let s = TcpStream::connect(w.addr).await.unwrap();
    let port = s.local_addr().unwrap().port();
    // The socket shows up (timer 0) as soon as the kernel has accepted it,
    // a moment before regate takes it from the queue and sets it up.
    let mut seen = None;
    for _ in 0..100 {
        seen = server_side_timer(w.addr, port);
        if matches!(seen, Some((2, _))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (kind, when) = seen.expect("the server side of the connection is in /proc/net/tcp");
    // 2 = a keep-alive (or other non-retransmit) timer is armed; an idle
    // socket without keep-alive shows 0. It fires in about 30 s.
    assert_eq!(kind, 2, "no keep-alive timer on the accepted socket");
    assert!(
        when > 2_000 && when <= 3_100,
        "keep-alive due in {when} ticks"
    );
    drop(s);
}

#[tokio::test]
async fn silent_connections_are_closed_at_the_handshake_deadline() {
    let w = World::with(Setup {
        extra: "[timeouts]\ntls_handshake = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(w.addr).await.unwrap());
    }
    // the accept loop keeps serving others meanwhile
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    // nothing else closes a silent connection: each closing is the deadline
    // (the wait's own limit only stops a hang)
    for s in idle.iter_mut() {
        let (_, closed) = read_until_close(s, Duration::from_secs(60)).await;
        assert!(closed);
    }
}

#[tokio::test]
async fn alpn_negotiates_h2_or_http11() {
    let w = World::start().await;
    for (offer, want) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], Some(&b"h2"[..])),
        (vec![b"http/1.1".to_vec()], Some(&b"http/1.1"[..])),
        (vec![], None),
    ] {
        let mut cfg = client_tls(&w.pki.ca_pem, &[]);
        cfg.alpn_protocols = offer;
        let tcp = TcpStream::connect(w.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), want);
    }
}

#[tokio::test]
async fn old_protocol_versions_and_weak_suites_are_refused() {
    let w = World::start().await;
    let addr = w.addr.to_string();
    for args in [
        vec!["-tls1"],
        vec!["-tls1_1"],
        vec!["-tls1_2", "-cipher", "AES128-SHA"],
        vec!["-tls1_2", "-cipher", "AES256-GCM-SHA384"],
    ] {
        // async: the gateway runs on this test's runtime
        let out = tokio::process::Command::new("openssl")
            .arg("s_client")
            .args(&args)
            .args(["-connect", &addr])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("openssl is installed");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("Cipher is (NONE)"),
            "{args:?} negotiated: {text}"
        );
    }
    // and a modern client does get through
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-tls1_2", "-connect", &addr])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Cipher is ECDHE"), "{text}");
}

#[tokio::test]
async fn per_ip_connection_cap_refuses_extra_connections() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_connections_per_ip = 2\n".into(),
        ..Setup::default()
    })
    .await;
    let a = w.raw().await;
    let b = w.raw().await;
    // the third is accepted by the kernel, then closed by the gateway
    let mut c = TcpStream::connect(w.addr).await.unwrap();
    let (_, closed) = read_until_close(&mut c, Duration::from_secs(2)).await;
    assert!(closed);
    assert!(w.gateway.gateway.observer.conns_refused() >= 1);
    // counted by reason in /metrics
    let m = w.gateway.gateway.metrics.render();
    assert!(
        m.contains("regate_connections_refused_total{reason=\"max_connections_per_ip\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("regate_connections_refused_total{reason=\"max_connections\"} 0"),
        "{m}"
    );
    drop((a, b));
    // wait until the gateway has seen both close and released their slots
    let conns = w.gateway.connections.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        while conns.open() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("connection slots released");
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200, "slots are released when connections close");
}

#[tokio::test]
async fn accept_loop_recovers_from_fd_exhaustion() {
    // the real binary under `ulimit -n 64`: 100 connections exhaust its
    // descriptors; once they are released it serves again
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = regate::pki::TestPki::generate().unwrap();
    pki.write_to(dir.path()).unwrap();
    std::fs::write(dir.path().join("users.toml"), users_toml()).unwrap();
    let cluster = regate::sim::start(regate::sim::SimOptions {
        nodes: 1,
        tls: Some(regate::sim::SimTls {
            cert_pem: pki.cert_pem.clone(),
            key_pem: pki.key_pem.clone(),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[upstream]\nnodes = [\"{}\"]\nca = \"ca.pem\"\n[auth]\nusers = \"users.toml\"\n[audit]\npath = \"audit.jsonl\"\n[metrics]\nenabled = false\n[limits]\nmax_connections_per_ip = 1000\n",
        cluster.urls()[0]
    );
    let path = dir.path().join("regate.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} run --config {}",
            env!("CARGO_BIN_EXE_regate"),
            path.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no listen line");
        if let Some(rest) = line.split("addr=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            break addr.rsplit(':').next().unwrap().to_string();
        }
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut flood = Vec::new();
    for _ in 0..100 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            flood.push(s);
        }
    }
    // the gateway runs out of descriptors while the flood is open: wait for
    // it to say so before releasing them
    let mut logs = Vec::new();
    while !logs.iter().any(|l: &String| l.contains("out of resources")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => logs.push(line),
            Err(e) => panic!("no back-off logged ({e}): {logs:?}"),
        }
    }
    drop(flood);
    // it logged the exhaustion and keeps serving
    let client = TestClient::new(&pki.ca_pem, false);
    let url = format!("https://localhost:{port}/v1/bdbs");
    let mut ok = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c = &client;
        if let Ok(r) =
            tokio::time::timeout(Duration::from_secs(5), async { c.get(&url, ADMIN).await }).await
        {
            if r.status == 200 {
                ok = true;
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "the gateway did not recover after descriptor exhaustion"
    );
}

#[tokio::test]
async fn tls_profile_is_mozilla_intermediate_compliant() {
    // SECURITY.md A6: sslyze checks protocols, suites, curves, the
    // certificate chain (the test CA) and its lifespan against Mozilla's
    // "intermediate" profile, and exits non-zero on any deviation.
    // tests/run.sh installs sslyze (pip).
    let w = World::start().await;
    let target = format!("localhost:{}{{127.0.0.1}}", w.addr.port());
    let out = tokio::process::Command::new("python3")
        .args(["-m", "sslyze", &target, "--certinfo_ca_file"])
        .arg(&w.files.ca)
        .arg("--mozilla_config=intermediate")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sslyze: {text}");
    assert!(text.contains("OK - Compliant."), "{text}");
}
