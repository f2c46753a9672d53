//! The protocol boundary (issue 14 items 3 and 5): bodies where the route
//! takes none are refused before authentication, on every protocol; a
//! duplicate `X-API-Version` is refused; HTTP/1.1 by ALPN stays HTTP/1.1
//! (no late h2 preface).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

fn error_code(resp: &str) -> Option<String> {
    let body = resp.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    v["error_code"].as_str().map(str::to_owned)
}

/// A GET or DELETE carrying a body (the profile has no HEAD route: 404), over raw HTTP/1.1 and HTTP/1.0,
/// gets 400 `body_not_allowed` and a close, with or without credentials;
/// the smuggled "second request" in the body never reaches a node.
#[tokio::test]
async fn bodies_on_bodyless_routes_are_refused_before_auth() {
    let w = World::start().await;
    let auth = format!("Authorization: {}\r\n", basic(ADMIN.0, ADMIN.1));
    let inner = "GET /v1/users HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases = [
        ("GET /v1/bdbs HTTP/1.1", auth.as_str(), "content-length"),
        ("GET /v1/bdbs HTTP/1.1", "", "content-length"),
        (
            "DELETE /v1/bdbs/1 HTTP/1.1",
            auth.as_str(),
            "content-length",
        ),
        ("GET /v1/bdbs HTTP/1.1", auth.as_str(), "chunked"),
        ("GET /v1/bdbs HTTP/1.0", auth.as_str(), "content-length"),
    ];
    for (line, creds, framing) in cases {
        let framed = match framing {
            "chunked" => format!(
                "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
                inner.len()
            ),
            _ => format!("Content-Length: {}\r\n\r\n{inner}", inner.len()),
        };
        let req = format!("{line}\r\nHost: localhost\r\n{creds}{framed}");
        let mut s = w.raw().await;
        let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
        let status = resp.get(9..12);
        assert_eq!(status, Some("400"), "{line} {framing}: {resp}");
        assert_eq!(
            error_code(&resp).as_deref(),
            Some("body_not_allowed"),
            "{line}"
        );
        assert!(closed, "{line}: the connection must close");
    }
    assert!(w.upstream_requests().is_empty(), "{:?}", targets(&w));

    // the same over h2 (DATA frames on a GET)
    let r = w
        .client(true)
        .call(
            "GET",
            &w.url("/v1/bdbs"),
            Some(ADMIN),
            &[],
            inner.as_bytes(),
        )
        .await;
    assert_eq!((r.version, r.status), (http::Version::HTTP_2, 400));
    assert_eq!(r.json()["error_code"], "body_not_allowed");
    assert!(w.upstream_requests().is_empty());

    // a GET without a body, and `Content-Length: 0`, are served
    let mut s = w.raw().await;
    let req = format!("GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    let (resp, _) = raw_exchange(&mut s, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&resp), [200], "{resp}");
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
}

