//! The verified-credential cache and the failed-login limits, observed
//! through the stage's counters: hits cost no hash, concurrent first
//! requests cost one, throttled attempts cost none (C8), limits recover.

mod auth_common;

use std::net::IpAddr;
use std::time::Duration;

use auth_common::*;
use regate::auth::FailureReason;
use regate::error::Reject;

const ADMIN: User = ("admin", "correct-horse", "admin", Some(1));
const BOB: User = ("bob", "bobs-pass", "db_viewer", None);

#[tokio::test]
async fn a_cache_hit_performs_no_verification() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let h = basic("admin", "correct-horse");
    f.auth.authenticate(&h, IP, conn()).await.unwrap();
    assert_eq!(f.auth.stats().verifications(), 1);
    for _ in 0..20 {
        f.auth.authenticate(&h, IP, conn()).await.unwrap();
    }
    let s = f.auth.stats();
    assert_eq!(s.verifications(), 1);
    assert_eq!(s.cache_hits(), 20);
    assert_eq!(s.cache_misses(), 1);
    assert_eq!(s.successes(), 21);
    // A wrong password is never served from the cache of the right one.
    let r = f
        .auth
        .authenticate(&basic("admin", "correct-horsf"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(f.auth.stats().verifications(), 2);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    for _ in 0..3 {
        let r = f
            .auth
            .authenticate(&basic("admin", "nope"), IP, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    }
    assert_eq!(f.auth.stats().verifications(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_first_requests_verify_once() {
    // A costlier hash widens the window in which all 50 overlap.
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("slow-pass", 8).unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        format!("[[users]]\nname = \"carol\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let cfg: regate::auth::AuthConfig = toml::from_str(NO_LIMITS).unwrap();
    let auth =
        regate::auth::Authenticator::new(cfg.validate(dir.path(), roles()).unwrap(), None).unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let auth = auth.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                auth.authenticate(&basic("carol", "slow-pass"), IP, conn())
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(auth.stats().verifications(), 1);
    assert_eq!(auth.stats().successes(), 50);
}

#[tokio::test]
async fn c8_per_ip_limit_fires_before_hashing() {
    let f = file_auth(
        &[ADMIN, BOB],
        "failed_per_ip = { rate = \"3/min\", burst = 3 }\n\
         failed_per_user = { rate = \"1000/min\", burst = 1000 }\n",
    );
    for i in 0..3 {
        let r = f
            .auth
            .authenticate(&basic(&format!("user{i}"), "guess"), IP, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    }
    let spent = f.auth.stats().verifications();
    assert_eq!(spent, 3);
    for i in 0..20 {
        let r = f
            .auth
            .authenticate(&basic(&format!("other{i}"), "guess"), IP, conn())
            .await;
        match r.unwrap_err() {
            Reject::AuthThrottled { retry_after_secs } => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        f.auth.stats().verifications(),
        spent,
        "no hashing while throttled"
    );
    assert_eq!(f.auth.stats().failures(FailureReason::Throttled), 20);
    let resp = Reject::AuthThrottled {
        retry_after_secs: 20,
    }
    .to_response();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key(http::header::RETRY_AFTER));
    // Another IP is not affected; IPv4-mapped IPv6 is the same client.
    let other: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(f
        .auth
        .authenticate(&basic("bob", "bobs-pass"), other, conn())
        .await
        .is_ok());
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    let r = f
        .auth
        .authenticate(&basic("bob", "x"), mapped, conn())
        .await;
    assert!(matches!(r, Err(Reject::AuthThrottled { .. })));
}

#[tokio::test]
async fn c8_per_user_limit_and_cached_valid_user_keeps_working() {
    let f = file_auth(
        &[ADMIN],
        "failed_per_ip = { rate = \"1000/min\", burst = 1000 }\n\
         failed_per_user = { rate = \"2/min\", burst = 2 }\n",
    );
    // The real admin logs in first (now cached).
    f.auth
        .authenticate(&basic("admin", "correct-horse"), IP, conn())
        .await
        .unwrap();
    // An attacker from rotating addresses in one /64 and beyond.
    for i in 0..2u16 {
        let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
        let r = f
            .auth
            .authenticate(&basic("admin", "guess"), ip, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    }
    let spent = f.auth.stats().verifications();
    for i in 0..10u16 {
        let ip: IpAddr = format!("2001:db8:{i}::1").parse().unwrap();
        let r = f
            .auth
            .authenticate(&basic("admin", "guess"), ip, conn())
            .await;
        assert!(matches!(r, Err(Reject::AuthThrottled { .. })));
    }
    assert_eq!(f.auth.stats().verifications(), spent);
    // The cached valid credential is not locked out by the attack.
    assert!(f
        .auth
        .authenticate(&basic("admin", "correct-horse"), IP, conn())
        .await
        .is_ok());
}

#[tokio::test]
async fn only_failures_consume_the_budget() {
    let f = file_auth(
        &[ADMIN],
        "cache_ttl = \"1s\"\nfailed_per_ip = { rate = \"2/min\", burst = 2 }\n\
         failed_per_user = { rate = \"2/min\", burst = 2 }\n",
    );
    // Many successful logins (cache hits and misses) cost nothing...
    for _ in 0..10 {
        f.auth
            .authenticate(&basic("admin", "correct-horse"), IP, conn())
            .await
            .unwrap();
    }
    // ...so two failures are still allowed before the limit.
    for _ in 0..2 {
        let r = f
            .auth
            .authenticate(&basic("admin", "bad"), IP, conn())
            .await;
        assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    }
    let r = f
        .auth
        .authenticate(&basic("admin", "bad"), IP, conn())
        .await;
    assert!(matches!(r, Err(Reject::AuthThrottled { .. })));
}

#[tokio::test]
async fn limits_recover() {
    let f = file_auth(
        &[ADMIN],
        "failed_per_ip = { rate = \"1/s\", burst = 1 }\n\
         failed_per_user = { rate = \"1/s\", burst = 1 }\n",
    );
    let r = f
        .auth
        .authenticate(&basic("admin", "bad"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    let r = f
        .auth
        .authenticate(&basic("admin", "correct-horse"), IP, conn())
        .await;
    assert!(matches!(
        r,
        Err(Reject::AuthThrottled {
            retry_after_secs: 1
        })
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(f
        .auth
        .authenticate(&basic("admin", "correct-horse"), IP, conn())
        .await
        .is_ok());
}

#[test]
fn the_stage_is_shareable_and_its_future_is_send() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send>(_: &T) {}
    shareable::<regate::auth::Authenticator>();
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let h = basic("admin", "correct-horse");
    send(&f.auth.authenticate(&h, IP, conn()));
}
