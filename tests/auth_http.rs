//! SECURITY.md group C at the `authenticate`/`parse_basic` level: what a
//! client can put in `Authorization` and what it gets back (C1-C7, C9), plus
//! property tests that arbitrary header bytes never panic or authenticate.

mod auth_common;

use auth_common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::WWW_AUTHENTICATE;
use proptest::prelude::*;
use regate::auth::{parse_basic, FailureReason};
use regate::context::IdentitySource;
use regate::error::Reject;

const ADMIN: User = ("admin", "correct-horse", "admin", Some(1));

fn fixture() -> Fixture {
    file_auth(
        &[
            ADMIN,
            ("viewer", "pa:ss", "db_viewer", None),
            ("é", "nfc-pass", "db_viewer", None),
        ],
        NO_LIMITS,
    )
}

#[tokio::test]
async fn valid_credentials_yield_a_principal() {
    let f = fixture();
    let p = f
        .auth
        .authenticate(&basic("admin", "correct-horse"), IP, conn())
        .await
        .unwrap();
    assert_eq!((&*p.user, &*p.role, p.uid), ("admin", "admin", Some(1)));
    assert_eq!(p.source, IdentitySource::File);
    assert_eq!(f.auth.role_of("admin").unwrap().0.as_ref(), "admin");
    assert!(f.auth.role_of("nobody").is_none());
}

#[tokio::test]
async fn c1_missing_header_is_401_with_challenge() {
    let f = fixture();
    let r = f
        .auth
        .authenticate(&http::HeaderMap::new(), IP, conn())
        .await
        .unwrap_err();
    assert_eq!(r, Reject::Unauthorized);
    let resp = r.to_response();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()[WWW_AUTHENTICATE],
        "Basic realm=\"regate\", charset=\"UTF-8\""
    );
    assert_eq!(f.auth.stats().failures(FailureReason::Missing), 1);
    assert_eq!(f.auth.stats().verifications(), 0);
}

#[tokio::test]
async fn c2_malformed_and_foreign_schemes_are_401_constant() {
    let f = fixture();
    let good = STANDARD.encode("admin:correct-horse");
    let cases: Vec<Vec<u8>> = vec![
        b"Basic !!!".to_vec(),
        b"Basic YWRtaW46Y29ycmVjdC1ob3JzZQ".to_vec(), // missing padding
        b"Basic YWRtaW46Y29y cmVjdC1ob3JzZQ==".to_vec(), // embedded space
        format!("Bearer {good}").into_bytes(),
        format!("Digest {good}").into_bytes(),
        format!("Basic{good}").into_bytes(),
        b"Basic".to_vec(),
    ];
    for v in &cases {
        let r = f
            .auth
            .authenticate(&raw_auth(&[v]), IP, conn())
            .await
            .unwrap_err();
        assert_eq!(r, Reject::Unauthorized, "{}", String::from_utf8_lossy(v));
        assert_eq!(r.body(), Reject::Unauthorized.body());
    }
    assert_eq!(f.auth.stats().verifications(), 0);
    // The scheme is case-insensitive.
    for scheme in ["basic", "BASIC", "bAsIc"] {
        let v = format!("{scheme} {good}");
        assert!(f
            .auth
            .authenticate(&raw_auth(&[v.as_bytes()]), IP, conn())
            .await
            .is_ok());
    }
}

#[tokio::test]
async fn c3_colon_shapes() {
    let f = fixture();
    for raw in ["admincorrect-horse", ":correct-horse", "admin:", ":", ""] {
        let v = format!("Basic {}", STANDARD.encode(raw));
        let r = f
            .auth
            .authenticate(&raw_auth(&[v.as_bytes()]), IP, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized, "{raw:?}");
    }
    assert_eq!(f.auth.stats().verifications(), 0);
    // Split at the first colon: password "pa:ss".
    let p = f
        .auth
        .authenticate(&basic("viewer", "pa:ss"), IP, conn())
        .await
        .unwrap();
    assert_eq!(&*p.user, "viewer");
    let c = parse_basic(&basic("viewer", "pa:ss")).unwrap();
    assert_eq!((c.user(), c.password()), ("viewer", "pa:ss"));
}

