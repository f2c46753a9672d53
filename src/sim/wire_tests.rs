//! Raw-socket tests of a simulated node: request framing as it arrives on
//! the wire, and the exact bytes (or resets) the fault modes produce. The
//! client-level tests (TLS, hyper) are in `tests/sim.rs`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{start, Mode, SimCluster, SimOptions};

async fn plain() -> SimCluster {
    start(SimOptions {
        nodes: 1,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

fn auth() -> String {
    format!(
        "Authorization: Basic {}\r\n",
        STANDARD.encode("admin@redis.local:admin123")
    )
}

/// Sends `raw`, then reads until the server closes or goes quiet.
async fn exchange(cluster: &SimCluster, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(cluster.nodes()[0].addr()).await?;
    s.write_all(raw).await?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn ambiguous_framing_gets_400_close_and_is_recorded() {
    let sim = plain().await;
    let raw = format!(
        "POST /v1/bdbs HTTP/1.1\r\nHost: x\r\n{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/users HTTP/1.1\r\nHost: x\r\n\r\n",
        auth()
    );
    let out = text(&exchange(&sim, raw.as_bytes()).await.unwrap());
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert_eq!(
        out.matches("HTTP/1.1").count(),
        1,
        "smuggled request answered: {out}"
    );
    let recs = sim.nodes()[0].requests();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].header_all("transfer-encoding"),
        vec![&b"chunked"[..]]
    );
}

#[tokio::test]
async fn pipelined_requests_and_chunked_bodies() {
    let sim = plain().await;
    let raw = format!(
        "POST /v1/bdbs HTTP/1.1\r\nHost: x\r\n{a}Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"a\":\r\n2\r\n1}}\r\n0\r\n\r\nGET /v1/cluster HTTP/1.1\r\nHost: x\r\n{a}Connection: close\r\n\r\n",
        a = auth()
    );
    let out = text(&exchange(&sim, raw.as_bytes()).await.unwrap());
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.contains("Connection: close"));
    let recs = sim.nodes()[0].requests();
    assert_eq!(recs[0].body_prefix, b"{\"a\":1}");
    assert_eq!(recs[1].target, "/v1/cluster");
}

#[tokio::test]
async fn absolute_form_head_and_expect_continue() {
    let sim = plain().await;
    let raw = format!(
        "HEAD http://evil.example/v1/cluster HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        auth()
    );
    let out = text(&exchange(&sim, raw.as_bytes()).await.unwrap());
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "HEAD got a body: {out}");
    assert_eq!(
        sim.nodes()[0].requests()[0].target,
        "http://evil.example/v1/cluster"
    );

    let raw = format!("PUT /v1/bdbs/1 HTTP/1.1\r\nHost: x\r\n{}Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}", auth());
    let out = text(&exchange(&sim, raw.as_bytes()).await.unwrap());
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"),
        "{out}"
    );
}

#[tokio::test]
async fn http10_keep_alive_is_explicit() {
    let sim = plain().await;
    let req = |conn: &str| format!("GET /v1/cluster HTTP/1.0\r\n{}{conn}\r\n", auth());
    let out = text(
        &exchange(&sim, req("Connection: keep-alive\r\n").as_bytes())
            .await
            .unwrap(),
    );
    assert!(out.contains("Connection: keep-alive\r\n"), "{out}");
    let out = text(&exchange(&sim, req("").as_bytes()).await.unwrap());
    assert!(out.contains("Connection: close\r\n"), "{out}");
}

#[tokio::test]
async fn fault_bytes_on_the_wire() {
    let sim = plain().await;
    let req = format!("GET /v1/bdbs HTTP/1.1\r\nHost: x\r\n{}\r\n", auth());
    let node = &sim.nodes()[0];

    node.set_mode(Mode::Garbage);
    assert_eq!(
        exchange(&sim, req.as_bytes()).await.unwrap(),
        super::faults::GARBAGE
    );

    node.set_mode(Mode::Close);
    assert!(exchange(&sim, req.as_bytes()).await.unwrap().is_empty());

    node.set_mode(Mode::Reset);
    let err = exchange(&sim, req.as_bytes()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);

    node.set_mode(Mode::ShortBody);
    let out = exchange(&sim, req.as_bytes()).await.unwrap();
    let body = text(&out).split("\r\n\r\n").nth(1).unwrap().to_string();
    assert!(
        text(&out).contains("Content-Length: 100") && body.len() == 10,
        "{body}"
    );

    node.set_mode(Mode::BadCl);
    let out = text(&exchange(&sim, req.as_bytes()).await.unwrap());
    assert_eq!(out.matches("Content-Length:").count(), 2, "{out}");

    node.set_mode(Mode::HugeHead);
    let out = exchange(&sim, req.as_bytes()).await.unwrap();
    assert!(out.len() > super::faults::HUGE_HEADER_LEN);
    assert!(text(&out).starts_with("HTTP/1.1 200 OK"));

    node.set_mode(Mode::Smuggle);
    let out = text(&exchange(&sim, req.as_bytes()).await.unwrap());
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.ends_with("{\"smuggled\":true}"));

    assert_eq!(node.request_count(), 7);
}

#[tokio::test]
async fn slow_body_sends_one_byte_per_second() {
    let sim = plain().await;
    sim.nodes()[0].set_mode(Mode::SlowBody);
    let mut s = TcpStream::connect(sim.nodes()[0].addr()).await.unwrap();
    let req = format!("GET /v1/license HTTP/1.1\r\nHost: x\r\n{}\r\n", auth());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    while !text(&got).contains("\r\n\r\n{\"") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn down_closes_open_connections() {
    let sim = plain().await;
    let mut s = TcpStream::connect(sim.nodes()[0].addr()).await.unwrap();
    // Let the accept loop take the connection before the node goes down.
    tokio::time::sleep(Duration::from_millis(50)).await;
    sim.nodes()[0].set_mode(Mode::Down);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
}
