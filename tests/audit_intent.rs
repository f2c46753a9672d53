//! `[audit] required = true`: a request reaches the cluster only after its
//! intent record was handed to the kernel. A gateway killed with SIGKILL
//! while requests are at the node leaves an intent record for every
//! request the node received (counted on the simulator, matched by
//! `X-Request-Id`), and `audit verify` lists them as intents without
//! completion. Served normally, every intent is followed by its completion.

mod common;
mod proc;

use std::process::Command;
use std::time::Duration;

use common::*;
use proc::{Proc, Site, BIN};
use regate::sim::Mode;

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("{\"seq\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn sigkill_under_load_leaves_a_record_of_every_forwarded_request() {
    // health probes off: the node counts client requests only
    let site = Site::new().await;
    let cfg = site
        .config("", "[upstream.health]\nenabled = false\n")
        .replace("fsync = \"always\"\n", "required = true\n");
    let config = site.write("regate.toml", &cfg);
    let mut child = Proc::spawn(&["run", "--config", config.to_str().unwrap()], Some("info"));
    let addr = child.wait_field("regate listening", "addr");
    let (dir, pki, cluster) = (&site.dir, &site.pki, &site.cluster);
    let url = format!(
        "https://localhost:{}/v1/bdbs",
        addr.rsplit(':').next().unwrap()
    );

    // 8 clients; the node holds its answers so they are in flight at the kill.
    cluster.nodes()[0].set_mode(Mode::SlowHead(Duration::from_secs(30)));
    let client = std::sync::Arc::new(TestClient::new(&pki.ca_pem, false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, u) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { c.get(&u, ADMIN).await.status }));
    }
    let t = std::time::Instant::now();
    while cluster.nodes()[0].request_count() < 8 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.child.kill().unwrap(); // SIGKILL
    let _ = child.child.wait();
    for t in tasks {
        t.abort();
    }

    let trail = dir.path().join("audit.jsonl");
    let recs = records(&trail);
    let received: Vec<String> = cluster.nodes()[0]
        .requests()
        .iter()
        .map(|r| {
            let v = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
                .expect("X-Request-Id forwarded");
            String::from_utf8(v.1.clone()).unwrap()
        })
        .collect();
    assert_eq!(received.len(), 8);
    for id in &received {
        let intent = recs
            .iter()
            .find(|r| r["id"] == id.as_str() && r["phase"] == "intent")
            .unwrap_or_else(|| panic!("request {id} reached the node without a record"));
        assert_eq!(intent["user"], ADMIN.0);
        assert_eq!(intent["decision"], "allow");
        assert_eq!(intent["upstream"], cluster.urls()[0].as_str());
    }
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&trail)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("INTENT WITHOUT COMPLETION: 8 request(s)"),
        "{text}"
    );
    for id in &received {
        assert!(text.contains(id.as_str()), "{text}");
    }
}

#[tokio::test]
async fn every_intent_is_completed_when_served() {
    let w = World::with(Setup {
        extra: "[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\nrequired = true\n".into(),
        ..Setup::default()
    })
    .await;
    let c = std::sync::Arc::new(w.client(true));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, u) = (c.clone(), w.url("/v1/bdbs"));
        tasks.push(tokio::spawn(async move { c.get(&u, ADMIN).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // a denial is never forwarded, so it has no intent
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), ("admin@redis.local", "wrong"))
            .await
            .status,
        401
    );
    let World { dir, gateway, .. } = w;
    gateway.shutdown().await;
    let trail = dir.path().join("audit.jsonl");
    let recs = records(&trail);
    let intents: Vec<&serde_json::Value> = recs.iter().filter(|r| r["phase"] == "intent").collect();
    assert_eq!(intents.len(), 6);
    for i in &intents {
        let done = recs
            .iter()
            .position(|r| r["id"] == i["id"] && r.get("phase").is_none())
            .unwrap();
        let at = recs.iter().position(|r| r == *i).unwrap();
        assert!(done > at, "the completion follows its intent");
        assert_eq!(recs[done]["status"], 200);
        assert!(i.get("status").is_none());
    }
    let report = regate::audit::verify(&[trail]).unwrap();
    assert!(report.open_intents.is_empty(), "{report}");
}

#[tokio::test]
async fn intents_never_wait_for_a_queue_slot() {
    // Each request holds a slot for its outcome from the start; an intent
    // that needed one more would wait forever on a full queue.
    let w = World::with(Setup {
        extra: "[audit]\npath = \"audit.jsonl\"\nrequired = true\nqueue_capacity = 1\n".into(),
        ..Setup::default()
    })
    .await;
    let c = std::sync::Arc::new(w.client(true));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, u) = (c.clone(), w.url("/v1/bdbs"));
        tasks.push(tokio::spawn(async move { c.get(&u, ADMIN).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let World { dir, gateway, .. } = w;
    gateway.shutdown().await;
    let recs = records(&dir.path().join("audit.jsonl"));
    assert_eq!(recs.len(), 8);
    assert_eq!(recs.iter().filter(|r| r["phase"] == "intent").count(), 4);
}
