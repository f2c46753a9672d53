//! Users-file reloads: users added, changed and removed while requests
//! flow (a changed password stops working at once), a broken file keeping
//! the old table, and the mtime/length watcher picking up edits.

mod auth_common;

use std::time::Duration;

use auth_common::*;
use regate::auth::ReloadError;
use regate::error::Reject;

const ADMIN: User = ("admin", "correct-horse", "admin", Some(1));
const BOB: User = ("bob", "bobs-pass", "db_viewer", None);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_changes_and_removes_users_under_traffic() {
    let f = file_auth(&[ADMIN, BOB], NO_LIMITS);
    let admin = basic("admin", "correct-horse");
    let bob = basic("bob", "bobs-pass");
    f.auth.authenticate(&admin, IP, conn()).await.unwrap();
    f.auth.authenticate(&bob, IP, conn()).await.unwrap();

    // Traffic for the unchanged user keeps flowing during the reloads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = {
        let auth = f.auth.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let h = basic("admin", "correct-horse");
                auth.authenticate(&h, IP, conn())
                    .await
                    .expect("admin must keep working");
                ok += 1;
                tokio::task::yield_now().await;
            }
            ok
        })
    };

    // Change bob's password and role, add carol, keep admin.
    f.write_users(&[
        ADMIN,
        ("bob", "new-pass", "cluster_viewer", None),
        ("carol", "c-pass", "db_viewer", Some(9)),
    ]);
    f.auth.reload().unwrap();
    assert_eq!(
        f.auth.authenticate(&bob, IP, conn()).await.unwrap_err(),
        Reject::Unauthorized,
        "the old password stops working at once"
    );
    let p = f
        .auth
        .authenticate(&basic("bob", "new-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(&*p.role, "cluster_viewer");
    let p = f
        .auth
        .authenticate(&basic("carol", "c-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(p.uid, Some(9));

    // Remove bob.
    f.write_users(&[ADMIN, ("carol", "c-pass", "db_viewer", Some(9))]);
    f.auth.reload().unwrap();
    let r = f
        .auth
        .authenticate(&basic("bob", "new-pass"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert!(f.auth.role_of("bob").is_none());

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(flow.await.unwrap() > 0);
    assert_eq!(f.auth.stats().reloads(), 2);
}

#[tokio::test]
async fn role_changes_apply_to_cached_credentials() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let h = basic("admin", "correct-horse");
    f.auth.authenticate(&h, IP, conn()).await.unwrap();
    let hash_line = std::fs::read_to_string(f.users_path()).unwrap();
    std::fs::write(
        f.users_path(),
        hash_line.replace("role = \"admin\"", "role = \"db_viewer\""),
    )
    .unwrap();
    f.auth.reload().unwrap();
    let before = f.auth.stats().verifications();
    let p = f.auth.authenticate(&h, IP, conn()).await.unwrap();
    assert_eq!(&*p.role, "db_viewer");
    assert_eq!(
        f.auth.stats().verifications(),
        before,
        "same hash: still cached"
    );
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_table() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let h = basic("admin", "correct-horse");
    for broken in [
        "[[users]]\nname = \"admin\"\npassword_hash = \"plain\"\nrole = \"admin\"\n".to_owned(),
        "[[users]\nname = ".to_owned(),
        users_toml(&[("admin", "x", "superuser", None)]),
    ] {
        std::fs::write(f.users_path(), broken).unwrap();
        match f.auth.reload() {
            Err(ReloadError::Invalid(errors)) => assert!(!errors.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(f.auth.authenticate(&h, IP, conn()).await.is_ok());
    }
    assert_eq!(f.auth.stats().reload_failures(), 3);
    assert_eq!(f.auth.stats().reloads(), 0);
    std::fs::remove_file(f.users_path()).unwrap();
    assert!(f.auth.reload().is_err());
    assert!(f.auth.authenticate(&h, IP, conn()).await.is_ok());
}

#[tokio::test]
async fn the_watcher_reloads_on_change() {
    let f = file_auth(&[ADMIN], NO_LIMITS);
    let watcher = f.auth.watch_users_file(Duration::from_millis(50)).unwrap();
    f.write_users(&[ADMIN, BOB]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f
        .auth
        .authenticate(&basic("bob", "bobs-pass"), IP, conn())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(f.auth.stats().reloads() >= 1);
    watcher.abort();
}
