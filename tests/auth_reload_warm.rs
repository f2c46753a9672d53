//! A reload keeps warm credentials (issue 17): after a config reload
//! (what SIGHUP does) or a users-file change, users whose entry (hash,
//! role, uid, certificate binding) did not change are answered from the
//! cache without hashing again; changed and removed users lose their
//! cached verification at once. Counted with the authenticator's
//! verification counter, through the real gateway.

mod auth_common;
mod common;

use common::*;

const OPS: (&str, &str) = ("ops@redis.local", "ops-pass");

/// The users file; hashes are made once per password, so an unchanged
/// entry is byte-for-byte the same across versions of the file.
fn users(viewer_pass: &str, ops_role: &str, with_ops: bool) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static HASHES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let hash = |pw: &str| {
        let mut m = HASHES.get_or_init(Default::default).lock().unwrap();
        m.entry(pw.to_string())
            .or_insert_with(|| bcrypt::hash(pw, 4).unwrap())
            .clone()
    };
    let mut list = vec![
        (ADMIN.0, ADMIN.1, "admin", "uid = 1\n"),
        (VIEWER.0, viewer_pass, "db_viewer", "uid = 2\n"),
    ];
    if with_ops {
        list.push((OPS.0, OPS.1, ops_role, ""));
    }
    list.iter()
        .map(|(name, pw, role, uid)| {
            format!(
                "[[users]]\nname = \"{name}\"\npassword_hash = \"{}\"\nrole = \"{role}\"\n{uid}\n",
                hash(pw)
            )
        })
        .collect()
}

fn verifications(w: &World) -> u64 {
    w.gateway.gateway.current().auth.stats().verifications()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_keeps_unchanged_users_warm() {
    // forward = "service": the nodes see the service account, so the
    // gateway's users need not exist in the simulated cluster.
    let w = World::with(Setup {
        extra: "[auth]\nusers = \"users.toml\"\nforward = \"service\"\n\
                service_credentials_file = \"service.toml\"\n"
            .into(),
        files: vec![
            ("users.toml".into(), users(VIEWER.1, "db_viewer", true)),
            (
                "service.toml".into(),
                format!("username = \"{}\"\npassword = \"{}\"\n", ADMIN.0, ADMIN.1),
            ),
        ],
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    for who in [ADMIN, VIEWER, OPS] {
        assert_eq!(c.get(&w.url("/v1/bdbs"), who).await.status, 200);
    }
    assert_eq!(verifications(&w), 3);

    // The viewer's password and the ops role change; admin stays.
    std::fs::write(
        w.dir.path().join("users.toml"),
        users("viewer-new", "cluster_viewer", true),
    )
    .unwrap();
    w.gateway.gateway.reload().unwrap();
    assert_eq!(verifications(&w), 0, "a new authenticator");

    // Admin: from the kept cache, on a new connection too.
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(
        w.client(true).get(&w.url("/v1/bdbs"), ADMIN).await.status,
        200
    );
    assert_eq!(verifications(&w), 0, "unchanged user: no hashing");
    // Viewer: the old password is refused at once, the new one verified.
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 401);
    let r = c.get(&w.url("/v1/bdbs"), (VIEWER.0, "viewer-new")).await;
    assert_eq!(r.status, 200);
    assert_eq!(verifications(&w), 2);
    // Ops: the role changed, so it is verified again and the new role
    // applies.
    assert_eq!(c.get(&w.url("/v1/cluster"), OPS).await.status, 200);
    assert_eq!(verifications(&w), 3, "changed role: verified again");
    let lines = wait_audit(&w, 8).await;
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[7]["user"], OPS.0);
    assert_eq!(lines[7]["role"], "cluster_viewer");
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(verifications(&w), 3);

    // Ops removed: refused at once (its cached entry is gone).
    std::fs::write(
        w.dir.path().join("users.toml"),
        users("viewer-new", "cluster_viewer", false),
    )
    .unwrap();
    w.gateway.gateway.reload().unwrap();
    assert_eq!(c.get(&w.url("/v1/cluster"), OPS).await.status, 401);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(
        verifications(&w),
        1,
        "only the removed user's attempt was hashed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_file_reload_drops_users_whose_role_or_uid_changed() {
    use auth_common::*;
    let f = file_auth(
        &[
            ("a", "pa", "admin", Some(1)),
            ("b", "pb", "db_viewer", Some(2)),
        ],
        NO_LIMITS,
    );
    for (u, p) in [("a", "pa"), ("b", "pb")] {
        f.auth.authenticate(&basic(u, p), IP, conn()).await.unwrap();
    }
    assert_eq!(f.auth.stats().verifications(), 2);
    // Same hashes: `users_toml` hashes again with a new salt, so write the
    // changed file from the current one by editing only b's uid.
    let text = std::fs::read_to_string(f.users_path()).unwrap();
    std::fs::write(f.users_path(), text.replace("uid = 2", "uid = 3")).unwrap();
    f.auth.reload().unwrap();
    let a = f
        .auth
        .authenticate(&basic("a", "pa"), IP, conn())
        .await
        .unwrap();
    assert_eq!(a.uid, Some(1));
    assert_eq!(f.auth.stats().verifications(), 2, "a is unchanged: cached");
    let b = f
        .auth
        .authenticate(&basic("b", "pb"), IP, conn())
        .await
        .unwrap();
    assert_eq!(b.uid, Some(3));
    assert_eq!(
        f.auth.stats().verifications(),
        3,
        "b's uid changed: verified again"
    );
}
