//! Every limit the README claims, exercised through the gateway (issue 14
//! item 7): `max_body_bytes` (413) and `request_body` (408) on both
//! protocols, the slow-head deadline, `max_connections`, `max_headers`,
//! `max_h2_streams`, and `trusted_proxies` end to end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(w: &World, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = client_tls(&w.pki.ca_pem, alpn);
    let tcp = TcpStream::connect(w.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// An h2 client (the h2 crate: frames under the test's control).
async fn h2(w: &World) -> h2::client::SendRequest<Bytes> {
    let tls = connect(w, &[b"h2"]).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send.ready().await.unwrap()
}

fn post(w: &World, len: Option<u64>) -> http::Request<()> {
    let mut b = http::Request::post(w.url("/v1/bdbs"))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .header("content-type", "application/json");
    if let Some(n) = len {
        b = b.header("content-length", n);
    }
    b.body(()).unwrap()
}

/// Status and `error_code` of an h2 response.
async fn h2_answer(resp: h2::client::ResponseFuture) -> (u16, String) {
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("no answer")
        .unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    (
        status,
        v["error_code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A body that grows past `max_body_bytes` without announcing its length
/// (chunked, h2 DATA without content-length) is cut with 413; the node's
/// request is aborted, never completed.
#[tokio::test]
async fn a_streamed_body_over_max_body_bytes_gets_413() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_body_bytes = 4096\n".into(),
        ..Setup::default()
    })
    .await;
    // HTTP/1.1, chunked
    let mut s = w.raw().await;
    let chunk = "x".repeat(1000);
    let mut req = format!(
        "POST /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    for _ in 0..8 {
        req.push_str(&format!("3e8\r\n{chunk}\r\n"));
    }
    req.push_str("0\r\n\r\n");
    let (resp, _) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [413], "{resp}");
    assert!(
        resp.contains("\"error_code\":\"payload_too_large\""),
        "{resp}"
    );

    // h2, DATA frames and no content-length
    let mut send = h2(&w).await;
    let (resp, mut stream) = send.send_request(post(&w, None), false).unwrap();
    stream
        .send_data(Bytes::from(vec![b'x'; 8000]), true)
        .unwrap();
    assert_eq!(
        h2_answer(resp).await,
        (413, "payload_too_large".to_string())
    );
    // no node ever received a complete body over the limit
    for r in w.upstream_requests() {
        assert!(r.body_len <= 4096, "a node got {} bytes", r.body_len);
    }
}

/// A body that stops arriving is cut at `timeouts.request_body` with 408,
/// on both protocols.
#[tokio::test]
async fn a_stalled_body_gets_408_at_request_body() {
    let w = World::with(Setup {
        extra: "[timeouts]\nrequest_body = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = w.raw().await;
    let req = format!(
        "POST /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        basic(ADMIN.0, ADMIN.1)
    );
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [408], "{resp}");
    assert!(
        resp.contains("\"error_code\":\"request_timeout\""),
        "{resp}"
    );
    assert!(closed);

    let mut send = h2(&w).await;
    let (resp, mut stream) = send.send_request(post(&w, Some(100)), false).unwrap();
    stream
        .send_data(Bytes::from_static(b"{\"name\":"), false)
        .unwrap();
    assert_eq!(h2_answer(resp).await, (408, "request_timeout".to_string()));
}

/// A head that never completes is closed at `timeouts.request_header`;
/// nothing reaches a node.
#[tokio::test]
async fn a_slow_head_is_closed_at_request_header() {
    let w = World::with(Setup {
        extra: "[timeouts]\nrequest_header = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = w.raw().await;
    let (_, closed) = raw_exchange(&mut s, b"GET /v1/bdbs HTTP/1.1\r\nHost: loc", WAIT).await;
    assert!(closed, "a slow head was kept open");
    assert!(w.upstream_requests().is_empty());
}

/// `max_connections`: connections over the cap are closed at once, and
/// the ones inside it keep working.
#[tokio::test]
async fn connections_over_max_connections_are_refused() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_connections = 2\n".into(),
        ..Setup::default()
    })
    .await;
    let mut a = w.raw().await;
    let mut b = w.raw().await;
    // the third TCP connection is closed before (or instead of) a handshake
    let mut tcp = TcpStream::connect(w.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection over the cap was kept: {read:?}"
    );
    let get = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    for s in [&mut a, &mut b] {
        s.write_all(get.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
}

/// More header lines than `max_headers`: 431, on the fast path's handover
/// to hyper as from the start.
#[tokio::test]
async fn too_many_headers_get_431() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_headers = 20\n".into(),
        ..Setup::default()
    })
    .await;
    let mut req = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    for i in 0..30 {
        req.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = w.raw().await;
    let (resp, _) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [431], "{resp}");
    assert!(w.upstream_requests().is_empty());
}

