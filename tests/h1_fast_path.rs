//! The HTTP/1.1 fast path (src/server/h1.rs) over real TLS, byte for
//! byte: pipelined bodyless requests, the hand-over to hyper in the middle
//! of a connection (a body, a malformed head), HEAD, `Connection: close`,
//! heads split across reads, and the keep-alive idle close. Each case
//! checks what the client read, whether the connection closed, what the
//! nodes received and what the audit trail says.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);

fn get(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n{extra}\r\n",
        basic(ADMIN.0, ADMIN.1)
    )
}

#[tokio::test]
async fn pipelined_gets_then_a_body_then_gets_again_on_one_connection() {
    let w = World::start().await;
    let body = r#"{"name":"db1","memory_size":1073741824}"#;
    let post = format!(
        "POST /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        basic(ADMIN.0, ADMIN.1),
        body.len()
    );
    let all = [
        get("/v1/bdbs", ""),
        get("/v1/nodes", ""),
        get("/v1/cluster", ""),
        post,
        get("/v1/users", "Connection: close\r\n"),
    ]
    .concat();
    let mut s = w.raw().await;
    let (resp, closed) = raw_exchange(&mut s, all.as_bytes(), WAIT).await;
    let st = statuses(&resp);
    assert_eq!(st.len(), 5, "{resp}");
    assert!(st.iter().all(|s| (200..300).contains(s)), "{st:?}\n{resp}");
    assert!(closed, "Connection: close was asked");
    assert_eq!(
        targets(&w),
        [
            "GET /v1/bdbs",
            "GET /v1/nodes",
            "GET /v1/cluster",
            "POST /v1/bdbs",
            "GET /v1/users"
        ]
    );
    let ups = w.upstream_requests();
    assert_eq!(ups[3].body_len, body.len() as u64);
    // every response framed and dated; the last one announces the close
    assert_eq!(resp.matches("\r\ndate: ").count(), 5, "{resp}");
    assert_eq!(resp.matches("\r\nx-request-id: ").count(), 5, "{resp}");
    let last = &resp[resp.rfind("HTTP/1.1 ").unwrap_or(0)..];
    assert!(last.contains("\r\nconnection: close\r\n"), "{last}");
    let recs = wait_audit(&w, 5).await;
    let mut paths: Vec<_> = recs
        .iter()
        .map(|r| format!("{} {}", r["method"], r["status"]))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 5, "{recs:?}");
}

#[tokio::test]
async fn fast_path_answers_match_the_json_errors_and_framing() {
    let w = World::start().await;
    let mut s = w.raw().await;
    // unknown route, no credentials, wrong method: JSON bodies with lengths
    let req = [
        "GET /v1/nope HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
        get("/v1/bdbs", "Connection: close\r\n"),
    ]
    .concat();
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [404, 401, 200], "{resp}");
    assert!(closed);
    let first = &resp[..resp[9..].find("HTTP/1.1 ").map_or(resp.len(), |i| i + 9)];
    let (head, json) = first.split_once("\r\n\r\n").expect("head");
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    assert_eq!(cl, json.len(), "{first}");
    let v: serde_json::Value = serde_json::from_str(json).expect("json body");
    assert!(
        v["error_code"].is_string() && v["description"].is_string(),
        "{v}"
    );
    assert!(resp.contains("www-authenticate: Basic"), "{resp}");
}

#[tokio::test]
async fn head_has_no_body_and_the_connection_goes_on() {
    let w = World::start().await;
    let mut s = w.raw().await;
    let req = format!(
        "HEAD /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n{}",
        basic(ADMIN.0, ADMIN.1),
        get("/v1/bdbs", "Connection: close\r\n")
    );
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    // the API has no HEAD routes: 404, without the JSON body a GET gets
    assert_eq!(statuses(&resp), [404, 200], "{resp}");
    assert!(closed);
    // the HEAD answer ends right at its blank line: the next bytes are the
    // second status line
    let second = resp[9..].find("HTTP/1.1 ").expect("second") + 9;
    assert!(resp[..second].ends_with("\r\n\r\n"), "{resp}");
    assert!(!resp[..second].contains("error_code"), "{resp}");
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
}

#[tokio::test]
async fn a_head_split_into_single_bytes_is_served() {
    let w = World::start().await;
    let mut s = w.raw().await;
    let req = get("/v1/bdbs", "Connection: close\r\n");
    for b in req.as_bytes() {
        s.write_all(&[*b]).await.expect("write");
        s.flush().await.expect("flush");
    }
    let (resp, closed) = raw_exchange(&mut s, b"", WAIT).await;
    assert_eq!(statuses(&resp), [200], "{resp}");
    assert!(closed);
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
}

