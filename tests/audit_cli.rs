//! The auditor's tools against a real gateway: `regate audit keygen`
//! writes a key pair, the gateway seals its trail with it (checkpoints in
//! the file and in `checkpoint_sink`), and `regate audit verify --key
//! --checkpoints` exits 0 on the untouched trail, 1 on a re-chained one,
//! 2 on unreadable input. A failed login leaves the attempted user name.
//! A second regate on the same trail refuses to start, naming the file.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn regate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regate"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn verify(key: &Path, cps: &Path, trail: &Path) -> Output {
    regate(&[
        "audit",
        "verify",
        "--key",
        key.to_str().unwrap(),
        "--checkpoints",
        cps.to_str().unwrap(),
        trail.to_str().unwrap(),
    ])
}

#[tokio::test]
async fn keygen_seal_and_verify_through_the_cli() {
    let keys = tempfile::tempdir().unwrap();
    let out = regate(&["audit", "keygen", "--out", keys.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let private = keys.path().join("audit-signing.key");
    let public = keys.path().join("audit-signing.pub.pem");
    assert!(text(&out).contains("key id "), "{}", text(&out));

    let w = World::with(Setup {
        extra: format!(
            "[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\nsigning_key = \"{}\"\ncheckpoint_records = 2\ncheckpoint_sink = \"file:checkpoints.log\"\n",
            private.display()
        ),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    let denied = c
        .get(&w.url("/v1/bdbs"), ("mallory\u{1b}[2J", "guess"))
        .await;
    assert_eq!(denied.status, 401);
    let World { dir, gateway, .. } = w;
    gateway.shutdown().await;

    let trail = dir.path().join("audit.jsonl");
    let cps = dir.path().join("checkpoints.log");
    let lines: Vec<String> = std::fs::read_to_string(&trail)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    // the failed login names the user it tried, escaped
    let failed: serde_json::Value = lines
        .iter()
        .filter(|l| l.starts_with("{\"seq\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|v: &serde_json::Value| v["status"] == 401)
        .unwrap();
    assert_eq!(failed["attempted_user"], "mallory\u{1b}[2J");
    assert!(lines.iter().any(|l| l.contains("mallory\\u001b[2J")));
    assert!(failed.get("user").is_none());
    assert!(!lines.iter().any(|l| l.contains("guess")));

    let ok = verify(&public, &cps, &trail);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("checkpoint(s) signed by key"),
        "{}",
        text(&ok)
    );
    let plain = regate(&["audit", "verify", trail.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(text(&plain).contains("cannot detect"), "{}", text(&plain));

    // status 200 -> 201 on the first record, chain recomputed
    let mut edited = lines.clone();
    edited[0] = edited[0].replace("\"status\":200", "\"status\":201");
    let mut prev = [0u8; 32];
    for l in edited.iter_mut().filter(|l| l.starts_with("{\"seq\"")) {
        let rest = l[l.find(",\"time\"").unwrap()..].to_string();
        let seq: serde_json::Value = serde_json::from_str(l).unwrap();
        *l = format!(
            "{{\"seq\":{},\"prev\":\"{}\"{rest}",
            seq["seq"],
            regate::audit::json::hex(&prev)
        );
        use sha2::Digest;
        prev = sha2::Sha256::digest(l.as_bytes()).into();
    }
    std::fs::write(&trail, edited.join("\n") + "\n").unwrap();
    let bad = verify(&public, &cps, &trail);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("TAMPERED"), "{}", text(&bad));
    assert!(text(&bad).contains("seq 1"), "{}", text(&bad));

    let missing = verify(&public, &cps, &dir.path().join("nope.jsonl"));
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let wrong_key = verify(&private, &cps, &trail);
    assert_eq!(wrong_key.status.code(), Some(2), "{}", text(&wrong_key));
    let usage = regate(&["audit", "verify"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn a_second_gateway_on_the_same_trail_refuses_to_start() {
    let w = World::start().await;
    let out = regate(&["run", "--config", w.config_path.to_str().unwrap()]);
    assert!(!out.status.success());
    let t = text(&out);
    let trail = w.dir.path().join("audit.jsonl");
    assert!(t.contains(&trail.display().to_string()), "{t}");
    assert!(t.contains("locked by another process"), "{t}");
    assert!(t.contains(&format!("pid {}", std::process::id())), "{t}");
}
