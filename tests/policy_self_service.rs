//! Self-service rules (own password, own user record) and `explain`.

use std::sync::Arc;

use http::Method;
use regate::context::{IdentitySource, Principal};
use regate::error::Reject;
use regate::policy::{check_self_username, BodyVerdict, Policy};

fn who(role: &str, user: &str, uid: Option<u64>) -> Principal {
    Principal {
        user: Arc::from(user),
        uid,
        role: Arc::from(role),
        source: IdentitySource::File,
    }
}

fn status(policy: &Policy, method: Method, path: &str, p: &Principal) -> Result<&'static str, u16> {
    let m = policy
        .resolve(&method, path, None)
        .map_err(|r| r.status().as_u16())?;
    policy
        .authorize(&m, p)
        .map(|p| p.rule)
        .map_err(|r| r.status().as_u16())
}

#[test]
fn self_service_password() {
    let policy = Policy::builtin().unwrap();
    for method in [Method::PUT, Method::POST, Method::DELETE] {
        let m = policy.resolve(&method, "/v1/users/password", None).unwrap();
        for role in ["none", "db_viewer", "cluster_member"] {
            let alice = who(role, "alice", Some(3));
            let permit = policy.authorize(&m, &alice).unwrap();
            assert_eq!(permit.rule, "self-service");
            assert!(permit.requires_self_username());
            assert_eq!(
                permit.check_body(br#"{"username":"alice","new_password":"n"}"#, &alice),
                Ok(BodyVerdict::Pass)
            );
            assert!(matches!(
                permit.check_body(br#"{"username":"bob"}"#, &alice),
                Err(Reject::Forbidden { .. })
            ));
            assert!(check_self_username(br#"{"username":"alice"}"#, &alice).is_ok());
            assert!(check_self_username(br#"{"new_password":"n"}"#, &alice).is_err());
        }
        // admin changes anyone's password on its permission, no body check.
        let permit = policy
            .authorize(&m, &who("admin", "root", Some(1)))
            .unwrap();
        assert_eq!(permit.rule, "role-permission");
        assert!(!permit.requires_body_check());
    }
}

#[test]
fn self_service_own_user_record() {
    let policy = Policy::builtin().unwrap();
    let alice = who("db_viewer", "alice", Some(3));
    assert_eq!(
        status(&policy, Method::GET, "/v1/users/3", &alice),
        Ok("self-service")
    );
    assert_eq!(
        status(&policy, Method::GET, "/v1/users/4", &alice),
        Err(403)
    );
    assert_eq!(
        status(&policy, Method::GET, "/v1/users/03", &alice),
        Err(403)
    );
    assert_eq!(
        status(&policy, Method::DELETE, "/v1/users/3", &alice),
        Err(403)
    );
    assert_eq!(status(&policy, Method::GET, "/v1/users", &alice), Err(403));
    let unknown_uid = who("db_viewer", "alice", None);
    assert_eq!(
        status(&policy, Method::GET, "/v1/users/3", &unknown_uid),
        Err(403)
    );

    let m = policy.resolve(&Method::PUT, "/v1/users/3", None).unwrap();
    let permit = policy.authorize(&m, &alice).unwrap();
    assert_eq!(permit.rule, "self-service");
    assert!(permit.requires_body_check() && !permit.requires_self_username());
    assert_eq!(
        permit.check_body(
            br#"{"name":"Alice","password":"p","email_alerts":true}"#,
            &alice
        ),
        Ok(BodyVerdict::Pass)
    );
    assert!(matches!(
        permit.check_body(br#"{"role":"admin"}"#, &alice),
        Err(Reject::Forbidden { .. })
    ));
    assert!(matches!(
        permit.check_body(br#"{"name":"a","name":"b"}"#, &alice),
        Err(Reject::BadRequest { .. })
    ));
    // user_manager edits anyone through its permission.
    assert_eq!(
        status(
            &policy,
            Method::PUT,
            "/v1/users/4",
            &who("user_manager", "um", Some(8))
        ),
        Ok("role-permission")
    );
}

#[test]
fn explain_names_route_permission_and_rule() {
    let policy = Policy::builtin().unwrap();
    let ex = policy.explain("db_viewer", None, "alice", "DELETE", "/v1/bdbs/1");
    let text = ex.to_string();
    assert!(text.contains("DENY 403"), "{text}");
    assert!(
        text.contains("DELETE /v1/bdbs/{uid}") && text.contains("delete_bdb"),
        "{text}"
    );
    assert!(text.contains("does not hold"), "{text}");
    let ex = policy.explain("db_viewer", Some(3), "alice", "GET", "/v1/users/3?x=1");
    assert_eq!(ex.decision, Ok("self-service"));
    assert!(ex.to_string().contains("GET /v1/users/{uid}"));
    let ex = policy.explain("db_viewer", None, "alice", "GET", "/v1/bdbs/../users");
    assert!(ex.to_string().contains("DENY 400"));
    let ex = policy.explain("db_viewer", None, "alice", "GET", "/v9/x");
    assert!(ex.to_string().contains("DENY 404"));
}