#[tokio::test]
async fn a_malformed_head_after_fast_requests_is_refused_by_hyper_and_audited() {
    let w = World::start().await;
    let mut s = w.raw().await;
    let req = format!(
        "{}GET /v1/bdbs HTTP/1.1\r\nBad Header: x\r\n\r\n",
        get("/v1/bdbs", "")
    );
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [200, 400], "{resp}");
    assert!(closed);
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
    let recs = wait_audit(&w, 2).await;
    let mut st: Vec<_> = recs.iter().map(|r| r["status"].as_u64()).collect();
    st.sort();
    assert_eq!(st, [Some(200), Some(400)], "{recs:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_request_header() {
    let w = World::with(Setup {
        extra: "[timeouts]\nrequest_header = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = w.raw().await;
    s.write_all(get("/v1/bdbs", "").as_bytes())
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&out);
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(
        closed,
        "an idle connection must not be kept beyond request_header"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}: before its idle time",
        started.elapsed()
    );
}

/// Reads one whole response framed by Content-Length; None on EOF first.
async fn read_response(
    s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())?;
            if body.len() >= len {
                return Some(text);
            }
        }
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// True when the server closes the connection (EOF) within WAIT.
async fn sees_eof(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(WAIT, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn drain_closes_idle_fast_path_connections_at_once() {
    let w = World::start().await;
    let mut s = w.raw().await;
    s.write_all(get("/v1/bdbs", "").as_bytes())
        .await
        .expect("write");
    let resp = read_response(&mut s).await.expect("a response");
    assert_eq!(statuses(&resp), [200], "{resp}");
    // the connection is idle and kept alive; the drain timeout is 30 s:
    // shutting down must close it instead of waiting that out
    let gateway = w.gateway;
    let stopped = tokio::time::timeout(WAIT, gateway.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited on an idle keep-alive connection"
    );
    assert!(sees_eof(&mut s).await, "the idle connection was not closed");
}

#[tokio::test]
async fn drain_lets_an_in_flight_request_finish_then_closes() {
    let w = World::start().await;
    w.node(0)
        .set_mode(regate::sim::Mode::SlowHead(Duration::from_millis(700)));
    let mut s = w.raw().await;
    s.write_all(get("/v1/bdbs", "").as_bytes())
        .await
        .expect("write");
    let t = std::time::Instant::now();
    while w.node(0).request_count() < 1 {
        assert!(t.elapsed() < WAIT, "the request never reached the node");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop = tokio::spawn(w.gateway.shutdown());
    let resp = read_response(&mut s).await.expect("the in-flight answer");
    assert_eq!(statuses(&resp), [200], "{resp}");
    assert!(resp.contains("\r\nconnection: close\r\n"), "{resp}");
    assert!(sees_eof(&mut s).await);
    assert!(tokio::time::timeout(WAIT, stop).await.is_ok());
}

#[tokio::test]
async fn a_complete_head_over_max_header_bytes_is_refused_even_when_read_whole() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_header_bytes = 8192\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = w.raw().await;
    let req = get("/v1/bdbs", &format!("X-Pad: {}\r\n", "a".repeat(9000)));
    // two writes: the gateway may see a partial head first, then the rest
    // in one read that completes a head larger than the limit
    s.write_all(&req.as_bytes()[..4000]).await.expect("write");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (resp, closed) = raw_exchange(&mut s, &req.as_bytes()[4000..], WAIT).await;
    assert_eq!(statuses(&resp), [431], "{resp}");
    assert!(closed);
    assert!(targets(&w).is_empty(), "{:?}", targets(&w));
}

#[tokio::test]
async fn a_target_too_long_for_a_uri_gets_hyper_s_answer_and_an_audit_record() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_header_bytes = 131072\n".into(),
        ..Setup::default()
    })
    .await;
    let mut s = w.raw().await;
    // httparse takes it; http's Uri refuses targets over 64 KiB
    let path = format!("/v1/bdbs?x={}", "a".repeat(70_000));
    let (resp, closed) = raw_exchange(&mut s, get(&path, "").as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [414], "{resp}");
    assert!(closed);
    assert!(targets(&w).is_empty(), "{:?}", targets(&w));
    let recs = wait_audit(&w, 1).await;
    assert_eq!(recs[0]["status"].as_u64(), Some(414), "{recs:?}");
}