#[tokio::test]
async fn c4_duplicate_headers_never_authenticate() {
    let f = fixture();
    let good = format!("Basic {}", STANDARD.encode("admin:correct-horse"));
    let bad = format!("Basic {}", STANDARD.encode("admin:wrong"));
    for pair in [[&good, &bad], [&bad, &good], [&good, &good]] {
        let h = raw_auth(&[pair[0].as_bytes(), pair[1].as_bytes()]);
        let r = f.auth.authenticate(&h, IP, conn()).await.unwrap_err();
        assert!(matches!(r, Reject::BadRequest { .. }), "{r:?}");
        assert_eq!(r.status(), 400);
    }
    let joined = format!("{good}, {bad}");
    let r = f
        .auth
        .authenticate(&raw_auth(&[joined.as_bytes()]), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(f.auth.stats().verifications(), 0);
    assert_eq!(f.auth.stats().successes(), 0);
}

#[tokio::test]
async fn c5_oversized_header_is_431_before_decoding() {
    let f = fixture();
    // Valid base64 of a valid user, padded past 8 KiB: still refused.
    let big = format!(
        "Basic {}",
        STANDARD.encode(format!("admin:{}", "x".repeat(12 * 1024)))
    );
    assert!(big.len() > 16 * 1024);
    let r = f
        .auth
        .authenticate(&raw_auth(&[big.as_bytes()]), IP, conn())
        .await
        .unwrap_err();
    assert_eq!(r, Reject::HeaderTooLarge);
    assert_eq!(r.status(), 431);
    // Invalid base64 of the same size gets the same answer: size comes first.
    let junk = format!("Basic {}", "!".repeat(16 * 1024));
    let r = parse_basic(&raw_auth(&[junk.as_bytes()])).unwrap_err();
    assert_eq!(r, Reject::HeaderTooLarge);
    assert_eq!(f.auth.stats().verifications(), 0);
    assert_eq!(f.auth.stats().failures(FailureReason::TooLarge), 1);
}

#[tokio::test]
async fn c6_unicode_names_are_exact_bytes() {
    let f = fixture();
    // NFC "é" is the user; NFD "e\u{301}" is another (unknown) name.
    assert!(f
        .auth
        .authenticate(&basic("é", "nfc-pass"), IP, conn())
        .await
        .is_ok());
    for name in [
        "e\u{301}",
        "ａｄｍｉｎ",
        "ad\u{200b}min",
        "\u{202e}nimda",
        "Admin",
    ] {
        let pw = if name.starts_with('e') {
            "nfc-pass"
        } else {
            "correct-horse"
        };
        let r = f.auth.authenticate(&basic(name, pw), IP, conn()).await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized, "{name:?}");
    }
    // Invalid and overlong UTF-8 in the decoded value.
    for raw in [
        &b"adm\xffin:correct-horse"[..],
        b"\xc0\xafadmin:x",
        b"admin:\xed\xa0\x80",
    ] {
        let v = format!("Basic {}", STANDARD.encode(raw));
        let r = f
            .auth
            .authenticate(&raw_auth(&[v.as_bytes()]), IP, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    }
}

#[tokio::test]
async fn c7_unknown_users_are_hashed_like_known_ones() {
    let f = fixture();
    let before = f.auth.stats().verifications();
    let r = f
        .auth
        .authenticate(&basic("ghost", "whatever"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(
        f.auth.stats().verifications(),
        before + 1,
        "an unknown user is verified against the dummy hash"
    );
    let r = f
        .auth
        .authenticate(&basic("admin", "wrong"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(f.auth.stats().failures(FailureReason::BadCredentials), 2);
}

#[tokio::test]
async fn c9_passthrough_by_default_and_no_secret_in_rejections() {
    let f = fixture();
    assert!(f.auth.upstream_authorization().is_none());
    let pw = "correct-horse";
    let b64 = STANDARD.encode(format!("admin:{pw}"));
    let wrong = STANDARD.encode("admin:wrong-horse");
    let inputs = [
        basic("admin", "wrong-horse"),
        raw_auth(&[format!("Bearer {b64}").as_bytes()]),
        raw_auth(&[
            format!("Basic {b64}").as_bytes(),
            format!("Basic {wrong}").as_bytes(),
        ]),
    ];
    for h in &inputs {
        let r = f.auth.authenticate(h, IP, conn()).await.unwrap_err();
        let text = format!("{r:?} {}", String::from_utf8_lossy(&r.body()));
        for secret in [pw, "wrong-horse", b64.as_str(), wrong.as_str()] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[tokio::test]
async fn c9_service_forwarding_replaces_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), users_toml(&[ADMIN])).unwrap();
    std::fs::write(
        dir.path().join("svc.toml"),
        "username = \"svc@cluster\"\npassword = \"svc-secret\"\n",
    )
    .unwrap();
    let cfg: regate::auth::AuthConfig =
        toml::from_str("forward = \"service\"\nservice_credentials_file = \"svc.toml\"\n").unwrap();
    let auth =
        regate::auth::Authenticator::new(cfg.validate(dir.path(), roles()).unwrap(), None).unwrap();
    let h = auth.upstream_authorization().unwrap();
    assert!(h.is_sensitive());
    let expected = format!("Basic {}", STANDARD.encode("svc@cluster:svc-secret"));
    assert_eq!(h.to_str().unwrap(), expected);
    assert!(!format!("{h:?}").contains("svc-secret"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_header_bytes_never_panic_or_authenticate(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let f = PROP.with(|f| f.clone());
        if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v);
            let _ = parse_basic(&h);
            let r = RT.with(|rt| rt.block_on(f.authenticate(&h, IP, conn())));
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn arbitrary_decoded_credentials_never_authenticate(raw in proptest::collection::vec(any::<u8>(), 0..128)) {
        prop_assume!(raw != b"admin:correct-horse");
        let f = PROP.with(|f| f.clone());
        let v = format!("Basic {}", STANDARD.encode(&raw));
        let r = RT.with(|rt| rt.block_on(f.authenticate(&raw_auth(&[v.as_bytes()]), IP, conn())));
        prop_assert!(r.is_err());
    }

    #[test]
    fn arbitrary_user_and_password_never_authenticate(user in "\\PC{0,12}", pw in "\\PC{0,12}") {
        prop_assume!(!(user == "admin" && pw == "correct-horse"));
        let f = PROP.with(|f| f.clone());
        let r = RT.with(|rt| rt.block_on(f.authenticate(&basic(&user, &pw), IP, conn())));
        prop_assert!(r.is_err());
    }
}

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    static PROP: regate::auth::Authenticator = {
        let f = file_auth(&[ADMIN], NO_LIMITS);
        // Keep the temp dir alive for the thread's lifetime.
        std::mem::forget(f.dir);
        f.auth
    };
}
