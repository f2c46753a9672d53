//! The inline client path (bodyless requests) against a node scripted
//! byte by byte: what the node receives, how each response framing reaches
//! the client, when a connection is reused, replaced or retried, and what
//! a client sees when the node's bytes are not HTTP.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// (connection number, request head bytes), in arrival order.
type Seen = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

/// What the scripted node does after reading one request head.
#[derive(Clone)]
enum Act {
    /// Writes these bytes (one write) and waits for the next request.
    Reply(&'static [u8]),
    /// Writes these bytes, then closes.
    ReplyClose(&'static [u8]),
    /// Closes without writing a byte.
    Hangup,
}

/// A node that answers connection `i` with `script[i]`, in order, and
/// closes a connection once its script is done.
struct RawNode {
    url: String,
    port: u16,
    seen: Seen,
    /// Connection numbers, as the node closes them.
    closed: mpsc::UnboundedReceiver<usize>,
}

impl RawNode {
    async fn start(script: Vec<Vec<Act>>) -> RawNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, closed) = mpsc::unbounded_channel();
        let log = seen.clone();
        tokio::spawn(async move {
            for conn in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acts = script.get(conn).cloned().unwrap_or_default();
                let (log, tx) = (log.clone(), tx.clone());
                tokio::spawn(async move {
                    serve(stream, conn, acts, log).await;
                    let _ = tx.send(conn);
                });
            }
        });
        RawNode {
            url: format!("http://127.0.0.1:{port}"),
            port,
            seen,
            closed,
        }
    }

    fn seen(&self) -> Vec<(usize, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests arrived on each connection, by connection number.
    fn per_conn(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (conn, _) in self.seen() {
            if out.len() <= conn {
                out.resize(conn + 1, 0);
            }
            out[conn] += 1;
        }
        out
    }

    /// Waits until the node has closed connection `conn`.
    async fn wait_closed(&mut self, conn: usize) {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(5), self.closed.recv())
                .await
                .expect("the node closes the connection")
                .unwrap();
            if got == conn {
                return;
            }
        }
    }
}

async fn serve(mut s: TcpStream, conn: usize, acts: Vec<Act>, log: Seen) {
    for act in acts {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        // byte by byte: never read past this request's head
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        log.lock().unwrap().push((conn, head));
        match act {
            Act::Reply(bytes) => s.write_all(bytes).await.unwrap(),
            Act::ReplyClose(bytes) => {
                s.write_all(bytes).await.unwrap();
                return;
            }
            Act::Hangup => return,
        }
    }
}

const ONE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"n\":\"1\"}";
const TWO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"n\":\"2\"}";

async fn gateway_for(node: &RawNode) -> World {
    World::with(Setup {
        node_urls: vec![node.url.clone()],
        extra: "[timeouts]\nupstream_response = \"2s\"\nupstream_body = \"3s\"\n".into(),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn node_receives_exactly_our_request_head() {
    let node = RawNode::start(vec![vec![Act::Reply(ONE)]]).await;
    let w = gateway_for(&node).await;
    let auth = basic(ADMIN.0, ADMIN.1);
    let req = format!(
        "GET /v1/bdbs?fields=uid,name&x=%2F HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\
         Accept: application/json\r\nX-Request-Id: exact-1\r\nConnection: close\r\n\r\n"
    );
    let mut s = w.raw().await;
    let (resp, _) = raw_exchange(&mut s, req.as_bytes(), Duration::from_secs(5)).await;
    // a Content-Length response is relayed with its length, not re-chunked
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("content-length: 9\r\n"), "{resp}");
    assert!(!resp.contains("transfer-encoding"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n{\"n\":\"1\"}"), "{resp}");
    let seen = node.seen();
    assert_eq!(seen.len(), 1);
    let want = format!(
        "GET /v1/bdbs?fields=uid,name&x=%2F HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: application/json\r\n\
         authorization: {auth}\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: https\r\n\
         x-request-id: exact-1\r\n\r\n",
        node.port
    );
    assert_eq!(String::from_utf8_lossy(&seen[0].1), want);
}

#[tokio::test]
async fn chunked_response_arrives_intact_and_the_connection_is_reused() {
    let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
        4;ext=1\r\n{\"a\"\r\n7 ; name=\"v;x\"\r\n:[1,2,3\r\n2\r\n]}\r\n0\r\nX-Checksum: abc\r\n\r\n";
    let node = RawNode::start(vec![vec![Act::Reply(chunked), Act::Reply(TWO)]]).await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), b"{\"a\":[1,2,3]}");
    assert!(!r.headers.contains_key("x-checksum"));
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.body.as_ref(), b"{\"n\":\"2\"}");
    assert_eq!(node.per_conn(), vec![2], "both requests on one connection");
}

#[tokio::test]
async fn close_delimited_response_is_relayed_and_not_reused() {
    let until_close: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"until\":\"close\"}";
    let node = RawNode::start(vec![
        vec![Act::ReplyClose(until_close)],
        vec![Act::Reply(TWO)],
    ])
    .await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), b"{\"until\":\"close\"}");
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.body.as_ref(), b"{\"n\":\"2\"}");
    assert_eq!(node.per_conn(), vec![1, 1]);
}

