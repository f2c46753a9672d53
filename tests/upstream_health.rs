//! Active health checks through a running gateway, without any client
//! traffic: a node that stays dead stays down in `regate_node_up` and
//! `/readyz`, every check and change of state is counted, a node outside
//! an active cluster (503) is taken out, a node comes back only after
//! passing `rise` checks, and authenticated probes use the service account.

mod common;
mod gw;

use std::time::Duration;

use common::*;
use gw::*;
use regate::sim::Mode;

/// Checks every 100 ms, 2 to fall, 2 to rise.
fn fast_checks(nodes: usize, extra: &str) -> Setup {
    Setup {
        nodes,
        extra: format!(
            "[upstream.health]\ninterval = \"100ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n{extra}"
        ),
        ..Setup::default()
    }
}

async fn metric(w: &World, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(&metrics_text(w.gateway.metrics_addr).await, name, labels)
}

/// Waits (polling the admin listener) until `name{labels}` reaches `at_least`.
async fn wait_metric(w: &World, name: &str, labels: &[(&str, &str)], at_least: f64) {
    eventually(name, Duration::from_secs(20), || async {
        (metric(w, name, labels).await >= at_least).then_some(())
    })
    .await;
}

async fn readyz(w: &World) -> u16 {
    admin_get(w.gateway.metrics_addr.unwrap(), "/readyz")
        .await
        .0
}

#[tokio::test]
async fn a_dead_node_stays_down_without_traffic() {
    let w = World::with(fast_checks(2, "")).await;
    let dead = w.node(1).url();
    let alive = w.node(0).url();
    wait_metric(
        &w,
        "regate_health_checks_total",
        &[("node", &dead), ("result", "pass")],
        1.0,
    )
    .await;
    w.node(1).set_mode(Mode::Down);
    wait_metric(
        &w,
        "regate_node_state_changes_total",
        &[("node", &dead), ("to", "down")],
        1.0,
    )
    .await;
    // many checks later it is still down, and was never counted up again
    let fails = metric(
        &w,
        "regate_health_checks_total",
        &[("node", &dead), ("result", "fail")],
    )
    .await;
    wait_metric(
        &w,
        "regate_health_checks_total",
        &[("node", &dead), ("result", "fail")],
        fails + 5.0,
    )
    .await;
    // read live; the failed check is counted just before the state changes
    eventually("node_up 0", Duration::from_secs(5), || async {
        (metric(&w, "regate_node_up", &[("node", &dead)]).await == 0.0).then_some(())
    })
    .await;
    assert_eq!(metric(&w, "regate_node_up", &[("node", &alive)]).await, 1.0);
    assert_eq!(
        metric(
            &w,
            "regate_node_state_changes_total",
            &[("node", &dead), ("to", "up")]
        )
        .await,
        0.0
    );
    assert_eq!(readyz(&w).await, 200, "one node is up");
}

#[tokio::test]
async fn readyz_is_503_while_no_node_is_up_and_until_one_passes() {
    let w = World::with(fast_checks(1, "")).await;
    let url = w.node(0).url();
    assert_eq!(readyz(&w).await, 200);
    w.node(0).set_mode(Mode::Down);
    wait_metric(
        &w,
        "regate_node_state_changes_total",
        &[("to", "down")],
        1.0,
    )
    .await;
    assert_eq!(readyz(&w).await, 503);
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error_code"], "no_healthy_node");
    // still down after more failed checks
    let fails = metric(&w, "regate_health_checks_total", &[("result", "fail")]).await;
    wait_metric(
        &w,
        "regate_health_checks_total",
        &[("result", "fail")],
        fails + 3.0,
    )
    .await;
    assert_eq!(readyz(&w).await, 503);
    // back: ready once `rise` checks passed
    let passes = metric(
        &w,
        "regate_health_checks_total",
        &[("node", &url), ("result", "pass")],
    )
    .await;
    w.node(0).set_mode(Mode::Normal);
    wait_metric(&w, "regate_node_state_changes_total", &[("to", "up")], 1.0).await;
    let now = metric(
        &w,
        "regate_health_checks_total",
        &[("node", &url), ("result", "pass")],
    )
    .await;
    assert!(
        now >= passes + 2.0,
        "up after two passes ({passes} -> {now})"
    );
    assert_eq!(readyz(&w).await, 200);
    assert_eq!(
        w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await.status,
        200
    );
}

#[tokio::test]
async fn a_node_outside_an_active_cluster_is_taken_out_by_its_checks() {
    let w = World::with(fast_checks(2, "")).await;
    let url = w.node(1).url();
    w.node(1).set_mode(Mode::NotInCluster);
    wait_metric(
        &w,
        "regate_node_state_changes_total",
        &[("node", &url), ("to", "down")],
        1.0,
    )
    .await;
    w.node(1).clear_requests();
    let c = w.client(false);
    for _ in 0..6 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    }
    assert!(
        w.node(1)
            .requests()
            .iter()
            .all(|r| r.target == "/v1/bootstrap"),
        "only probes reach the node that is out"
    );
}

#[tokio::test]
async fn probes_authenticate_with_the_service_account() {
    let svc = format!("username = \"{}\"\npassword = \"{}\"\n", ADMIN.0, ADMIN.1);
    let mut setup = fast_checks(1, "credentials_file = \"health.toml\"\n");
    setup.files.push(("health.toml".into(), svc));
    let w = World::with(setup).await;
    wait_metric(&w, "regate_health_checks_total", &[("result", "pass")], 2.0).await;
    let probe = w
        .node(0)
        .requests()
        .into_iter()
        .find(|r| r.target == "/v1/cluster")
        .expect("an authenticated probe");
    let auth = probe
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(auth, Some(basic(ADMIN.0, ADMIN.1)));
    // a refused account fails the checks
    w.cluster.set_password(ADMIN.0, "changed");
    wait_metric(
        &w,
        "regate_node_state_changes_total",
        &[("to", "down")],
        1.0,
    )
    .await;
}

#[test]
fn bad_health_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        ("interval = \"5\"", "upstream.health.interval"),
        ("rise = 0", "upstream.health.rise"),
        (
            "credentials_file = \"missing.toml\"",
            "upstream.health.credentials_file",
        ),
    ] {
        let path = dir.path().join("regate.toml");
        std::fs::write(
            &path,
            format!(
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[upstream]\nnodes = [\"http://127.0.0.1:1\"]\n\
                 [upstream.health]\n{extra}\n"
            ),
        )
        .unwrap();
        let errs = match regate::config::load(&path) {
            Ok(_) => panic!("{extra} accepted"),
            Err(e) => e,
        };
        assert!(errs.iter().any(|e| e.key == key), "{extra}: {errs:?}");
    }
}

#[tokio::test]
async fn a_reload_does_not_bring_a_dead_node_back() {
    let w = World::with(fast_checks(1, "")).await;
    w.node(0).set_mode(Mode::Down);
    wait_metric(
        &w,
        "regate_node_state_changes_total",
        &[("to", "down")],
        1.0,
    )
    .await;
    assert_eq!(readyz(&w).await, 503);
    let gw = w.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(readyz(&w).await, 503, "still down after the reload");
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.json()["error_code"], "no_healthy_node");
}
