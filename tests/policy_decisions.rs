//! Policy decisions beyond the role matrix: literal-before-parameter
//! routing, API versions, custom roles and dry-run.

use std::sync::Arc;

use http::Method;
use regate::context::{IdentitySource, Principal};
use regate::error::Reject;
use regate::policy::{CustomRoleConfig, EndpointClass, Mode, Policy, PolicyConfig};

fn who(role: &str, user: &str, uid: Option<u64>) -> Principal {
    Principal {
        user: Arc::from(user),
        uid,
        role: Arc::from(role),
        source: IdentitySource::File,
    }
}

fn roles(toml_text: &str) -> Vec<CustomRoleConfig> {
    #[derive(serde::Deserialize)]
    struct F {
        roles: Vec<CustomRoleConfig>,
    }
    toml::from_str::<F>(toml_text).unwrap().roles
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
fn policy_and_permit_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
    send_sync::<regate::policy::Permit>();
}

#[test]
fn literal_segments_win_over_parameters() {
    let policy = Policy::builtin().unwrap();
    let cases = [
        (
            Method::GET,
            "/v1/bdbs/stats",
            "/v1/bdbs/stats",
            "view_all_bdb_stats",
        ),
        (
            Method::GET,
            "/v1/bdbs/12",
            "/v1/bdbs/{uid}",
            "view_bdb_info",
        ),
        (
            Method::GET,
            "/v1/bdbs/stats/last",
            "/v1/bdbs/stats/last",
            "view_all_bdb_stats",
        ),
        (
            Method::GET,
            "/v1/bdbs/stats/3",
            "/v1/bdbs/stats/{uid}",
            "view_bdb_stats",
        ),
        (
            Method::GET,
            "/v1/bdbs/alerts",
            "/v1/bdbs/alerts",
            "view_all_bdbs_alerts",
        ),
        (
            Method::PUT,
            "/v1/users/password",
            "/v1/users/password",
            "admin_only",
        ),
        (Method::PUT, "/v1/users/5", "/v1/users/{uid}", "update_user"),
        (
            Method::GET,
            "/v1/nodes/status",
            "/v1/nodes/status",
            "view_node_info",
        ),
        (
            Method::GET,
            "/v1/nodes/2/status",
            "/v1/nodes/{uid}/status",
            "view_node_info",
        ),
    ];
    for (method, path, template, permission) in cases {
        let m = policy.resolve(&method, path, None).unwrap();
        assert_eq!(
            (m.template, m.permission),
            (template, permission),
            "{method} {path}"
        );
    }
    let m = policy
        .resolve(
            &Method::GET,
            "/v1/bdbs/crdt_sources/alerts/4/src1/alert_x",
            None,
        )
        .unwrap();
    let params: Vec<_> = m.params().collect();
    assert_eq!(
        params,
        [("uid", "4"), ("crdt_src_id", "src1"), ("alert", "alert_x")]
    );
    // No fallback to the parameter route once a literal matched.
    assert!(matches!(
        policy.resolve(&Method::DELETE, "/v1/bdbs/stats", None),
        Err(Reject::NotFound)
    ));
    assert!(matches!(
        policy.resolve(&Method::GET, "/v1/users/password", None),
        Err(Reject::NotFound)
    ));
    assert!(matches!(
        policy.resolve(&Method::HEAD, "/v1/bdbs", None),
        Err(Reject::NotFound)
    ));
    assert!(matches!(
        policy.resolve(&Method::OPTIONS, "/v1/bdbs", None),
        Err(Reject::NotFound)
    ));
}

#[test]
fn api_versions() {
    let policy = Policy::builtin().unwrap();
    let m = policy.resolve(&Method::POST, "/v2/bdbs", None).unwrap();
    assert_eq!(
        (m.permission, m.version.to_string().as_str()),
        ("create_bdb", "v2")
    );
    assert!(matches!(
        policy.resolve(&Method::GET, "/v2/bdbs", None),
        Err(Reject::NotFound)
    ));
    assert!(matches!(
        policy.resolve(&Method::GET, "/v3/bdbs", None),
        Err(Reject::NotFound)
    ));
    assert!(policy
        .resolve(&Method::GET, "/v4/cluster/health", None)
        .is_ok());
    assert!(policy
        .resolve(&Method::POST, "/v2/bdbs", Some(b"v2"))
        .is_ok());
    assert!(policy
        .resolve(&Method::POST, "/v2/bdbs", Some(b"2"))
        .is_ok());
    for header in [&b"v1"[..], b"1", b"v3", b"latest", b""] {
        let r = policy.resolve(&Method::POST, "/v2/bdbs", Some(header));
        assert!(
            matches!(r, Err(Reject::UnsupportedApiVersion)),
            "{header:?}"
        );
        assert_eq!(Reject::UnsupportedApiVersion.status(), 505);
    }
    // An unknown route stays 404 whatever the header says.
    assert!(matches!(
        policy.resolve(&Method::GET, "/v2/bdbs", Some(b"v1")),
        Err(Reject::NotFound)
    ));
}

