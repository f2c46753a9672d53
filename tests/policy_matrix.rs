//! Every route of the built-in profile x every built-in role, checked
//! against an independent reading of the source data in `tests/data/`
//! (copies with attribution, see `tests/data/SOURCES.md`): a role passes
//! exactly where it holds the route's permission under the stricter
//! reading (both permissions.md tables agree, and the request page's own
//! role table does not exclude it); everything else is `Forbidden`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::Method;
use regate::context::{IdentitySource, Principal};
use regate::error::Reject;
use regate::policy::{canonicalize, Policy, SelfService, ADMIN_ONLY};
use serde_json::Value;

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// role -> permissions held under the stricter reading.
fn strict_roles() -> BTreeMap<String, BTreeSet<String>> {
    let roles = data("roles.json");
    let a = roles["roles"].as_object().unwrap();
    let b = roles["roles_from_permission_table"].as_object().unwrap();
    a.iter()
        .map(|(role, perms)| {
            let both = strings(perms)
                .intersection(&strings(&b[role]))
                .cloned()
                .collect();
            (role.clone(), both)
        })
        .collect()
}

/// "METHOD /path" -> the request page's role table, when it has one.
fn section_tables() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for e in data("endpoints.json").as_array().unwrap() {
        let roles = strings(&e["permission_roles"]);
        if !roles.is_empty() && !e["permission"].is_null() {
            let key = format!(
                "{} {}",
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            );
            out.entry(key).or_insert(roles);
        }
    }
    out
}

fn principal(role: &str) -> Principal {
    Principal {
        user: "tester".into(),
        uid: None,
        role: Arc::from(role),
        source: IdentitySource::File,
    }
}

/// A concrete path for a template: every parameter becomes `7`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_times_every_builtin_role() {
    let policy = Policy::builtin().unwrap();
    let strict = strict_roles();
    let sections = section_tables();
    assert_eq!(strict.len(), 7);
    let mut checked = 0;
    let mut allowed = 0;
    for route in policy.routes() {
        let key = format!("{} {}", route.method, route.template);
        let path = concrete(route.template);
        let canonical = canonicalize(&path).unwrap();
        let m = policy.resolve(route.method, &canonical, None).unwrap();
        assert_eq!(m.template, route.template, "{key} is shadowed");
        for (role, perms) in &strict {
            let holds = match route.permission {
                ADMIN_ONLY => role == "admin",
                "any_role" => role != "none",
                p => perms.contains(p),
            };
            let in_section = sections.get(&key).is_none_or(|s| s.contains(role));
            let expect = holds && in_section;
            let result = policy.authorize(&m, &principal(role));
            if !expect && route.self_service == Some(SelfService::Password) {
                // Any caller may reach the password routes; the body check
                // (their own username) is then required.
                let p = result.unwrap();
                assert_eq!(p.rule, "self-service");
                assert!(p.requires_self_username());
                checked += 1;
                continue;
            }
            match result {
                Ok(p) => {
                    assert!(expect, "{role} allowed on {key} ({})", route.permission);
                    assert_eq!(p.rule, "role-permission");
                    assert_eq!(&*p.template, route.template);
                    allowed += 1;
                }
                Err(Reject::Forbidden {
                    permission,
                    role: r,
                }) => {
                    assert!(!expect, "{role} denied on {key} ({})", route.permission);
                    assert_eq!(permission, route.permission);
                    assert_eq!(r, role.as_str());
                }
                Err(other) => panic!("{key} {role}: {other:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 233 * 7, "{checked}");
    assert!(allowed > 400 && allowed < checked, "{allowed}");
}

/// The stricter choices about *which permission* a route needs: documented
/// permissions are kept except where listed; undocumented ones are admin-only
/// except where the docs say who may call.
#[test]
fn route_permissions_follow_the_docs() {
    let policy = Policy::builtin().unwrap();
    let by_key: BTreeMap<String, String> = policy
        .routes()
        .map(|r| {
            (
                format!("{} {}", r.method, r.template),
                r.permission.to_owned(),
            )
        })
        .collect();
    let overrides: BTreeMap<&str, &str> = [
        (
            "PUT /v1/bdbs/{uid}/actions/rebalance",
            "update_bdb_with_action",
        ),
        ("POST /v2/bdbs", "create_bdb"),
        ("GET /v1/users/permissions", "any_role"),
        ("GET /v1/users/permissions/{role}", "any_role"),
        ("GET /v1/users/role", "any_role"),
    ]
    .into_iter()
    .collect();
    let mut docs = BTreeSet::new();
    for e in data("endpoints.json").as_array().unwrap() {
        let key = format!(
            "{} {}",
            e["method"].as_str().unwrap(),
            e["path"].as_str().unwrap()
        );
        let expect = match (overrides.get(key.as_str()), e["permission"].as_str()) {
            (Some(o), _) => *o,
            (None, Some(p)) => p,
            (None, None) => ADMIN_ONLY,
        };
        assert_eq!(by_key.get(&key).map(String::as_str), Some(expect), "{key}");
        docs.insert(key);
    }
    let live = data("live_non_inventory_routes.json");
    let mut live_new = 0;
    for r in policy.routes().filter(|r| r.live_only) {
        assert_eq!(r.permission, ADMIN_ONLY, "{} {}", r.method, r.template);
        live_new += 1;
    }
    assert_eq!(live_new, 12);
    assert_eq!(live["routes"].as_object().unwrap().len(), 22);
    assert_eq!(by_key.len(), docs.len() + live_new);
}

#[test]
fn classes_are_assigned() {
    let policy = Policy::builtin().unwrap();
    for r in policy.routes() {
        let class = r.class.as_str();
        if *r.method == Method::GET {
            assert_eq!(class, "read", "{}", r.template);
        } else if *r.method == Method::DELETE
            || r.template.contains("flush")
            || r.template.contains("purge")
        {
            assert_eq!(class, "destructive", "{} {}", r.method, r.template);
        } else {
            assert_ne!(class, "read", "{} {}", r.method, r.template);
        }
    }
}

#[test]
fn generated_profile_is_fresh() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tools/gen_policy.py"))
        .arg("--check")
        .output()
        .expect("python3 is needed to check the generated profile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