/// `DELETE /v1/users/password` documents a body (the user and the password
/// to remove): it is forwarded with it.
#[tokio::test]
async fn delete_user_password_keeps_its_documented_body() {
    let w = World::start().await;
    let body = format!(r#"{{"username":"{}","old_password":"x"}}"#, ADMIN.0);
    let r = w
        .client(false)
        .call(
            "DELETE",
            &w.url("/v1/users/password"),
            Some(ADMIN),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    assert_ne!(r.status, 400, "{:?}", r.body);
    let got = w.upstream_requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_len, body.len() as u64);
}

/// Two `X-API-Version` headers: 400, whatever they say, on both protocols.
#[tokio::test]
async fn duplicate_api_version_is_refused() {
    let w = World::start().await;
    for h2 in [false, true] {
        let r = w
            .client(h2)
            .call(
                "GET",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-api-version", "v1"), ("x-api-version", "v2")],
                b"",
            )
            .await;
        assert_eq!(r.status, 400, "h2={h2}");
        assert_eq!(r.json()["error_code"], "duplicate_header");
    }
    assert!(w.upstream_requests().is_empty());
    let r = w
        .client(false)
        .call(
            "GET",
            &w.url("/v1/bdbs"),
            Some(ADMIN),
            &[("x-api-version", "v1")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
}

async fn connect(w: &World, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = client_tls(&w.pki.ca_pem, alpn);
    let tcp = TcpStream::connect(w.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The h2 client preface, then an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether the server answered with an h2 SETTINGS frame (it switched to h2).
async fn answers_h2(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> (bool, String) {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    let settings = out.len() >= 9 && out[3] == 0x04 && out[..3] != *b"HTT";
    (settings, String::from_utf8_lossy(&out).into_owned())
}

/// HTTP/1.1 negotiated by ALPN, or a connection that already served a
/// request, never switches to h2 on a late preface.
#[tokio::test]
async fn late_or_alpn_http11_h2_preface_is_not_served_as_h2() {
    let w = World::start().await;
    // ALPN http/1.1, preface first
    let mut tls = connect(&w, &[b"http/1.1"]).await;
    tls.write_all(PREFACE).await.unwrap();
    let (h2, text) = answers_h2(&mut tls).await;
    assert!(!h2, "ALPN http/1.1 switched to h2: {text:?}");

    // no ALPN: a fast-path request, then the preface
    let mut tls = connect(&w, &[]).await;
    let get = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    let mut bytes = get.into_bytes();
    bytes.extend_from_slice(PREFACE);
    tls.write_all(&bytes).await.unwrap();
    let (h2, text) = answers_h2(&mut tls).await;
    assert!(!h2, "switched to h2 after a request: {text:?}");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(targets(&w), ["GET /v1/bdbs"]);
}

/// Reads h2 frames until the connection ends: (type, flags, payload) each.
async fn frames_until_close(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
) -> Vec<(u8, u8, Vec<u8>)> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw)).await;
    let mut out = Vec::new();
    let mut at = 0;
    while raw.len() >= at + 9 {
        let len = (usize::from(raw[at]) << 16)
            | (usize::from(raw[at + 1]) << 8)
            | usize::from(raw[at + 2]);
        let end = (at + 9 + len).min(raw.len());
        out.push((raw[at + 3], raw[at + 4], raw[at + 9..end].to_vec()));
        at += 9 + len;
    }
    out
}

/// A PING or SETTINGS flood ends in GOAWAY(ENHANCE_YOUR_CALM) and a close,
/// long before 2,000 frames are answered; a few PINGs are just answered.
#[tokio::test]
async fn h2_ping_and_settings_floods_end_in_goaway() {
    let w = World::start().await;
    for (kind, flood) in [(0x6u8, 2000), (0x4, 2000)] {
        let mut tls = connect(&w, &[b"h2"]).await;
        let mut bytes = PREFACE.to_vec();
        for i in 0..flood {
            match kind {
                0x6 => {
                    bytes.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]);
                    bytes.extend_from_slice(&(i as u64).to_be_bytes());
                }
                _ => bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]),
            }
        }
        // the server may close while this is still being written
        let _ = tls.write_all(&bytes).await;
        let frames = frames_until_close(&mut tls).await;
        let goaway = frames.iter().find(|f| f.0 == 0x7).expect("no GOAWAY");
        assert_eq!(&goaway.2[4..8], &[0, 0, 0, 0xb], "not ENHANCE_YOUR_CALM");
        let answered = frames
            .iter()
            .filter(|f| f.0 == kind && f.1 & 1 == 1)
            .count();
        assert!(
            answered < 500,
            "{answered} of {flood} answered before the GOAWAY"
        );
    }
    // an ordinary client's few PINGs are answered, the connection kept
    let mut tls = connect(&w, &[b"h2"]).await;
    let mut bytes = PREFACE.to_vec();
    for i in 0..10u64 {
        bytes.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&i.to_be_bytes());
    }
    tls.write_all(&bytes).await.unwrap();
    let mut raw = vec![0u8; 4096];
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == 6).count() < 10 {
        let n = tokio::time::timeout(WAIT, tls.read(&mut raw))
            .await
            .expect("PINGs not answered")
            .unwrap();
        assert!(n > 0, "closed on 10 PINGs");
        // count PING ACK frame heads: type 6, flags 1, length 8
        got.extend(
            raw[..n]
                .windows(5)
                .filter(|w| w[..5] == [0, 0, 8, 6, 1])
                .map(|_| 6u8),
        );
    }
}
