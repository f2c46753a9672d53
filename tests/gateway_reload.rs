//! Reloads while serving: a broken users file is rejected (old table kept,
//! counted on /metrics); a config reload swaps policy and users for new
//! requests; a broken config reload is rejected whole.

mod common;
mod gw;

use std::time::Duration;

use common::*;
use gw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_users_file_is_rejected_and_counted() {
    let w = World::start().await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    std::fs::write(w.dir.path().join("users.toml"), "[[users]]\nname = 42\n").unwrap();
    // the watcher polls every 2 s; the metrics read the count live
    eventually(
        "the rejected reload on /metrics",
        Duration::from_secs(10),
        || async {
            let m = metrics_text(w.gateway.metrics_addr).await;
            let n = metric_sum(
                &m,
                "regate_identity_refresh_total",
                &[("kind", "users_file"), ("result", "rejected")],
            );
            (n >= 1.0).then_some(())
        },
    )
    .await;
    // the old table is still in force
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), ("viewer@redis.local", "nope"))
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_applies_to_new_requests_and_rejects_broken_files() {
    let w = World::start().await;
    let c = w.client(true);
    assert_eq!(delete_as_viewer(&w, &c).await, 403);

    // policy switched to dry_run: the same request is now forwarded
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    std::fs::write(
        &w.config_path,
        format!("{text}\n[policy]\nmode = \"dry_run\"\n"),
    )
    .unwrap();
    let gw = w.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delete_as_viewer(&w, &c).await, 200);
    assert_eq!(
        w.upstream_requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count(),
        1
    );

    // a broken file is rejected whole; the running config stays
    std::fs::write(
        &w.config_path,
        format!("{text}\n[policy]\nmode = \"maybe\"\n"),
    )
    .unwrap();
    let gw = w.gateway.gateway.clone();
    let err = tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("policy.mode"), "{err}");
    assert_eq!(
        delete_as_viewer(&w, &c).await,
        200,
        "the dry_run config stays in force"
    );
    let m = metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        metric_sum(&m, "regate_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert!(
        metric_sum(&m, "regate_config_reloads_total", &[]) >= 2.0,
        "{m}"
    );
}

async fn delete_as_viewer(w: &World, c: &TestClient) -> u16 {
    c.call("DELETE", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"")
        .await
        .status
}
