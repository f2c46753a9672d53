//! Authorization through the real gateway (issue 4, SECURITY.md group D):
//! every route of the profile x every role, unknown routes and versions,
//! path tricks over HTTP/1.1 raw bytes and over h2 giving one decision and
//! forwarding exactly the canonical path, method-override headers, dry-run
//! mode, a custom role and the self-service rules. The expected decision of
//! the matrix comes from the compiled policy; what is checked here is that
//! the gateway applies it: 403 JSON and nothing upstream, or the request
//! forwarded once, with the same method and the canonical path.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use regate::context::{IdentitySource, Principal};
use regate::error::Reject;
use regate::policy::{BodyVerdict, Policy};

/// No request-rate limits: the matrix sends well over a thousand requests.
const NO_RATE_LIMIT: &str = "[rate_limit]\nenabled = false\n";

/// The custom role of these tests.
const CUSTOM_ROLE: &str = "[[roles]]\nname = \"db_operator\"\nextends = \"db_viewer\"\n\
                           add = [\"update_bdb\"]\n";

fn small_debuginfo() -> regate::sim::SimOptions {
    regate::sim::SimOptions {
        debuginfo_bytes: 512,
        ..regate::sim::SimOptions::default()
    }
}

fn assert_403(r: &Reply, permission: &str, what: &str) {
    assert_eq!(
        r.status,
        403,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers["content-type"], "application/json", "{what}");
    let j = r.json();
    assert_eq!(
        j["error_code"],
        format!("missing_permission:{permission}"),
        "{what}"
    );
    assert!(j["description"].is_string(), "{what}");
}

/// A user per role: (name, password, role, uid).
fn role_users(roles: &[String]) -> Vec<(String, String, String, u64)> {
    roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("{r}-user@redis.local"),
                format!("pw-{r}-{i}"),
                r.clone(),
                10 + i as u64,
            )
        })
        .collect()
}

/// A concrete path for a template that resolves back to the same route:
/// parameters become `1`, or a name where `1` would hit another route.
fn concrete(policy: &Policy, method: &http::Method, template: &str) -> String {
    for value in ["1", "p1"] {
        let path: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { value } else { s })
            .collect::<Vec<_>>()
            .join("/");
        if let Ok(m) = policy.resolve(method, &path, None) {
            if m.template == template {
                return path;
            }
        }
    }
    panic!("no concrete path resolves to {method} {template}");
}

#[tokio::test]
async fn every_route_times_every_role() {
    let policy = Policy::compile(
        &regate::policy::PolicyConfig::default(),
        &[toml::from_str::<regate::policy::CustomRoleConfig>(
            "name = \"db_operator\"\nextends = \"db_viewer\"\nadd = [\"update_bdb\"]\n",
        )
        .unwrap()],
    )
    .unwrap();
    let roles: Vec<String> = policy.role_names().map(String::from).collect();
    assert!(roles.len() >= 8, "{roles:?}");
    let users = role_users(&roles);
    let entries: Vec<(&str, &str, &str, Option<u64>)> = users
        .iter()
        .map(|(n, p, r, u)| (n.as_str(), p.as_str(), r.as_str(), Some(*u)))
        .collect();
    let w = World::with(Setup {
        extra: format!("{NO_RATE_LIMIT}\n{CUSTOM_ROLE}\n[auth]\nusers = \"matrix.toml\"\n"),
        files: vec![("matrix.toml".into(), users_toml_for(&entries))],
        sim: Some(small_debuginfo()),
        ..Setup::default()
    })
    .await;
    let c = w.client(true);
    let node = w.node(0);
    let routes: Vec<(http::Method, String, String)> = policy
        .routes()
        .map(|r| {
            (
                r.method.clone(),
                r.template.to_string(),
                r.permission.to_string(),
            )
        })
        .collect();
    assert!(routes.len() > 200, "{}", routes.len());
    let (mut allowed, mut denied) = (0, 0);
    for (method, template, permission) in &routes {
        let path = concrete(&policy, method, template);
        for (name, pass, role, uid) in &users {
            let who = Principal {
                user: name.as_str().into(),
                uid: Some(*uid),
                role: Arc::from(role.as_str()),
                source: IdentitySource::File,
            };
            let m = policy.resolve(method, &path, None).unwrap();
            // a body only where the route's request takes one (else 400)
            let body = match m.takes_body() {
                false => Vec::new(),
                true => format!("{{\"username\":\"{name}\"}}").into_bytes(),
            };
            let expect = policy.authorize(&m, &who).and_then(|p| {
                if p.requires_body_check() {
                    match p.check_body(&body, &who)? {
                        BodyVerdict::Pass => Ok(p),
                        BodyVerdict::DryRunDenied(r) => Err(r),
                    }
                } else {
                    Ok(p)
                }
            });
            let what = format!("{role} {method} {path}");
            node.clear_requests();
            let r = c
                .call(
                    method.as_str(),
                    &w.url(&path),
                    Some((name, pass)),
                    &[("content-type", "application/json")],
                    &body,
                )
                .await;
            let got = node.requests();
            match expect {
                Ok(permit) => {
                    allowed += 1;
                    assert!(permit.dry_run_denied.is_none());
                    // a role that lacks the permission passes only by self-service
                    if permit.rule != "self-service" {
                        assert!(policy.role_holds(role, permission), "{what}");
                    }
                    assert_ne!(r.status, 403, "{what}");
                    assert_eq!(got.len(), 1, "{what}: not forwarded ({})", r.status);
                    assert_eq!(got[0].method, method.as_str(), "{what}");
                    assert_eq!(got[0].target, path, "{what}");
                    assert_eq!(got[0].body_len, body.len() as u64, "{what}");
                }
                Err(Reject::Forbidden { permission: p, .. }) => {
                    denied += 1;
                    assert_eq!(p, permission.as_str(), "{what}");
                    assert!(role != "admin", "admin denied {what}");
                    assert_403(&r, permission, &what);
                    assert!(got.is_empty(), "{what}: forwarded although denied");
                }
                Err(other) => panic!("{what}: unexpected oracle answer {other:?}"),
            }
        }
    }
    // the table is not trivially one-sided
    assert!(allowed > routes.len(), "{allowed}");
    assert!(denied > routes.len(), "{denied}");
}