#[test]
fn custom_roles_extend_add_remove_and_explicit() {
    let custom = roles(
        r#"
        [[roles]]
        name = "ops"
        extends = "db_viewer"
        add = ["update_bdb", "view_sso"]
        remove = ["view_all_bdbs_info"]
        [[roles]]
        name = "auditor"
        permissions = ["view_cluster_info", "view_logged_events"]
        [[roles]]
        name = "viewer_plus"
        extends = "cluster_viewer"
        "#,
    );
    let policy = Policy::compile(&PolicyConfig::default(), &custom).unwrap();
    assert!(policy.has_role("ops") && policy.has_role("auditor") && policy.has_role("admin"));
    assert!(!policy.has_role("Admin") && !policy.has_role("root"));
    let ops = who("ops", "o", None);
    assert_eq!(
        status(&policy, Method::PUT, "/v1/bdbs/1", &ops),
        Ok("role-permission")
    );
    assert_eq!(
        status(&policy, Method::GET, "/v1/bdbs/1", &ops),
        Ok("role-permission")
    );
    assert_eq!(status(&policy, Method::GET, "/v1/bdbs", &ops), Err(403));
    assert_eq!(
        status(&policy, Method::DELETE, "/v1/bdbs/1", &ops),
        Err(403)
    );
    // view_sso added by name passes the route's built-in role restriction...
    assert_eq!(
        status(&policy, Method::GET, "/v1/cluster/sso", &ops),
        Ok("role-permission")
    );
    // ...but inherited from cluster_viewer it does not (the sso page excludes cluster_viewer).
    let vp = who("viewer_plus", "v", None);
    assert_eq!(
        status(&policy, Method::GET, "/v1/cluster/sso", &vp),
        Err(403)
    );
    assert_eq!(
        status(&policy, Method::GET, "/v1/cluster", &vp),
        Ok("role-permission")
    );
    let auditor = who("auditor", "a", None);
    assert_eq!(
        status(&policy, Method::GET, "/v1/logs", &auditor),
        Ok("role-permission")
    );
    assert_eq!(status(&policy, Method::GET, "/v1/bdbs", &auditor), Err(403));
    // A role the policy does not know is denied everything.
    assert_eq!(
        status(&policy, Method::GET, "/v1/bdbs", &who("ghost", "g", None)),
        Err(403)
    );
}

#[test]
fn custom_role_errors_name_the_key() {
    let custom = roles(
        r#"
        [[roles]]
        name = "ops"
        extends = "db_viewer"
        add = ["update_bdb", "update_bdbs"]
        [[roles]]
        name = "admin"
        permissions = []
        [[roles]]
        name = "ops"
        permissions = ["view_bdb_info"]
        [[roles]]
        name = "x"
        extends = "superuser"
        [[roles]]
        name = "y"
        permissions = ["view_bdb_info"]
        extends = "db_viewer"
        [[roles]]
        name = "z"
        extends = "db_viewer"
        remove = ["nope"]
        "#,
    );
    let errors = Policy::compile(&PolicyConfig::default(), &custom).unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "roles[0].add[1]",
            "roles[1].name",
            "roles[2].name",
            "roles[3].extends",
            "roles[4]",
            "roles[5].remove[0]"
        ],
        "{errors:?}"
    );
    assert!(errors[0].problem.contains("update_bdbs"));
}

#[test]
fn dry_run_turns_denials_into_flagged_permits() {
    let viewer = who("db_viewer", "v", Some(9));
    let cfg = PolicyConfig {
        mode: Mode::DryRun,
        ..PolicyConfig::default()
    };
    let policy = Policy::compile(&cfg, &[]).unwrap();
    let m = policy.resolve(&Method::DELETE, "/v1/bdbs/1", None).unwrap();
    let permit = policy.authorize(&m, &viewer).unwrap();
    assert_eq!(permit.rule, "dry-run");
    assert_eq!(permit.class, EndpointClass::Destructive);
    assert!(
        matches!(permit.dry_run_denied, Some(Reject::Forbidden { ref permission, .. }) if permission == "delete_bdb")
    );
    // Allowed requests carry no flag; unknown routes stay 404.
    let m = policy.resolve(&Method::GET, "/v1/bdbs", None).unwrap();
    assert_eq!(policy.authorize(&m, &viewer).unwrap().dry_run_denied, None);
    assert!(policy.resolve(&Method::GET, "/v1/nope", None).is_err());

    // Per route: only the listed route is dry-run; an unknown key is an error.
    let mut cfg = PolicyConfig::default();
    cfg.routes
        .insert("DELETE /v1/bdbs/{uid}".into(), Mode::DryRun);
    let policy = Policy::compile(&cfg, &[]).unwrap();
    let m = policy.resolve(&Method::DELETE, "/v1/bdbs/1", None).unwrap();
    assert!(policy
        .authorize(&m, &viewer)
        .unwrap()
        .dry_run_denied
        .is_some());
    let m = policy.resolve(&Method::PUT, "/v1/bdbs/1", None).unwrap();
    assert!(matches!(
        policy.authorize(&m, &viewer),
        Err(Reject::Forbidden { .. })
    ));
    cfg.routes
        .insert("DELETE /v1/bdbz/{uid}".into(), Mode::DryRun);
    let errors = Policy::compile(&cfg, &[]).unwrap_err();
    assert_eq!(errors[0].key, "policy.routes.\"DELETE /v1/bdbz/{uid}\"");
}
