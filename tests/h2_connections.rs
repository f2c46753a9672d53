//! HTTP/2 connections: by ALPN they are served by hyper's h2 server, and
//! a client that chose h2 must speak it; without ALPN a client may still
//! start with the h2 preface; idle h2 connections are closed after
//! `timeouts.idle`, and a drain lets the stream in flight finish.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

/// A TLS connection to the gateway offering `alpn`.
async fn connect(w: &World, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = client_tls(&w.pki.ca_pem, alpn);
    let tcp = TcpStream::connect(w.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// An h2 client on one connection; the handle ends when the connection does.
async fn h2_client(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
) -> (SendRequest<Empty<Bytes>>, JoinHandle<()>) {
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let ended = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, ended)
}

/// GET `path` as the admin on `send`: (version, status, body).
async fn get(
    w: &World,
    send: &mut SendRequest<Empty<Bytes>>,
    path: &str,
) -> (http::Version, u16, Bytes) {
    let req = http::Request::get(w.url(path))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .body(Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (version, status) = (resp.version(), resp.status().as_u16());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, status, body)
}

/// A client that chose h2 by ALPN must speak h2 (RFC 9113 3.3): HTTP/1.1
/// on that connection is not served, and nothing reaches a node.
#[tokio::test]
async fn http11_after_alpn_h2_is_refused() {
    let w = World::start().await;
    let mut tls = connect(&w, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let req = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was left open");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("HTTP/1.1"), "served as HTTP/1.1: {text}");
    assert!(w.upstream_requests().is_empty());
}

/// Without ALPN a connection starts on HTTP/1.1, and a client that sends
/// the h2 preface anyway (prior knowledge) is served as h2.
#[tokio::test]
async fn h2_prior_knowledge_without_alpn_is_served() {
    let w = World::start().await;
    let tls = connect(&w, &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let (mut send, _ended) = h2_client(tls).await;
    let (version, status, body) = get(&w, &mut send, "/v1/bdbs").await;
    assert_eq!((version, status), (http::Version::HTTP_2, 200));
    assert!(!body.is_empty());
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
}

/// An h2 connection with no stream open for `timeouts.idle` is closed by
/// the gateway (GOAWAY, then the end of the connection).
#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_timeouts_idle() {
    let w = World::with(Setup {
        extra: "[timeouts]\nidle = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let (mut send, ended) = h2_client(connect(&w, &[b"h2"]).await).await;
    let (version, status, _) = get(&w, &mut send, "/v1/bdbs").await;
    assert_eq!((version, status), (http::Version::HTTP_2, 200));
    let idle_from = Instant::now();
    let closed = tokio::time::timeout(WAIT, ended).await;
    assert!(closed.is_ok(), "the idle h2 connection was kept open");
    let after = idle_from.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}, before the idle timeout"
    );
}

/// A drain lets the stream in flight on an h2 connection finish with its
/// answer, then closes the connection; shutdown does not wait for more.
#[tokio::test]
async fn drain_lets_an_in_flight_h2_stream_finish_then_closes() {
    let w = World::start().await;
    w.node(0)
        .set_mode(regate::sim::Mode::SlowHead(Duration::from_millis(700)));
    let (send, ended) = h2_client(connect(&w, &[b"h2"]).await).await;
    let req = http::Request::get(w.url("/v1/bdbs"))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .body(Empty::new())
        .unwrap();
    let mut sender = send.clone();
    let in_flight = tokio::spawn(async move { sender.send_request(req).await });
    let t = Instant::now();
    while w.node(0).request_count() < 1 {
        assert!(t.elapsed() < WAIT, "the request never reached the node");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop = tokio::spawn(w.gateway.shutdown());
    let resp = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the in-flight answer")
        .unwrap()
        .expect("a response, not a reset");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(!body.is_empty());
    assert!(
        tokio::time::timeout(WAIT, ended).await.is_ok(),
        "the connection stayed open"
    );
    assert!(
        tokio::time::timeout(WAIT, stop).await.is_ok(),
        "shutdown did not finish"
    );
    drop(send);
}