#[tokio::test]
async fn unknown_routes_and_versions_are_404_and_never_forwarded() {
    let w = World::start().await;
    for h2 in [false, true] {
        let c = w.client(h2);
        for (method, path) in [
            ("GET", "/v1/new-endpoint"),
            ("GET", "/v3/bdbs"),
            ("GET", "/v3/cluster"),
            ("DELETE", "/v3/bdbs/1"),
            ("GET", "/"),
            ("GET", "/v2/bdbs"),
            ("GET", "/V1/Users"),
            ("GET", "/v1/USERS"),
            ("PATCH", "/v1/bdbs"),
        ] {
            let r = c.call(method, &w.url(path), Some(ADMIN), &[], b"").await;
            assert_eq!(r.status, 404, "{method} {path} h2={h2}");
            assert_eq!(r.json()["error_code"], "not_found");
        }
        // unknown routes are refused before authentication
        let r = c.call("GET", &w.url("/v3/bdbs"), None, &[], b"").await;
        assert_eq!(r.status, 404);
    }
    assert!(w.upstream_requests().is_empty());
    // POST /v2/bdbs exists while GET /v2/bdbs does not
    let r = w
        .client(false)
        .call(
            "POST",
            &w.url("/v2/bdbs"),
            Some(ADMIN),
            &[("content-type", "application/json")],
            br#"{"bdb":{"name":"v2db"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ups = w.upstream_requests();
    assert_eq!(ups.len(), 1);
    assert_eq!(
        (ups[0].method.as_str(), ups[0].target.as_str()),
        ("POST", "/v2/bdbs")
    );
}

#[tokio::test]
async fn x_api_version_must_agree_with_the_path() {
    let w = World::start().await;
    let c = w.client(false);
    for v in ["v2", "2", "v3", "banana"] {
        let r = c
            .call(
                "GET",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-api-version", v)],
                b"",
            )
            .await;
        assert_eq!(r.status, 505, "x-api-version {v}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.json()["error_code"], "unsupported_api_version");
    }
    assert!(w.upstream_requests().is_empty());
    for v in ["v1", "1"] {
        let r = c
            .call(
                "GET",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-api-version", v)],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "x-api-version {v}");
    }
    assert_eq!(w.upstream_requests().len(), 2);
}

/// (raw path, status for db_viewer GET, what the node must receive when 200)
const GROUP_D: &[(&str, u16, Option<&str>)] = &[
    // D1 dot segments, plain and encoded
    ("/v1/bdbs/../users", 400, None),
    ("/v1/bdbs/./../users", 400, None),
    ("/v1/bdbs/%2e%2e/users", 400, None),
    ("/v1/bdbs/%2E%2E/users", 400, None),
    ("/v1/bdbs/.%2e/users", 400, None),
    ("/v1/bdbs/%2e./users", 400, None),
    ("/v1/bdbs/./1", 400, None),
    // D2 encoded slash and backslash
    ("/v1/bdbs%2f..%2fusers", 400, None),
    ("/v1/bdbs%2F1", 400, None),
    ("/v1/bdbs%5c..%5cusers", 400, None),
    ("/v1/bdbs\\..\\users", 400, None),
    // D3 empty segments, trailing slash, trailing dot
    ("//v1//users", 400, None),
    ("/v1//bdbs", 400, None),
    ("/v1/users/", 403, None),
    ("/v1/bdbs/", 200, Some("/v1/bdbs")),
    ("/v1/users.", 404, None),
    // D4 double encoding
    ("/v1/bdbs/%252e%252e/users", 400, None),
    ("/v1/%25%32%65", 400, None),
    // D5 path parameters
    ("/v1/users;x=1", 400, None),
    ("/v1/bdbs;/../users", 400, None),
    ("/v1/bdbs/1;jsessionid=x", 400, None),
    // D6 case
    ("/V1/Users", 404, None),
    ("/v1/USERS", 404, None),
    // D7 control bytes, overlong and invalid UTF-8
    ("/v1/users%00", 400, None),
    ("/v1/users%0a", 400, None),
    ("/v1/users%0d", 400, None),
    ("/v1/%c0%ae%c0%ae/users", 400, None),
    ("/v1/bdbs/%ff", 400, None),
    // D8 query tricks: the query never takes part in the decision
    ("/v1/users?/v1/bdbs", 403, None),
    ("/v1/bdbs?/v1/users", 200, Some("/v1/bdbs?/v1/users")),
    ("/v1/users%23x", 400, None),
    // encoded unreserved characters are decoded once, and forwarded decoded
    ("/v1/bdbs/%31", 200, Some("/v1/bdbs/1")),
    ("/v1/%62dbs", 200, Some("/v1/bdbs")),
    // D10 unknown routes
    ("/v1/new-endpoint", 404, None),
    ("/v3/bdbs", 404, None),
    // baseline
    ("/v1/bdbs", 200, Some("/v1/bdbs")),
    ("/v1/bdbs/1", 200, Some("/v1/bdbs/1")),
    ("/v1/users", 403, None),
];

/// Status code of a raw HTTP/1.1 exchange.
async fn raw_status(w: &World, target: &[u8], auth: &str) -> u16 {
    let mut s = w.raw().await;
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let (resp, _) = raw_exchange(&mut s, &req, Duration::from_secs(3)).await;
    resp.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status line for {:?}: {resp:?}",
                String::from_utf8_lossy(target)
            )
        })
}

