//! The `[auth]` section: defaults, unknown keys, and validation errors that
//! name their key without echoing secrets.

mod auth_common;

use auth_common::{roles, users_toml};
use regate::auth::config::SourceSettings;
use regate::auth::{AuthConfig, ForwardMode, SourceKind};

fn keys(text: &str, dir: &std::path::Path) -> Vec<String> {
    let cfg: AuthConfig = toml::from_str(text).unwrap();
    match cfg.validate(dir, roles()) {
        Ok(_) => vec![],
        Err(errors) => errors.into_iter().map(|e| e.key).collect(),
    }
}

#[test]
fn defaults() {
    let cfg: AuthConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, AuthConfig::default());
    assert_eq!(cfg.source, SourceKind::File);
    assert_eq!(cfg.users, std::path::PathBuf::from("users.toml"));
    assert_eq!(cfg.cache_ttl, "5m");
    assert_eq!(cfg.cache_capacity, 10_000);
    assert_eq!(
        cfg.failed_per_ip.rate, None,
        "filled in per key at validation"
    );
    assert_eq!(cfg.forward, ForwardMode::Passthrough);
    assert_eq!(cfg.cluster.sync_interval, "30s");
    assert_eq!(cfg.cluster.authorize_timeout, "5s");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        users_toml(&[("a", "p", "admin", None)]),
    )
    .unwrap();
    let s = cfg.validate(dir.path(), roles()).unwrap();
    assert_eq!(s.cache_ttl, std::time::Duration::from_secs(300));
    assert!(s.max_concurrent_verifications >= 1);
    assert!(s.forward.is_none());
    // Tight per (IP, user), looser per user, loosest per IP.
    let q = |rate: u32, per_secs: u64, burst: u32| {
        governor::Quota::with_period(std::time::Duration::from_secs(per_secs) / rate)
            .unwrap()
            .allow_burst(std::num::NonZeroU32::new(burst).unwrap())
    };
    assert_eq!(s.failed.per_ip_user, q(5, 60, 5));
    assert_eq!(s.failed.per_user, q(10, 60, 20));
    assert_eq!(s.failed.per_ip, q(30, 60, 50));
    match s.source {
        SourceSettings::File { path, table } => {
            assert_eq!(
                path,
                dir.path().join("users.toml"),
                "relative to the config dir"
            );
            assert_eq!(table.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_budget_with_one_field_takes_the_other_from_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        users_toml(&[("a", "p", "admin", None)]),
    )
    .unwrap();
    let cfg: AuthConfig =
        toml::from_str("failed_per_ip = { burst = 7 }\nfailed_per_ip_user = { rate = \"1/s\" }")
            .unwrap();
    let s = cfg.validate(dir.path(), roles()).unwrap();
    assert_eq!(s.failed.per_ip.burst_size().get(), 7);
    assert_eq!(
        s.failed.per_ip.replenish_interval(),
        std::time::Duration::from_secs(2),
        "30/min"
    );
    assert_eq!(s.failed.per_ip_user.burst_size().get(), 5);
    assert_eq!(
        s.failed.per_ip_user.replenish_interval(),
        std::time::Duration::from_secs(1)
    );
}

#[test]
fn unknown_keys_are_errors() {
    assert!(toml::from_str::<AuthConfig>("sourse = \"file\"").is_err());
    assert!(toml::from_str::<AuthConfig>("[cluster]\ncredentials = \"x\"").is_err());
    assert!(toml::from_str::<AuthConfig>("failed_per_ip = { rate = \"1/s\", burts = 1 }").is_err());
    assert!(toml::from_str::<AuthConfig>("source = \"ldap\"").is_err());
    assert!(toml::from_str::<AuthConfig>("forward = \"strip\"").is_err());
}

#[test]
fn every_bad_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let got = keys(
        "users = \"missing.toml\"\ncache_ttl = \"5 parsecs\"\ncache_capacity = 0\n\
         max_concurrent_verifications = 0\n\
         failed_per_ip = { rate = \"often\" }\nfailed_per_user = { burst = 0 }\n\
         forward = \"service\"\n[cluster]\nsync_interval = \"0s\"\n",
        dir.path(),
    );
    for key in [
        "auth.users",
        "auth.cache_ttl",
        "auth.cache_capacity",
        "auth.max_concurrent_verifications",
        "auth.failed_per_ip.rate",
        "auth.failed_per_user.burst",
        "auth.forward",
        "auth.cluster.sync_interval",
    ] {
        assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
    }
}

#[test]
fn cluster_source_needs_a_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        keys("source = \"cluster\"\n", dir.path()),
        ["auth.cluster.credentials_file"]
    );
    std::fs::write(
        dir.path().join("svc.toml"),
        "username = \"u\"\npassword = \"Top$ecret\"\n",
    )
    .unwrap();
    assert!(keys(
        "source = \"cluster\"\n[cluster]\ncredentials_file = \"svc.toml\"\n",
        dir.path()
    )
    .is_empty());
    std::fs::write(
        dir.path().join("bad.toml"),
        "username = \"u\"\npasswd = \"Top$ecret\"\n",
    )
    .unwrap();
    let cfg: AuthConfig =
        toml::from_str("source = \"cluster\"\n[cluster]\ncredentials_file = \"bad.toml\"\n")
            .unwrap();
    let errors = cfg.validate(dir.path(), roles()).err().unwrap();
    assert_eq!(errors[0].key, "auth.cluster.credentials_file");
    assert!(errors.iter().all(|e| !e.problem.contains("Top$ecret")));
}

#[test]
fn users_file_errors_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = users_toml(&[("a", "p", "admin", None), ("b", "p", "admin", None)]);
    text.push_str(
        "[[users]]\nname = \"c\"\npassword_hash = \"{SSHA}c2VjcmV0\"\nrole = \"admin\"\n",
    );
    text.push_str("[[users]]\nname = \"d\"\npassword_hash = \"$2b$04$x\"\nrole = \"wizard\"\n");
    std::fs::write(dir.path().join("users.toml"), text).unwrap();
    let cfg = AuthConfig::default();
    let errors = cfg.validate(dir.path(), roles()).err().unwrap();
    let got: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        got,
        [
            "users[2].password_hash",
            "users[3].role",
            "users[3].password_hash"
        ]
    );
    assert!(errors.iter().all(|e| !e.problem.contains("c2VjcmV0")));
}

#[test]
fn an_old_tight_per_ip_budget_still_loads_but_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        users_toml(&[("a", "p", "admin", None)]),
    )
    .unwrap();
    // What a config written for the two-budget versions often said.
    let old = "failed_per_ip = { rate = \"10/min\", burst = 5 }\n\
               failed_per_user = { rate = \"10/min\", burst = 10 }\n";
    let cfg: AuthConfig = toml::from_str(old).unwrap();
    let s = cfg.validate(dir.path(), roles()).unwrap();
    assert_eq!(
        s.failed.per_ip.burst_size().get(),
        5,
        "the old key keeps working"
    );
    let keys: Vec<String> = s.warnings().into_iter().map(|w| w.key).collect();
    assert_eq!(
        keys,
        ["auth.failed_per_ip", "users[0].password_hash"],
        "(cost 4)"
    );
    let defaults: AuthConfig = toml::from_str("").unwrap();
    let s = defaults.validate(dir.path(), roles()).unwrap();
    assert!(
        s.warnings().iter().all(|w| w.key != "auth.failed_per_ip"),
        "the defaults draw no warning"
    );
}