/// `max_h2_streams` is announced in SETTINGS, and a client that opens more
/// concurrent streams than that never has more in flight at the node.
#[tokio::test]
async fn h2_streams_are_capped_at_max_h2_streams() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_h2_streams = 2\n".into(),
        ..Setup::default()
    })
    .await;
    w.node(0)
        .set_mode(regate::sim::Mode::SlowHead(Duration::from_millis(500)));
    let send = h2(&w).await;
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for _ in 0..4 {
        let mut send = send.clone().ready().await.unwrap();
        let req = http::Request::get(w.url("/v1/bdbs"))
            .header("authorization", basic(ADMIN.0, ADMIN.1))
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        answers.push(tokio::spawn(async move {
            match tokio::time::timeout(WAIT, resp).await.expect("no answer") {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(e.reason()),
            }
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for a in answers {
        match a.await.unwrap() {
            Ok(200) => ok += 1,
            Err(Some(h2::Reason::REFUSED_STREAM)) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // streams opened before the client learnt the cap are refused by the
    // server (REFUSED_STREAM: never forwarded); the rest wait their turn
    assert!(ok >= 2 && ok + refused == 4, "ok {ok}, refused {refused}");
    assert_eq!(w.node(0).request_count(), ok);
    if ok == 4 {
        // four 500 ms answers, at most two at a time: two rounds at least
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1000), "4 streams in {took:?}");
    }
    // the cap the server announced in its SETTINGS
    assert_eq!(send.current_max_send_streams(), 2);
}

/// `trusted_proxies`: an untrusted peer's `X-Forwarded-For` changes
/// neither the rate-limit key nor the audit's `client_ip`; a trusted
/// peer's right-most untrusted hop is believed.
#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let limits = "[rate_limit]\nper_ip = { rate = \"1/min\", burst = 2 }\n";
    let w = World::with(Setup {
        extra: limits.into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    let mut statuses = Vec::new();
    for i in 0..3 {
        let xff = format!("10.0.0.{i}");
        let r = c
            .call(
                "GET",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-forwarded-for", &xff)],
                b"",
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429], "spoofed XFF evaded the limit");
    for v in wait_audit(&w, 3).await {
        assert_eq!(v["client_ip"], "127.0.0.1", "{v}");
    }

    let trusted = World::with(Setup {
        server: "trusted_proxies = [\"127.0.0.1\"]".into(),
        extra: limits.into(),
        ..Setup::default()
    })
    .await;
    let c = trusted.client(false);
    for i in 0..3 {
        let xff = format!("192.0.2.{i}");
        let r = c
            .call(
                "GET",
                &trusted.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-forwarded-for", &xff)],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "each client behind the proxy has its budget");
    }
    let ips: Vec<String> = wait_audit(&trusted, 3)
        .await
        .iter()
        .map(|v| v["client_ip"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ips, ["192.0.2.0", "192.0.2.1", "192.0.2.2"]);
}