#[tokio::test]
async fn group_d_paths_decide_the_same_over_http1_and_h2() {
    let w = World::start().await;
    let auth = basic(VIEWER.0, VIEWER.1);
    let h2 = w.client(true);
    let node = w.node(0);
    let mut h2_sent = 0;
    for (path, want, forwarded) in GROUP_D {
        node.clear_requests();
        let s1 = raw_status(&w, path.as_bytes(), &auth).await;
        assert_eq!(s1, *want, "HTTP/1.1 {path}");
        let got = node.requests();
        match forwarded {
            Some(canonical) => {
                assert_eq!(got.len(), 1, "HTTP/1.1 {path}");
                assert_eq!(got[0].target, *canonical, "HTTP/1.1 {path}");
            }
            None => assert!(got.is_empty(), "HTTP/1.1 {path} forwarded: {got:?}"),
        }
        // h2: the same :path through the hyper client, when `http` can carry it
        let url = w.url(path);
        if http::Uri::try_from(url.as_str()).is_err() {
            continue;
        }
        h2_sent += 1;
        node.clear_requests();
        let r = h2.get(&url, VIEWER).await;
        assert_eq!(r.version, http::Version::HTTP_2);
        assert_eq!(r.status, *want, "h2 {path}");
        if r.status >= 400 {
            assert!(r.json()["error_code"].is_string(), "h2 {path}");
        }
        let got = node.requests();
        match forwarded {
            Some(canonical) => {
                assert_eq!(got.len(), 1, "h2 {path}");
                assert_eq!(got[0].target, *canonical, "h2 {path}");
            }
            None => assert!(got.is_empty(), "h2 {path} forwarded: {got:?}"),
        }
    }
    assert!(h2_sent > GROUP_D.len() / 2, "{h2_sent}");
}

