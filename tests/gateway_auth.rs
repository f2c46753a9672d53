//! Authentication through the real gateway (SECURITY.md group C, issue 3):
//! what a client sees for missing, malformed, duplicate, oversized and wrong
//! credentials, that none of those reach a node, that password guessing is
//! cut off before hashing, that no secret lands in the audit file, the
//! `forward = "service"` mode, and the `"cluster"` identity source against
//! the simulator.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use regate::auth::FailureReason;
use regate::sim::SimUser;

const CHALLENGE: &str = "Basic realm=\"regate\", charset=\"UTF-8\"";

fn assert_401(r: &Reply, what: &str) {
    assert_eq!(
        r.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(CHALLENGE.as_bytes()),
        "{what}"
    );
    assert_eq!(r.headers["content-type"], "application/json", "{what}");
    let j = r.json();
    assert_eq!(j["error_code"], "unauthorized", "{what}");
    assert!(j["description"].is_string(), "{what}");
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401_and_reach_no_node() {
    let w = World::with(Setup {
        nodes: 2,
        ..Setup::default()
    })
    .await;
    for h2 in [false, true] {
        let c = w.client(h2);
        let r = c.call("GET", &w.url("/v1/bdbs"), None, &[], b"").await;
        assert_401(&r, &format!("no credentials h2={h2}"));
        let r = c.get(&w.url("/v1/bdbs"), (VIEWER.0, "wrong")).await;
        assert_401(&r, &format!("wrong password h2={h2}"));
        let r = c.get(&w.url("/v1/bdbs"), ("nobody@redis.local", "x")).await;
        assert_401(&r, &format!("unknown user h2={h2}"));
        // a write with a body and no credentials
        let r = c
            .call("POST", &w.url("/v1/bdbs"), None, &[], br#"{"name":"x"}"#)
            .await;
        assert_401(&r, &format!("POST without credentials h2={h2}"));
    }
    assert!(w.upstream_requests().is_empty());
    // the right credentials do get through (the test can fail)
    let r = w.client(false).get(&w.url("/v1/bdbs"), VIEWER).await;
    assert_eq!(r.status, 200);
    assert_eq!(w.upstream_requests().len(), 1);
}

#[tokio::test]
async fn expect_100_continue_without_credentials_gets_401_and_a_close() {
    let w = World::start().await;
    let mut s = w.raw().await;
    let req = "POST /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
               Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n";
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 401 "), "{resp}");
    assert!(
        !resp.contains("100 Continue"),
        "100 Continue sent before auth: {resp}"
    );
    assert!(resp.contains(CHALLENGE), "{resp}");
    assert!(resp.contains("\"error_code\":\"unauthorized\""), "{resp}");
    assert!(
        closed,
        "the connection must close after a 401 with an unread body"
    );
    assert!(w.upstream_requests().is_empty());
}

#[tokio::test]
async fn malformed_schemes_and_encodings() {
    let w = World::start().await;
    let c = w.client(false);
    let url = w.url("/v1/bdbs");
    let good = STANDARD.encode(format!("{}:{}", VIEWER.0, VIEWER.1));
    for value in [
        "Basic !!!".to_string(),
        format!("Basic {}", &good[..good.len() - 1]), // wrong padding
        format!("Basic {} {}", &good[..8], &good[8..]), // embedded space
        format!("Bearer {good}"),
        format!("Digest {good}"),
        format!("Basic {}", STANDARD.encode(VIEWER.0)), // no colon
        format!("Basic {}", STANDARD.encode(":")),
        format!("Basic {}", STANDARD.encode(format!(":{}", VIEWER.1))),
        format!("Basic {}", STANDARD.encode(format!("{}:", VIEWER.0))),
        format!(
            "Basic {}",
            STANDARD.encode(b"viewer@redis.local\xff:viewer123")
        ),
    ] {
        let r = c
            .call("GET", &url, None, &[("authorization", &value)], b"")
            .await;
        assert_401(&r, &value);
    }
    assert!(w.upstream_requests().is_empty());
    // the scheme is case-insensitive
    for scheme in ["basic", "BASIC", "bAsIc"] {
        let value = format!("{scheme} {good}");
        let r = c
            .call("GET", &url, None, &[("authorization", &value)], b"")
            .await;
        assert_eq!(r.status, 200, "{value}");
    }
    assert_eq!(w.upstream_requests().len(), 3);
}

#[tokio::test]
async fn two_authorization_headers_are_400_in_either_order() {
    let w = World::start().await;
    let good = basic(VIEWER.0, VIEWER.1);
    let bad = basic(VIEWER.0, "nope");
    for h2 in [false, true] {
        let c = w.client(h2);
        for pair in [[&good, &bad], [&bad, &good], [&good, &good]] {
            let r = c
                .call(
                    "GET",
                    &w.url("/v1/bdbs"),
                    None,
                    &[("authorization", pair[0]), ("authorization", pair[1])],
                    b"",
                )
                .await;
            assert_eq!(r.status, 400, "h2={h2}");
            assert_eq!(r.json()["error_code"], "duplicate_header");
        }
    }
    // a comma-joined value is not two credentials either
    let joined = format!("{good}, {bad}");
    let r = w
        .client(false)
        .call(
            "GET",
            &w.url("/v1/bdbs"),
            None,
            &[("authorization", &joined)],
            b"",
        )
        .await;
    assert_401(&r, "comma-joined");
    assert!(w.upstream_requests().is_empty());
    assert_eq!(w.gateway.gateway.current().auth.stats().verifications(), 0);
}

#[tokio::test]
async fn oversized_authorization_is_431_before_any_hashing() {
    let w = World::start().await;
    let c = w.client(false);
    // over the gateway's 8 KiB Authorization limit, under the head limit:
    // the gateway's own 431 with a JSON body
    let big = format!("Basic {}", "A".repeat(9 * 1024));
    let r = c
        .call(
            "GET",
            &w.url("/v1/bdbs"),
            None,
            &[("authorization", &big)],
            b"",
        )
        .await;
    assert_eq!(r.status, 431, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_code"], "header_too_large");
    // 16 KiB: past the head limit, refused by the HTTP layer (h1 and h2)
    let huge = format!("Basic {}", "A".repeat(16 * 1024));
    let mut s = w.raw().await;
    let req = format!("GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {huge}\r\n\r\n");
    let (resp, closed) = raw_exchange(&mut s, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");
    assert!(closed);
    let r = w
        .client(true)
        .raw_request(
            http::Request::get(w.url("/v1/bdbs"))
                .header("authorization", &huge)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    match r {
        Ok(resp) => assert_eq!(resp.status(), 431),
        Err(e) => assert!(!e.is_empty()), // stream refused: also never forwarded
    }
    assert!(w.upstream_requests().is_empty());
    let snap = w.gateway.gateway.current();
    let stats = snap.auth.stats();
    assert_eq!(stats.verifications(), 0);
    assert!(stats.failures(FailureReason::TooLarge) >= 1);
}

#[tokio::test]
async fn a_password_with_colons_splits_on_the_first_one() {
    let users = users_toml_for(&[("colon@redis.local", "pa:ss", "db_viewer", Some(9))]);
    let w = World::with(Setup {
        extra: "[auth]\nusers = \"colons.toml\"\n".into(),
        files: vec![("colons.toml".into(), users)],
        ..Setup::default()
    })
    .await;
    w.cluster.add_user(SimUser {
        uid: 9,
        name: "colon@redis.local".into(),
        password: "pa:ss".into(),
        role: "db_viewer".into(),
    });
    let c = w.client(false);
    let r = c
        .get(&w.url("/v1/bdbs"), ("colon@redis.local", "pa:ss"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // (a split at the last colon would have looked up "colon@redis.local:pa")
    let r = c.get(&w.url("/v1/bdbs"), ("colon@redis.local", "pa")).await;
    assert_401(&r, "prefix of the password");
    assert_eq!(w.upstream_requests().len(), 1);
}

#[tokio::test]
async fn password_guessing_is_throttled_before_hashing() {
    let w = World::start().await;
    let c = w.client(false);
    let stats = || {
        let s = w.gateway.gateway.current();
        s.auth.stats().verifications()
    };
    let mut guesses = Vec::new();
    let mut statuses = Vec::new();
    for i in 0..16 {
        let guess = format!("guess-{i}-hunter2");
        let r = c.get(&w.url("/v1/bdbs"), (VIEWER.0, &guess)).await;
        statuses.push(r.status);
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1, "Retry-After {retry}");
            assert_eq!(r.json()["error_code"], "too_many_failed_logins");
        }
        guesses.push(guess);
    }
    // the default budget of one client guessing one account is 5 at once
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429; 11], "{statuses:?}");
    let hashed = stats();
    assert_eq!(hashed, 5, "only the budgeted attempts may be hashed");
    // more guesses cost no hashing at all
    for _ in 0..5 {
        let r = c.get(&w.url("/v1/bdbs"), (VIEWER.0, "yet-another")).await;
        assert_eq!(r.status, 429);
    }
    assert_eq!(stats(), hashed);
    assert!(w.upstream_requests().is_empty());

    // no password and no base64 credential in the audit trail
    let lines = wait_audit(&w, 21).await;
    assert_eq!(lines.len(), 21);
    let text = audit_text(&w);
    guesses.push(VIEWER.1.to_string());
    guesses.push("yet-another".to_string());
    for g in &guesses {
        assert!(!text.contains(g.as_str()), "password {g} in the audit file");
        let b64 = STANDARD.encode(format!("{}:{g}", VIEWER.0));
        assert!(!text.contains(&b64), "base64 credential in the audit file");
        assert!(!text.contains(&b64[..b64.len() - 4]));
    }
    // each line names the user and the outcome
    assert!(lines.iter().all(|l| l["decision"] == "deny"));
    assert_eq!(lines[0]["status"], 401);
    assert_eq!(lines[20]["status"], 429);
}

#[tokio::test]
async fn a_valid_password_in_the_audit_file_never_appears() {
    let w = World::start().await;
    for h2 in [false, true] {
        let r = w.client(h2).get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200);
    }
    let lines = wait_audit(&w, 2).await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["user"], ADMIN.0);
    let text = audit_text(&w);
    assert!(!text.contains(ADMIN.1));
    assert!(!text.contains(&STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))));
}

