//! `prefer_master = true`: every call that is not node-local goes to the
//! node the health checks report as master (`GET /v1/nodes/status`, its
//! `hostname` matched to a node by URL host or `[upstream.aliases]`), and
//! follows the master when it moves; without the service account it is a
//! config error.

mod common;
mod gw;

use std::time::Duration;

use common::*;
use gw::*;

fn master_world_setup() -> Setup {
    let svc = format!("username = \"{}\"\npassword = \"{}\"\n", ADMIN.0, ADMIN.1);
    Setup {
        nodes: 3,
        extra: "[rate_limit]\nenabled = false\n\
                [upstream.health]\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
                credentials_file = \"health.toml\"\n\
                [upstream.aliases]\n\"sim-node-1:9443\" = \"{node0}\"\n\
                \"sim-node-2:9443\" = \"{node1}\"\n\"sim-node-3:9443\" = \"{node2}\"\n"
            .into(),
        files: vec![("health.toml".into(), svc)],
        ..Setup::default()
    }
}

fn bdbs_on(w: &World, i: usize) -> usize {
    w.node(i)
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/bdbs")
        .count()
}

/// Waits until a GET lands on node `m`, then checks the next ten do too.
async fn reads_go_to(w: &World, c: &TestClient, m: usize) {
    eventually(
        "requests reach the master",
        Duration::from_secs(10),
        || async {
            let before = bdbs_on(w, m);
            assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
            (bdbs_on(w, m) > before).then_some(())
        },
    )
    .await;
    let before: Vec<usize> = (0..3).map(|i| bdbs_on(w, i)).collect();
    for _ in 0..10 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    }
    for (i, was) in before.into_iter().enumerate() {
        let got = bdbs_on(w, i) - was;
        assert_eq!(got, if i == m { 10 } else { 0 }, "node {i}");
    }
}

#[tokio::test]
async fn calls_follow_the_master() {
    let mut setup = master_world_setup();
    // the harness appends `extra` inside its [upstream] table
    setup.extra = format!("prefer_master = true\n{}", setup.extra);
    let w = World::with(setup).await;
    w.cluster.set_master(1);
    let c = w.client(false);
    reads_go_to(&w, &c, 1).await;
    // the master moves
    w.cluster.set_master(2);
    reads_go_to(&w, &c, 2).await;
}

#[tokio::test]
async fn prefer_master_needs_the_health_account() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regate.toml");
    std::fs::write(
        &path,
        "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[upstream]\nnodes = [\"http://127.0.0.1:1\"]\n\
         prefer_master = true\n",
    )
    .unwrap();
    let errs = match regate::config::load(&path) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert!(
        errs.iter().any(|e| e.key == "upstream.prefer_master"),
        "{errs:?}"
    );
}
