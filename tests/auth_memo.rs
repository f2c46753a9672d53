//! The per-connection memo of the last verified `Authorization` value:
//! it answers repeats on one connection without the shared cache, and it
//! must never answer differently than the shared cache would. It expires
//! with the cache TTL, belongs to one authenticator, answers only the exact
//! header it was made for, and follows users-file reloads at once.

mod auth_common;

use std::time::Duration;

use auth_common::*;
use regate::auth::AuthMemo;
use regate::error::Reject;

const ADMIN: User = ("admin", "correct-horse", "admin", Some(1));
const BOB: User = ("bob", "bobs-pass", "db_viewer", None);
const FAST_TTL: &str = "cache_ttl = \"1s\"\n\
                        failed_per_ip = { rate = \"100000/s\", burst = 100000 }\n\
                        failed_per_ip_user = { rate = \"100000/s\", burst = 100000 }\n\
                        failed_per_user = { rate = \"100000/s\", burst = 100000 }\n";

#[tokio::test]
async fn repeats_on_a_connection_are_answered_by_the_memo() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let memo = AuthMemo::default();
    let h = basic("admin", "correct-horse");
    assert!(!memo.is_set());
    let p = f.auth.authenticate(&h, IP, &memo).await.unwrap();
    assert!(memo.is_set(), "a verified header is remembered");
    for _ in 0..5 {
        assert_eq!(f.auth.authenticate(&h, IP, &memo).await.unwrap(), p);
    }
    let s = f.auth.stats();
    assert_eq!(
        (s.verifications(), s.cache_misses(), s.cache_hits()),
        (1, 1, 5)
    );
    assert_eq!(s.successes(), 6);
}

#[tokio::test]
async fn the_memo_expires_with_the_cache_ttl() {
    let f = file_auth(&[ADMIN], FAST_TTL);
    let memo = AuthMemo::default();
    let h = basic("admin", "correct-horse");
    f.auth.authenticate(&h, IP, &memo).await.unwrap();
    f.auth.authenticate(&h, IP, &memo).await.unwrap();
    assert_eq!(f.auth.stats().verifications(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    f.auth.authenticate(&h, IP, &memo).await.unwrap();
    assert_eq!(
        f.auth.stats().verifications(),
        2,
        "after the TTL the password is checked again, memo or not"
    );
}

#[tokio::test]
async fn the_memo_answers_only_the_exact_header() {
    let f = file_auth(&[ADMIN, BOB], NO_LIMITS);
    let memo = AuthMemo::default();
    f.auth
        .authenticate(&basic("admin", "correct-horse"), IP, &memo)
        .await
        .unwrap();
    for wrong in ["correct-horsf", "correct-horse ", "Correct-horse"] {
        let r = f.auth.authenticate(&basic("admin", wrong), IP, &memo).await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized, "{wrong:?}");
    }
    let p = f
        .auth
        .authenticate(&basic("bob", "bobs-pass"), IP, &memo)
        .await
        .unwrap();
    assert_eq!((&*p.user, &*p.role), ("bob", "db_viewer"));
    // The same credentials in a different spelling of the header (scheme
    // case) are still the same credentials: the shared cache answers.
    let lower = raw_auth(&[b"basic Ym9iOmJvYnMtcGFzcw=="]);
    let p = f.auth.authenticate(&lower, IP, &memo).await.unwrap();
    assert_eq!(&*p.user, "bob");
    // Two Authorization headers are refused, even if one is remembered.
    let mut two = basic("bob", "bobs-pass");
    two.append(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Basic eDp5"),
    );
    let r = f.auth.authenticate(&two, IP, &memo).await;
    assert!(matches!(r, Err(Reject::BadRequest { .. })), "{r:?}");
}

#[tokio::test]
async fn the_memo_belongs_to_one_authenticator() {
    // A config reload builds a new authenticator; connections opened
    // before it keep their memo, which must not vouch for anything there.
    // Same users file, byte for byte (same hash text), other settings.
    let old = file_auth(&[ADMIN], NO_LIMITS);
    let new = file_auth(&[BOB], FAST_TTL);
    std::fs::copy(old.users_path(), new.users_path()).unwrap();
    new.auth.reload().unwrap();
    let memo = AuthMemo::default();
    let h = basic("admin", "correct-horse");
    old.auth.authenticate(&h, IP, &memo).await.unwrap();
    new.auth.authenticate(&h, IP, &memo).await.unwrap();
    assert_eq!(
        new.auth.stats().verifications(),
        1,
        "the new authenticator verifies for itself"
    );
    // And a password the new table does not hold is refused.
    let other = file_auth(&[("admin", "new-password", "admin", Some(1))], NO_LIMITS);
    old.auth.authenticate(&h, IP, &memo).await.unwrap();
    let r = other.auth.authenticate(&h, IP, &memo).await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
}

#[tokio::test]
async fn the_memo_follows_users_file_reloads() {
    let f = file_auth(&[ADMIN, BOB], NO_LIMITS);
    let memo = AuthMemo::default();
    let h = basic("bob", "bobs-pass");
    f.auth.authenticate(&h, IP, &memo).await.unwrap();

    // Same password, new role: the remembered verification still holds and
    // the principal carries the new role.
    f.write_users(&[ADMIN, ("bob", "bobs-pass", "cluster_viewer", None)]);
    f.auth.reload().unwrap();
    let p = f.auth.authenticate(&h, IP, &memo).await.unwrap();
    assert_eq!(&*p.role, "cluster_viewer");

    // New password: the old one stops working at once on this connection.
    f.write_users(&[ADMIN, ("bob", "other-pass", "cluster_viewer", None)]);
    f.auth.reload().unwrap();
    let r = f.auth.authenticate(&h, IP, &memo).await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);

    // Removed: gone at once too.
    let h = basic("admin", "correct-horse");
    f.auth.authenticate(&h, IP, &memo).await.unwrap();
    f.write_users(&[BOB]);
    f.auth.reload().unwrap();
    let r = f.auth.authenticate(&h, IP, &memo).await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
}