#[tokio::test]
async fn service_forwarding_replaces_the_authorization_the_node_sees() {
    let files = vec![
        ("users.toml".to_string(), users_toml()),
        (
            "service.toml".to_string(),
            "username = \"svc@redis.local\"\npassword = \"svc-secret-1\"\n".to_string(),
        ),
    ];
    let w = World::with(Setup {
        extra: "[auth]\nusers = \"users.toml\"\nforward = \"service\"\n\
                service_credentials_file = \"service.toml\"\n"
            .into(),
        files,
        ..Setup::default()
    })
    .await;
    w.cluster.add_user(SimUser {
        uid: 50,
        name: "svc@redis.local".into(),
        password: "svc-secret-1".into(),
        role: "admin".into(),
    });
    let svc = basic("svc@redis.local", "svc-secret-1");
    for h2 in [false, true] {
        let r = w
            .client(h2)
            .call(
                "GET",
                &w.url("/v1/bdbs"),
                Some(VIEWER),
                &[("r-auth-user", "admin@redis.local"), ("R-Auth-User", "x")],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "h2={h2}");
    }
    let reqs = w.upstream_requests();
    assert_eq!(reqs.len(), 2);
    for up in &reqs {
        assert_eq!(up.header_all("authorization"), vec![svc.as_bytes()]);
        assert!(
            up.header("r-auth-user").is_none(),
            "r-auth-user reached a node"
        );
    }
    // the viewer's own credentials still decide: wrong ones never go up
    let r = w
        .client(false)
        .get(&w.url("/v1/bdbs"), (VIEWER.0, "bad"))
        .await;
    assert_eq!(r.status, 401);
    // and the policy still applies to the viewer, not to the service account
    let r = w.client(false).get(&w.url("/v1/users"), VIEWER).await;
    assert_eq!(r.status, 403);
    assert_eq!(w.upstream_requests().len(), 2);
    let text = audit_text(&w);
    assert!(!text.contains("svc-secret-1"));
}