#[tokio::test]
async fn http1_only_targets_are_refused() {
    let w = World::start().await;
    let auth = basic(VIEWER.0, VIEWER.1);
    // targets the h2 client cannot express: raw bytes, no leading '/', '*'
    for (target, want) in [
        // README: a non-canonical path (or a head hyper refuses) is 400
        (&b"v1/bdbs"[..], 400),
        (b"*", 400),
        (b"/v1/bdbs/\x01", 400),
        (b"/v1/bdbs/\xff", 400),
        (b"/v1/bdbs/caf\xc3\xa9", 400),
        // the URI parser drops a fragment before anything decides (SECURITY.md
        // D8: stripped before authorization): this is /v1/users, 403 for a viewer
        (b"/v1/users#x", 403),
    ] {
        let status = raw_status(&w, target, &auth).await;
        assert_eq!(status, want, "{:?}", String::from_utf8_lossy(target));
    }
    assert!(w.upstream_requests().is_empty());
}

#[tokio::test]
async fn method_override_and_rewrite_headers_never_take_effect() {
    let w = World::start().await;
    let overrides: &[(&str, &str)] = &[
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-original-url", "/v1/users"),
        ("x-rewrite-url", "/v1/users"),
        ("x-forwarded-prefix", "/v1/users"),
        ("x-forwarded-host", "evil.example"),
        ("x-original-method", "DELETE"),
    ];
    for h2 in [false, true] {
        let c = w.client(h2);
        w.node(0).clear_requests();
        // a db_viewer POST that is allowed (its own password) stays a POST
        let body = format!(
            r#"{{"username":"{}","password":"viewer123","new_password":"n3w"}}"#,
            VIEWER.0
        );
        let r = c
            .call(
                "POST",
                &w.url("/v1/users/password?_method=DELETE"),
                Some(VIEWER),
                overrides,
                body.as_bytes(),
            )
            .await;
        assert_ne!(r.status, 403, "h2={h2}");
        // a db_viewer POST that is not allowed is decided as a POST
        let r = c
            .call("POST", &w.url("/v1/bdbs"), Some(VIEWER), overrides, b"{}")
            .await;
        assert_403(&r, "create_bdb", "viewer POST /v1/bdbs");
        // a GET with a rewrite to /v1/users is decided and forwarded as /v1/bdbs
        let r = c
            .call("GET", &w.url("/v1/bdbs"), Some(VIEWER), overrides, b"")
            .await;
        assert_eq!(r.status, 200);
        let got = w.node(0).requests();
        assert_eq!(got.len(), 2, "h2={h2}");
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].target, "/v1/users/password?_method=DELETE");
        assert_eq!(got[1].method, "GET");
        assert_eq!(got[1].target, "/v1/bdbs");
        for up in &got {
            for (name, _) in overrides {
                assert!(
                    up.header(name).is_none(),
                    "{name} reached the node (h2={h2})"
                );
            }
            assert_ne!(up.header("host"), Some(&b"evil.example"[..]));
        }
    }
}

#[tokio::test]
async fn dry_run_forwards_a_denied_request_and_audits_it() {
    let w = World::with(Setup {
        extra: "[policy]\nmode = \"dry_run\"\n".into(),
        ..Setup::default()
    })
    .await;
    let r = w
        .client(false)
        .call("DELETE", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"")
        .await;
    assert_ne!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let got = w.upstream_requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].target.as_str()),
        ("DELETE", "/v1/bdbs/1")
    );
    // an allowed request stays a plain allow
    assert_eq!(
        w.client(false).get(&w.url("/v1/bdbs"), VIEWER).await.status,
        200
    );
    // unknown routes stay 404 in dry-run mode
    assert_eq!(
        w.client(false).get(&w.url("/v3/bdbs"), VIEWER).await.status,
        404
    );
    assert_eq!(w.upstream_requests().len(), 2);
    let lines = wait_audit(&w, 3).await;
    assert_eq!(lines[0]["decision"], "dry-run-deny", "{}", lines[0]);
    assert_eq!(lines[0]["rule"], "dry-run");
    assert_eq!(lines[0]["permission"], "delete_bdb");
    assert_eq!(lines[0]["route"], "/v1/bdbs/{uid}");
    assert_eq!(lines[1]["decision"], "allow");
    assert_eq!(lines[2]["decision"], "deny");
}

