//! One response framing for both upstream paths: each mis-framed answer a
//! node can give is judged the same whether the request went inline (a
//! bodyless GET) or through hyper (a POST with a body), and whether the
//! client speaks HTTP/1.1 or h2. Nodes are the simulator in its fault
//! modes; what is asserted is what the client receives.

mod common;

use common::*;
use regate::sim::Mode;

/// The two client paths: (method, path, body).
const PATHS: [(&str, &str, &[u8]); 2] = [
    ("GET", "/v1/bdbs", b""),
    ("POST", "/v1/bdbs", b"{\"name\":\"db\"}"),
];

async fn call(w: &World, c: &TestClient, path: (&str, &str, &[u8])) -> Reply {
    let (method, target, body) = path;
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("content-type", "application/json")]
    };
    c.call(method, &w.url(target), Some(ADMIN), headers, body)
        .await
}

/// Every path and protocol against a node in `mode`, each on a fresh
/// gateway and node (no pooled connection carries over).
async fn each_case(mode: Mode, check: impl Fn(&str, &World, Reply)) {
    for h2 in [false, true] {
        for path in PATHS {
            let w = World::start().await;
            w.node(0).set_mode(mode.clone());
            let r = call(&w, &w.client(h2), path).await;
            let case = format!("{mode:?} {} h2={h2}", path.0);
            check(&case, &w, r);
        }
    }
}

fn bad_gateway(case: &str, r: &Reply) {
    assert_eq!(
        r.status,
        502,
        "{case}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["error_code"], "bad_upstream_response", "{case}");
}

#[tokio::test]
async fn refused_framings_are_502_on_both_paths() {
    for mode in [
        Mode::BadCl,
        Mode::GzipChunked,
        Mode::Switching,
        Mode::HugeHead,
    ] {
        each_case(mode, |case, _, r| bad_gateway(case, &r)).await;
    }
}

#[tokio::test]
async fn a_list_of_equal_lengths_is_one_length() {
    each_case(Mode::ClList, |case, _, r| {
        assert_eq!(r.status, 200, "{case}");
        assert_eq!(r.body.as_ref(), b"hello", "{case}");
        let lengths: Vec<_> = r.headers.get_all("content-length").iter().collect();
        if r.version == http::Version::HTTP_11 {
            assert_eq!(lengths, ["5"], "{case}");
        } else {
            assert!(lengths.iter().all(|v| *v == "5"), "{case}: {lengths:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn no_content_and_not_modified_carry_no_length() {
    for (mode, status) in [(Mode::NoContentWithCl, 204), (Mode::NotModifiedWithCl, 304)] {
        each_case(mode, |case, _, r| {
            assert_eq!(r.status, status, "{case}");
            assert!(r.body.is_empty(), "{case}");
            assert!(!r.headers.contains_key("content-length"), "{case}");
        })
        .await;
    }
}

#[tokio::test]
async fn length_with_chunked_drops_the_length_and_the_connection() {
    for h2 in [false, true] {
        for path in PATHS {
            let w = World::start().await;
            let c = w.client(h2);
            w.node(0).set_mode(Mode::ClAndChunked);
            let r = call(&w, &c, path).await;
            let case = format!("{} h2={h2}", path.0);
            // the chunked body whole, never `hel` as a complete body
            assert_eq!(r.status, 200, "{case}");
            assert_eq!(r.body.as_ref(), b"hello", "{case}");
            assert_ne!(
                r.headers.get("content-length").map(|v| v.as_bytes()),
                Some(&b"3"[..]),
                "{case}"
            );
            // a node that framed an answer two ways is not asked again on
            // the same connection
            w.node(0).set_mode(Mode::Normal);
            assert_eq!(call(&w, &c, path).await.status, 200, "{case}");
            assert_eq!(w.node(0).connections(), 2, "{case}");
        }
    }
}

#[tokio::test]
async fn head_limits_are_configurable_for_both_paths() {
    // a 200 KiB header fits under a 256 KiB limit
    let w = World::with(Setup {
        extra: "[limits]\nupstream_max_header_bytes = 262144\n".into(),
        ..Setup::default()
    })
    .await;
    w.node(0).set_mode(Mode::HugeHead);
    let c = w.client(false);
    for path in PATHS {
        let r = call(&w, &c, path).await;
        assert_eq!(r.status, 200, "{}", path.0);
        assert_eq!(r.headers["x-sim-huge"].len(), 200 * 1024);
    }
    // and a head with more header lines than allowed is refused
    let w = World::with(Setup {
        extra: "[limits]\nupstream_max_headers = 16\n".into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    for path in PATHS {
        assert_eq!(call(&w, &c, path).await.status, 200, "{}", path.0);
    }
    // a node that sent a head over the limits is taken out: one gateway
    // per path
    for path in PATHS {
        let w = World::with(Setup {
            extra: "[limits]\nupstream_max_headers = 16\n".into(),
            ..Setup::default()
        })
        .await;
        w.node(0).set_mode(Mode::ManyHeaders);
        bad_gateway(path.0, &call(&w, &w.client(false), path).await);
    }
    // 40 extra lines are within the default of 100
    let w = World::start().await;
    w.node(0).set_mode(Mode::ManyHeaders);
    let c = w.client(false);
    for path in PATHS {
        let r = call(&w, &c, path).await;
        assert_eq!(r.status, 200, "{}", path.0);
        assert_eq!(r.headers.get_all("x-sim-many").iter().count(), 40);
    }
}

#[tokio::test]
async fn a_truncated_body_never_completes_at_the_client() {
    use http_body_util::BodyExt;
    for h2 in [false, true] {
        for (method, target, body) in PATHS {
            let w = World::start().await;
            w.node(0).set_mode(Mode::ShortBody);
            let mut req = http::Request::builder()
                .method(method)
                .uri(w.url(target))
                .header("authorization", basic(ADMIN.0, ADMIN.1));
            if !body.is_empty() {
                req = req.header("content-type", "application/json");
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
                .unwrap();
            // the head may or may not get out before the cut; the body
            // must end in an error (h1: closed early; h2: RST_STREAM)
            match w.client(h2).raw_request(req).await {
                Err(_) => {}
                Ok(resp) => assert!(
                    resp.into_body().collect().await.is_err(),
                    "{method} h2={h2}: a cut body completed"
                ),
            }
        }
    }
}
