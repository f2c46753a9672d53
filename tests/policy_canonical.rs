//! Path canonicalization: every group-D input of SECURITY.md as a case,
//! with the decision the policy then takes for role `db_viewer`, and
//! property tests (no panic, idempotent, no dot or empty segments, no
//! control bytes, the output is what gets authorized).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use http::Method;
use proptest::prelude::*;
use regate::context::{IdentitySource, Principal};
use regate::policy::{canonicalize, Policy};

fn db_viewer() -> Principal {
    Principal {
        user: "viewer".into(),
        uid: Some(9),
        role: Arc::from("db_viewer"),
        source: IdentitySource::File,
    }
}

/// Status the policy answers for `db_viewer` (200 = permit), and the path
/// that would be forwarded. The query is split off first, as the pipeline
/// does (`uri.path()`).
fn decide(policy: &Policy, method: Method, target: &str) -> (u16, Option<String>) {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let canonical = match canonicalize(path) {
        Ok(c) => c,
        Err(r) => return (r.status().as_u16(), None),
    };
    let outcome = policy
        .resolve(&method, &canonical, None)
        .and_then(|m| policy.authorize(&m, &db_viewer()));
    match outcome {
        Ok(_) => (200, Some(canonical.into_owned())),
        Err(r) => (r.status().as_u16(), None),
    }
}

#[test]
fn group_d_inputs() {
    let policy = Policy::builtin().unwrap();
    let get = |p: &str| decide(&policy, Method::GET, p).0;
    // D1 dot segments, plain and encoded: 400, never normalized to /v1/users.
    for p in [
        "/v1/bdbs/../users",
        "/v1/bdbs/./../users",
        "/v1/bdbs/%2e%2e/users",
        "/v1/bdbs/%2E%2E/users",
        "/v1/bdbs/.%2e/users",
        "/v1/bdbs/%2e./users",
        "/v1/bdbs/%2e/users",
    ] {
        assert_eq!(get(p), 400, "D1 {p}");
    }
    // D2 encoded slash or backslash, literal backslash.
    for p in [
        "/v1/bdbs%2f..%2fusers",
        "/v1/bdbs%2F1",
        "/v1/bdbs%5c..%5cusers",
        "/v1/bdbs\\..\\users",
        "/v1\\users",
    ] {
        assert_eq!(get(p), 400, "D2 {p}");
    }
    // D3 empty segments 400; trailing slash stripped then decided; trailing dot is another resource.
    assert_eq!(get("//v1//users"), 400);
    assert_eq!(get("/v1//users"), 400);
    assert_eq!(get("/v1/users/"), 403);
    assert_eq!(
        decide(&policy, Method::GET, "/v1/bdbs/"),
        (200, Some("/v1/bdbs".into()))
    );
    assert_eq!(get("/v1/users//"), 400);
    assert_eq!(get("/v1/users."), 404);
    // D4 double encoding: %25 is refused, so nothing is decoded twice.
    for p in ["/v1/bdbs/%252e%252e/users", "/v1/%25%32%65", "/v1/bdbs%25"] {
        assert_eq!(get(p), 400, "D4 {p}");
    }
    // D5 path parameters.
    for p in [
        "/v1/users;x=1",
        "/v1/bdbs;/../users",
        "/v1/bdbs/1;jsessionid=x",
        "/v1/bdbs%3bx",
    ] {
        assert_eq!(get(p), 400, "D5 {p}");
    }
    // D6 case: the cluster's paths are lowercase; exact match, so 404.
    assert_eq!(get("/V1/Users"), 404);
    assert_eq!(get("/v1/USERS"), 404);
    assert_eq!(get("/v1/BDBS"), 404);
    // D7 NUL, CR, LF, overlong UTF-8, invalid UTF-8 after decoding, raw controls.
    for p in [
        "/v1/users%00",
        "/v1/users%0a",
        "/v1/users%0d",
        "/v1/%c0%ae%c0%ae/users",
        "/v1/bdbs/%ff",
        "/v1/bdbs/%e2%82",
        "/v1/bdbs/\u{1}",
        "/v1/bdbs/\t",
    ] {
        assert_eq!(get(p), 400, "D7 {p:?}");
    }
    // D8 fragment refused; the query never takes part in the decision.
    assert_eq!(get("/v1/users#x"), 400);
    assert_eq!(get("/v1/users%23x"), 400);
    assert_eq!(get("/v1/users?/v1/bdbs"), 403);
    assert_eq!(
        decide(&policy, Method::GET, "/v1/bdbs?/v1/users"),
        (200, Some("/v1/bdbs".into()))
    );
    // D9 is header stripping (pipeline); the method the policy sees is the request's own.
    assert_eq!(decide(&policy, Method::POST, "/v1/bdbs").0, 403);
    assert_eq!(decide(&policy, Method::DELETE, "/v1/bdbs/1").0, 403);
    // D10 not starting with '/', unknown routes and versions: denied by default.
    for p in ["v1/bdbs", "*", "", "http://evil/v1/bdbs"] {
        assert_eq!(get(p), 400, "D10 {p}");
    }
    assert_eq!(get("/v1/new-endpoint"), 404);
    assert_eq!(get("/v3/bdbs"), 404);
    assert_eq!(get("/"), 404);
    // Baseline: db_viewer may read databases, not users.
    assert_eq!(get("/v1/bdbs"), 200);
    assert_eq!(get("/v1/bdbs/1"), 200);
    assert_eq!(get("/v1/users"), 403);
}