#[tokio::test]
async fn informational_heads_are_skipped() {
    let with_1xx: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    let node = RawNode::start(vec![vec![Act::Reply(with_1xx)]]).await;
    let w = gateway_for(&node).await;
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), b"{}");
    assert!(!r.headers.contains_key("link"));
}

#[tokio::test]
async fn head_response_has_no_body_and_keeps_the_connection() {
    // HEAD is not an API route: drive the client directly
    let node = RawNode::start(vec![vec![
        Act::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n\r\n",
        ),
        Act::Reply(TWO),
    ]])
    .await;
    let up = regate::config::Upstream {
        nodes: Vec::new(),
        tls: regate::upstream::client::tls_config(None).unwrap(),
        pool_max_idle_per_node: 4,
        versions: Vec::new(),
        health: Default::default(),
        retry: Default::default(),
        aliases: Vec::new(),
        verifier: None,
        server_name: None,
        prefer_master: false,
    };
    let client = regate::upstream::client::build(&up, Duration::from_secs(2));
    let send = |method: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/bdbs", node.url))
            .body(regate::body::RequestBody::empty())
            .unwrap()
    };
    let resp = client.request(send("HEAD")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "1234");
    assert!(http_body::Body::is_end_stream(resp.body()));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
    let resp = client.request(send("GET")).await.unwrap();
    assert_eq!(http_body::Body::size_hint(resp.body()).exact(), Some(9));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.as_ref(), b"{\"n\":\"2\"}");
    assert_eq!(node.per_conn(), vec![2]);
    assert!(node.seen()[0].1.starts_with(b"HEAD /v1/bdbs HTTP/1.1\r\n"));
}

#[tokio::test]
async fn idle_connection_closed_by_the_node_is_replaced() {
    let mut node = RawNode::start(vec![vec![Act::ReplyClose(ONE)], vec![Act::Reply(TWO)]]).await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), ADMIN).await.body.as_ref(),
        b"{\"n\":\"1\"}"
    );
    // the response said keep-alive, so the gateway pooled the connection
    node.wait_closed(0).await;
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body.as_ref(), b"{\"n\":\"2\"}");
    assert_eq!(node.per_conn(), vec![1, 1]);
}

#[tokio::test]
async fn request_on_a_connection_closed_under_it_is_retried_once() {
    let node = RawNode::start(vec![
        vec![Act::Reply(ONE), Act::Hangup],
        vec![Act::Reply(TWO)],
    ])
    .await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    let r = c.get(&w.url("/v1/bdbs?again"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body.as_ref(), b"{\"n\":\"2\"}");
    // the node saw the request on the old connection and once on the new one
    assert_eq!(node.per_conn(), vec![2, 1]);
    let seen = node.seen();
    assert_eq!(seen[1].1, seen[2].1, "the retry sends the same bytes");
}

#[tokio::test]
async fn bodyless_post_is_not_retried_once_written() {
    let node = RawNode::start(vec![
        vec![Act::Reply(ONE), Act::Hangup],
        vec![Act::Reply(TWO)],
    ])
    .await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    let r = c
        .call("POST", &w.url("/v1/bdbs"), Some(ADMIN), &[], b"")
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error_code"], "upstream_unreachable");
    assert_eq!(
        node.per_conn(),
        vec![2],
        "a POST the node may have acted on is not sent twice"
    );
}

#[tokio::test]
async fn bytes_past_the_framing_are_never_read_as_the_next_response() {
    let node = RawNode::start(vec![
        vec![
            Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"smuggled\":true}"),
            Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"old\":\"1\"}"),
        ],
        vec![Act::Reply(TWO)],
    ])
    .await;
    let w = gateway_for(&node).await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.body.as_ref(), b"{}");
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.body.as_ref(), b"{\"n\":\"2\"}");
    assert_eq!(node.per_conn(), vec![1, 1]);
}

#[tokio::test]
async fn responses_that_are_not_http_give_502() {
    let mut big_head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    big_head.resize(70 * 1024, b'a');
    big_head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let big_head: &'static [u8] = big_head.leak();
    let bad: Vec<&'static [u8]> = vec![
        b"\x00\x17\xfe\xff SSH-2.0-not-http \x9c\x01\r\n\r\n\xde\xad\xbe\xef",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 17\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Bad Name: 1\r\nContent-Length: 0\r\n\r\n",
        big_head,
    ];
    // each on its own node: a node that sent garbage is taken out
    for b in &bad {
        let node = RawNode::start(vec![vec![Act::ReplyClose(b)]]).await;
        let w = gateway_for(&node).await;
        let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
        let shown = String::from_utf8_lossy(&b[..b.len().min(60)]);
        assert_eq!(r.status, 502, "{shown}");
        assert_eq!(r.json()["error_code"], "bad_upstream_response", "{shown}");
    }
}

#[tokio::test]
async fn body_cut_short_aborts_the_client_stream() {
    let node = RawNode::start(vec![vec![Act::ReplyClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"uid\": 1,",
    )]])
    .await;
    let w = gateway_for(&node).await;
    let req = http::Request::get(w.url("/v1/bdbs"))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .body(Full::new(Bytes::new()))
        .unwrap();
    // Whether the head got out before the body failed depends on timing
    // (here head and short body arrive together, so usually not): either
    // way the client never sees a complete response.
    match w.client(false).raw_request(req).await {
        Err(_) => {}
        Ok(resp) => assert!(resp.into_body().collect().await.is_err()),
    }
}
