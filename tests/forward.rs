//! Forwarding over HTTP/1.1 and h2: bodies, query strings and headers
//! arrive at the node intact; hop-by-hop headers are stripped and ours
//! cannot be removed by the client.

mod common;

use common::*;
use sha2::{Digest, Sha256};

const BDBS_FIXTURE: &[u8] = include_bytes!("../src/sim/fixtures/GET_v1_bdbs.json");

#[tokio::test]
async fn get_over_http1_and_h2_returns_the_fixture() {
    let w = World::start().await;
    for h2 in [false, true] {
        let r = w.client(h2).get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "h2={h2}");
        assert_eq!(r.body.as_ref(), BDBS_FIXTURE, "h2={h2}");
        let want = if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(r.version, want);
        assert!(r.headers.contains_key("x-request-id"));
    }
    // the node received HTTP/1.1 with our forwarding headers
    let reqs = w.upstream_requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.target, "/v1/bdbs");
        assert_eq!(r.header("x-forwarded-for"), Some(&b"127.0.0.1"[..]));
        assert_eq!(r.header("x-forwarded-proto"), Some(&b"https"[..]));
        assert!(r.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn query_string_is_kept_byte_for_byte() {
    let w = World::start().await;
    let target = "/v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b%2Cc";
    for h2 in [false, true] {
        let r = w.client(h2).get(&w.url(target), ADMIN).await;
        assert_eq!(r.status, 200);
    }
    let reqs = w.upstream_requests();
    assert_eq!(reqs.len(), 2);
    for r in reqs {
        assert_eq!(r.target, target);
    }
}

#[tokio::test]
async fn pass_through_headers_and_body_arrive_intact() {
    let w = World::start().await;
    let body = br#"{"name":"db1","memory_size":1073741824}"#;
    for h2 in [false, true] {
        w.node(0).clear_requests();
        let r = w
            .client(h2)
            .call(
                "POST",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[
                    ("content-type", "application/json"),
                    ("cluster-state-id", "42"),
                    ("x-task-id", "task-7"),
                    ("x-result-ttl", "300"),
                    ("accept-encoding", "gzip"),
                    ("content-disposition", "attachment; filename=x.json"),
                    ("x-request-id", "client-supplied-id-1"),
                ],
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["action_uid"].is_string());
        assert_eq!(r.headers["x-request-id"], "client-supplied-id-1");
        let got = w.node(0).requests();
        assert_eq!(got.len(), 1);
        let up = &got[0];
        assert_eq!(up.method, "POST");
        assert_eq!(up.body_len, body.len() as u64);
        assert_eq!(up.body_sha256, hex(&Sha256::digest(body)));
        for (k, v) in [
            ("content-type", "application/json"),
            ("cluster-state-id", "42"),
            ("x-task-id", "task-7"),
            ("x-result-ttl", "300"),
            ("accept-encoding", "gzip"),
            ("content-disposition", "attachment; filename=x.json"),
            ("x-request-id", "client-supplied-id-1"),
        ] {
            assert_eq!(up.header(k), Some(v.as_bytes()), "{k} h2={h2}");
        }
        // passthrough: the node checks the client's credentials again
        assert_eq!(
            up.header("authorization"),
            Some(basic(ADMIN.0, ADMIN.1).as_bytes())
        );
    }
}

#[tokio::test]
async fn hop_by_hop_and_spoofed_headers_are_stripped() {
    let w = World::start().await;
    let mut s = w.raw().await;
    let req = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\
         Connection: close, X-Forwarded-For, X-Request-Id, X-Custom\r\nX-Custom: 1\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nTE: trailers\r\nKeep-Alive: timeout=5\r\n\
         X-HTTP-Method-Override: DELETE\r\nX-Original-URL: /v1/users\r\nr-auth-user: admin\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    let (resp, closed) =
        raw_exchange(&mut s, req.as_bytes(), std::time::Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(closed, "Connection: close must close");
    let reqs = w.upstream_requests();
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up.method, "GET");
    assert_eq!(up.header_all("x-forwarded-for"), vec![&b"127.0.0.1"[..]]);
    assert!(up.header("x-request-id").is_some());
    for gone in [
        "x-custom",
        "x-real-ip",
        "te",
        "keep-alive",
        "x-http-method-override",
        "x-original-url",
        "r-auth-user",
    ] {
        assert!(up.header(gone).is_none(), "{gone} reached the node");
    }
    // Host is ours (the node's authority), not the client's
    assert_ne!(up.header("host"), Some(&b"localhost"[..]));
}

#[tokio::test]
async fn tunnels_and_unknown_methods_are_refused() {
    let w = World::start().await;
    let c = w.client(false);
    for (method, want) in [("CONNECT", 405), ("TRACE", 405), ("FOO", 405)] {
        let r = c
            .call(method, &w.url("/v1/bdbs"), Some(ADMIN), &[], b"")
            .await;
        assert_eq!(r.status, want, "{method}");
        assert!(r.json()["error_code"].is_string());
    }
    let mut s = w.raw().await;
    let req = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    let (resp, _) = raw_exchange(&mut s, req.as_bytes(), std::time::Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("upgrade_not_supported"));
    assert!(w.upstream_requests().is_empty());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
