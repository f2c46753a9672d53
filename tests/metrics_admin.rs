//! The admin listener on a real loopback socket: `/metrics`, `/healthz`,
//! `/readyz` following the readiness closure, 404 for anything else, 405
//! for other methods, and a clean stop on shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use regate::admin::{serve, Ready};
use regate::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn serves_metrics_health_and_readiness() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new(&["/v1/bdbs"], &["https://n1:9443"]).unwrap());
    let is_ready = Arc::new(AtomicBool::new(false));
    let flag = is_ready.clone();
    let ready: Ready = Arc::new(move || flag.load(Ordering::Relaxed));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, metrics, ready, async move {
        let _ = stop_rx.await;
    }));

    let (status, body) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("text/plain; version=0.0.4"));
    assert!(body.contains("regate_build_info{revision="));
    assert_eq!(get(addr, "GET", "/healthz").await.0, 200);
    assert_eq!(get(addr, "GET", "/readyz").await.0, 503);
    is_ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "GET", "/readyz").await.0, 200);
    assert_eq!(get(addr, "GET", "/v1/bdbs").await.0, 404);
    assert_eq!(get(addr, "GET", "/metrics/../admin").await.0, 404);
    let (status, body) = get(addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    assert!(body.to_ascii_lowercase().contains("allow: get, head"));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("admin listener stops")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "port closed after shutdown"
    );
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_asks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new(&["/v1/bdbs"], &["https://n1:9443"]).unwrap());
    let ready: Ready = Arc::new(|| true);
    let plain = metrics.render();
    tokio::spawn(serve(listener, metrics, ready, std::future::pending()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let body = &buf[split + 4..];
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut text).unwrap();
    // the same exposition (process_* values move between two renders)
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(String::from)
            .collect()
    };
    assert_eq!(names(&text), names(&plain));
    assert!(text.contains("regate_build_info{"));
    assert!(
        body.len() * 4 < plain.len(),
        "{} vs {}",
        body.len(),
        plain.len()
    );
    // without Accept-Encoding: plain text
    let (status, resp) = get(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(!resp.to_lowercase().contains("content-encoding"), "{resp}");
}