const SVC: (&str, &str) = ("svc@redis.local", "svc-secret-2");

/// Requests a node received from clients: the cluster source's own sync
/// calls carry the service account's credentials, and its credential checks
/// go to `POST /v1/users/authorize`.
fn client_requests(w: &World) -> Vec<String> {
    let svc = basic(SVC.0, SVC.1);
    w.upstream_requests()
        .into_iter()
        .filter(|r| r.header("authorization") != Some(svc.as_bytes()))
        .filter(|r| r.target != "/v1/users/authorize")
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

async fn wait_syncs(w: &World, more_than: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = w.gateway.gateway.current().auth.stats().syncs();
        if n > more_than {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no sync after {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cluster_identity_source_follows_the_simulator() {
    let mut sim = regate::sim::SimOptions::default();
    sim.users.push(SimUser {
        uid: 40,
        name: SVC.0.into(),
        password: SVC.1.into(),
        role: "admin".into(),
    });
    let w = World::with(Setup {
        extra: "[auth]\nsource = \"cluster\"\n\n[auth.cluster]\ncredentials_file = \"svc.toml\"\n\
                sync_interval = \"150ms\"\n"
            .into(),
        files: vec![(
            "svc.toml".into(),
            format!("username = \"{}\"\npassword = \"{}\"\n", SVC.0, SVC.1),
        )],
        sim: Some(sim),
        ..Setup::default()
    })
    .await;
    w.cluster.add_user(SimUser {
        uid: 7,
        name: "ops@redis.local".into(),
        password: "ops-pass-1".into(),
        role: "cluster_viewer".into(),
    });
    let c = w.client(false);
    // roles come from the cluster's role_uids
    assert_eq!(c.get(&w.url("/v1/users"), ADMIN).await.status, 200);
    let r = c.get(&w.url("/v1/users"), VIEWER).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error_code"],
        "missing_permission:view_all_users_info"
    );
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    let ops = ("ops@redis.local", "ops-pass-1");
    assert_eq!(c.get(&w.url("/v1/cluster"), ops).await.status, 200);
    let r = c
        .call("DELETE", &w.url("/v1/bdbs/1"), Some(ops), &[], b"")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), (VIEWER.0, "wrong")).await.status,
        401
    );
    let lines = wait_audit(&w, 6).await;
    assert_eq!(lines[0]["identity_source"], "cluster");
    assert_eq!(lines[0]["role"], "admin");
    assert_eq!(lines[1]["role"], "db_viewer");

    // a password changed in the cluster: the old one stops working after a sync
    let before = w.gateway.gateway.current().auth.stats().syncs();
    w.cluster.set_password(VIEWER.0, "viewer-new-2");
    wait_syncs(&w, before + 1).await;
    let r = c.get(&w.url("/v1/bdbs"), VIEWER).await;
    assert_eq!(r.status, 401, "the old password still works after a sync");
    let r = c.get(&w.url("/v1/bdbs"), (VIEWER.0, "viewer-new-2")).await;
    assert_eq!(r.status, 200);

    // a user removed from the cluster stops working after a sync
    assert_eq!(c.get(&w.url("/v1/cluster"), ops).await.status, 200);
    let before = w.gateway.gateway.current().auth.stats().syncs();
    w.cluster.remove_user(ops.0);
    wait_syncs(&w, before + 1).await;
    let r = c.get(&w.url("/v1/cluster"), ops).await;
    assert_eq!(r.status, 401, "a removed user still works after a sync");

    // only the allowed client requests reached a node
    assert_eq!(
        client_requests(&w),
        [
            "GET /v1/users",
            "GET /v1/bdbs",
            "GET /v1/cluster",
            "GET /v1/bdbs",
            "GET /v1/cluster"
        ]
    );
}