#[tokio::test]
async fn per_route_dry_run_leaves_other_routes_enforced() {
    let w = World::with(Setup {
        extra: "[policy]\n[policy.routes]\n\"DELETE /v1/bdbs/{uid}\" = \"dry_run\"\n".into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    let r = c
        .call("DELETE", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"")
        .await;
    assert_ne!(r.status, 403);
    let r = c
        .call("PUT", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"{}")
        .await;
    assert_403(&r, "update_bdb", "PUT stays enforced");
    let got = w.upstream_requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "DELETE");
}

#[tokio::test]
async fn a_custom_role_works_end_to_end() {
    let users = users_toml_for(&[("op@redis.local", "op-pass", "db_operator", Some(30))]);
    let w = World::with(Setup {
        extra: format!("{CUSTOM_ROLE}\n[auth]\nusers = \"ops.toml\"\n"),
        files: vec![("ops.toml".into(), users)],
        ..Setup::default()
    })
    .await;
    w.cluster.add_user(regate::sim::SimUser {
        uid: 30,
        name: "op@redis.local".into(),
        password: "op-pass".into(),
        role: "db_operator".into(),
    });
    let op = ("op@redis.local", "op-pass");
    for h2 in [false, true] {
        let c = w.client(h2);
        w.node(0).clear_requests();
        assert_eq!(c.get(&w.url("/v1/bdbs"), op).await.status, 200);
        let r = c
            .call(
                "PUT",
                &w.url("/v1/bdbs/1"),
                Some(op),
                &[],
                br#"{"memory_size":1}"#,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = c
            .call("DELETE", &w.url("/v1/bdbs/1"), Some(op), &[], b"")
            .await;
        assert_403(&r, "delete_bdb", "db_operator DELETE");
        assert!(r.json()["description"]
            .as_str()
            .unwrap()
            .contains("db_operator"));
        let r = c.get(&w.url("/v1/users"), op).await;
        assert_403(&r, "view_all_users_info", "db_operator GET /v1/users");
        let got: Vec<String> = w
            .node(0)
            .requests()
            .iter()
            .map(|u| format!("{} {}", u.method, u.target))
            .collect();
        assert_eq!(got, ["GET /v1/bdbs", "PUT /v1/bdbs/1"], "h2={h2}");
    }
    let lines = wait_audit(&w, 8).await;
    assert!(lines.iter().all(|l| l["role"] == "db_operator"));
    assert_eq!(lines[1]["permission"], "update_bdb");
    assert_eq!(lines[1]["decision"], "allow");
}

#[tokio::test]
async fn self_service_password_and_own_record() {
    let w = World::start().await;
    let c = w.client(false);
    // its own password: forwarded with exactly the bytes sent
    let own = format!(
        r#"{{"username":"{}","old_password":"viewer123","new_password":"v2"}}"#,
        VIEWER.0
    );
    let r = c
        .call(
            "PUT",
            &w.url("/v1/users/password"),
            Some(VIEWER),
            &[("content-type", "application/json")],
            own.as_bytes(),
        )
        .await;
    assert_ne!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let got = w.upstream_requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].body_prefix, own.as_bytes());
    // someone else's: 403, nothing upstream
    w.node(0).clear_requests();
    let other = format!(
        r#"{{"username":"{}","old_password":"x","new_password":"y"}}"#,
        ADMIN.0
    );
    let r = c
        .call(
            "PUT",
            &w.url("/v1/users/password"),
            Some(VIEWER),
            &[("content-type", "application/json")],
            other.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error_code"]
        .as_str()
        .unwrap()
        .starts_with("missing_permission:"));
    assert!(w.upstream_requests().is_empty());
    // GET /v1/users/{uid}: its own record only
    let r = c.get(&w.url("/v1/users/2"), VIEWER).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["uid"], 2);
    let r = c.get(&w.url("/v1/users/1"), VIEWER).await;
    assert_403(&r, "view_user_info", "viewer reads uid 1");
    // a uid written another way is not the caller's own...
    let r = c.get(&w.url("/v1/users/02"), VIEWER).await;
    assert_403(&r, "view_user_info", "viewer reads uid 02");
    // ...unless canonicalization makes it so, and then the canonical path goes up
    let r = c.get(&w.url("/v1/users/%32"), VIEWER).await;
    assert_eq!(r.status, 200);
    let got: Vec<String> = w
        .upstream_requests()
        .into_iter()
        .map(|u| u.target)
        .collect();
    assert_eq!(got, ["/v1/users/2", "/v1/users/2"]);
}