#[test]
fn encoded_unreserved_is_decoded_once_and_forwarded_decoded() {
    let policy = Policy::builtin().unwrap();
    assert_eq!(
        decide(&policy, Method::GET, "/v1/bdbs/%31"),
        (200, Some("/v1/bdbs/1".into()))
    );
    assert_eq!(
        decide(&policy, Method::GET, "/v1/%62dbs"),
        (200, Some("/v1/bdbs".into()))
    );
    assert_eq!(canonicalize("/v1/suffix/a%3ab").unwrap(), "/v1/suffix/a:b");
    assert_eq!(
        canonicalize("/v1/suffix/a%20b").unwrap(),
        "/v1/suffix/a%20b"
    );
    assert_eq!(
        canonicalize("/v1/suffix/%e2%82%ac").unwrap(),
        "/v1/suffix/%E2%82%AC"
    );
    assert!(matches!(
        canonicalize("/v1/bdbs/1").unwrap(),
        Cow::Borrowed(_)
    ));
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v1".to_owned()),
        Just("bdbs".to_owned()),
        Just("users".to_owned()),
        Just("USERS".to_owned()),
        Just("1".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E%2e".to_owned()),
        Just(".%2e".to_owned()),
        Just("%2f".to_owned()),
        Just("%5c".to_owned()),
        Just("\\".to_owned()),
        Just(";x=1".to_owned()),
        Just("".to_owned()),
        Just("%00".to_owned()),
        Just("%c0%ae".to_owned()),
        Just("%25".to_owned()),
        Just("%252e".to_owned()),
        Just("%31".to_owned()),
        Just("#f".to_owned()),
        Just("a%20b".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%7e~".to_owned()),
        Just("%".to_owned()),
        "[a-z0-9%._~-]{0,6}",
    ]
}

fn grammar_path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(segment(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(lead, segs, trail)| {
            let mut p = if lead { "/".to_owned() } else { String::new() };
            p.push_str(&segs.join("/"));
            if trail {
                p.push('/');
            }
            p
        })
}

fn check_invariants(raw: &str) {
    let Ok(c) = canonicalize(raw) else { return };
    assert!(c.starts_with('/'), "{c:?}");
    assert!(!c.contains("//"), "{c:?}");
    assert!(
        !c.bytes().any(|b| b < 0x20 || b == 0x7f || b >= 0x80),
        "{c:?}"
    );
    assert!(
        !c.contains('\\') && !c.contains(';') && !c.contains('#'),
        "{c:?}"
    );
    for seg in c.split('/').skip(1) {
        assert!(seg != "." && seg != "..", "{c:?}");
    }
    assert!(c.len() == 1 || !c.ends_with('/'), "{c:?}");
    let again = canonicalize(&c).expect("canonical output must be accepted");
    assert_eq!(again, c, "not idempotent for {raw:?}");
    assert!(
        matches!(again, Cow::Borrowed(_)),
        "second pass changed {c:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn grammar_paths_hold_invariants(p in grammar_path()) {
        check_invariants(&p);
    }

    #[test]
    fn arbitrary_strings_never_panic(p in "\\PC{0,40}") {
        check_invariants(&p);
        check_invariants(&format!("/{p}"));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..48)) {
        let s = String::from_utf8_lossy(&b);
        check_invariants(&s);
        check_invariants(&format!("/{s}"));
    }

    /// The decision on a raw path equals the decision on its canonical form.
    #[test]
    fn decision_is_made_on_the_canonical_path(p in grammar_path()) {
        static POLICY: OnceLock<Policy> = OnceLock::new();
        let policy = POLICY.get_or_init(|| Policy::builtin().unwrap());
        if let Ok(c) = canonicalize(&p) {
            prop_assert_eq!(decide(policy, Method::GET, &p), decide(policy, Method::GET, &c));
        }
    }
}
