//! The operator's command line against a real config: `regate explain`
//! prints the decision, route template, permission and rule the gateway
//! applies; `regate hash-password` prints an argon2id hash that a users file
//! accepts and the running gateway verifies.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn regate(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regate"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn explain_prints_the_gateways_decision() {
    let w = World::start().await;
    let cfg = w.config_path.to_str().unwrap();
    // allowed: db_viewer reads a database
    let out = regate(
        &[
            "explain",
            "--config",
            cfg,
            "--user",
            VIEWER.0,
            "GET",
            "/v1/bdbs/1",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("decision:   PERMIT (rule: role-permission)"),
        "{s}"
    );
    assert!(s.contains("route:      GET /v1/bdbs/{uid}"), "{s}");
    assert!(s.contains("permission: view_bdb_info"), "{s}");
    assert!(s.contains("role 'db_viewer'"), "{s}");
    assert!(
        s.contains("rule:       role 'db_viewer' holds 'view_bdb_info'"),
        "{s}"
    );
    // denied: db_viewer deletes a database
    let out = regate(
        &[
            "explain",
            "--config",
            cfg,
            "--user",
            VIEWER.0,
            "DELETE",
            "/v1/bdbs/1",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("decision:   DENY 403 missing_permission:delete_bdb"),
        "{s}"
    );
    assert!(s.contains("route:      DELETE /v1/bdbs/{uid}"), "{s}");
    assert!(s.contains("permission: delete_bdb"), "{s}");
    assert!(s.contains("does not hold 'delete_bdb'"), "{s}");
    // and the gateway agrees with both
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs/1"), VIEWER).await.status, 200);
    let r = c
        .call("DELETE", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error_code"], "missing_permission:delete_bdb");
    // self-service through the user's uid from the users file
    let out = regate(
        &[
            "explain",
            "--config",
            cfg,
            "--user",
            VIEWER.0,
            "GET",
            "/v1/users/2",
        ],
        None,
    );
    let s = text(&out.stdout);
    assert!(s.contains("PERMIT (rule: self-service)"), "{s}");
    // a path refused before routing, and an unknown user
    let out = regate(
        &[
            "explain",
            "--config",
            cfg,
            "--user",
            VIEWER.0,
            "GET",
            "/v1/bdbs/../users",
        ],
        None,
    );
    assert!(
        text(&out.stdout).contains("DENY 400 invalid_path"),
        "{}",
        text(&out.stdout)
    );
    let out = regate(
        &[
            "explain", "--config", cfg, "--user", "nobody", "GET", "/v1/bdbs",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
}

#[tokio::test]
async fn hash_password_output_is_accepted_by_the_users_file_and_the_gateway() {
    let out = regate(
        &["hash-password"],
        Some(format!("{}\n", VIEWER.1).as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(VIEWER.1));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    // empty input is refused
    let out = regate(&["hash-password"], Some(b"\n"));
    assert!(!out.status.success());

    let users = format!(
        "[[users]]\nname = \"{}\"\npassword_hash = \"{hash}\"\nrole = \"db_viewer\"\nuid = 2\n",
        VIEWER.0
    );
    let w = World::with(Setup {
        extra: "[auth]\nusers = \"argon.toml\"\n".into(),
        files: vec![("argon.toml".into(), users)],
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), (VIEWER.0, "viewer124"))
            .await
            .status,
        401
    );
    assert_eq!(w.upstream_requests().len(), 1);
    let out = regate(&["check-config", w.config_path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn completions_man_page_and_version_come_from_the_command_line() {
    let out = regate(&["completions", "bash"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("complete -F _regate"), "{s}");
    assert!(
        s.contains("check-config") && s.contains("healthcheck"),
        "{s}"
    );
    let out = regate(&["completions", "zsh"], None);
    assert!(text(&out.stdout).contains("#compdef regate"));
    let out = regate(&["man"], None);
    let s = text(&out.stdout);
    assert!(s.starts_with(".ie") || s.contains(".TH regate 1"), "{s}");
    assert!(s.contains("check\\-config"), "{s}");
    let out = regate(&["--version"], None);
    let s = text(&out.stdout);
    // "regate 0.1.0 (<revision>)": the git revision, or "unknown" outside git
    let rev = s
        .trim()
        .strip_prefix(&format!("regate {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(!rev.is_empty(), "{s}");
    if let Ok(git) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
    {
        if git.status.success() && std::env::var("REGATE_REVISION").is_err() {
            assert_eq!(rev, text(&git.stdout).trim());
        }
    }
    // every subcommand's --help has a description
    for sub in [
        "run",
        "check-config",
        "explain",
        "healthcheck",
        "audit",
        "hash-password",
    ] {
        let out = regate(&[sub, "--help"], None);
        let s = text(&out.stdout);
        assert!(
            out.status.success() && s.lines().next().is_some_and(|l| !l.starts_with("Usage")),
            "{sub}: {s}"
        );
    }
}
