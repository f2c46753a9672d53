//! Steady GETs and POSTs over three nodes with `prefer_master`: the master
//! (node 0) is killed, then the master moves to node 1 and node 2 turns
//! follower (it redirects to node 1): no GET fails, no POST is applied
//! twice, no `307` reaches a client, and the health metrics follow.
//! Counted on the simulator.

mod common;
mod gw;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gw::*;
use regate::sim::Mode;

const GET_WORKERS: usize = 4;
const POST_WORKERS: usize = 2;
/// Requests completed between the phases.
const PHASE: usize = 150;

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    stop: AtomicBool,
    /// (status, count) of GETs.
    gets: Mutex<HashMap<u16, usize>>,
    /// POST names by the status the client got.
    posts: Mutex<Vec<(String, u16)>>,
}

async fn until_done(t: &Tally, n: usize) {
    while t.done.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

/// POST names a node received, in arrival order.
fn post_names(w: &World, node: usize) -> Vec<String> {
    w.node(node)
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| String::from_utf8_lossy(&r.body_prefix).into_owned())
        .collect()
}

#[tokio::test]
async fn killing_a_node_and_moving_the_master_under_load() {
    let w = Arc::new(
        World::with(Setup {
            nodes: 3,
            extra: "prefer_master = true\n\
                    [rate_limit]\nenabled = false\n\
                    [upstream.health]\ninterval = \"200ms\"\ntimeout = \"1s\"\n\
                    credentials_file = \"health.toml\"\n\
                    [upstream.aliases]\n\"sim-node-1:9443\" = \"{node0}\"\n\
                    \"sim-node-2:9443\" = \"{node1}\"\n\"sim-node-3:9443\" = \"{node2}\"\n"
                .into(),
            files: vec![(
                "health.toml".into(),
                format!("username = \"{}\"\npassword = \"{}\"\n", ADMIN.0, ADMIN.1),
            )],
            ..Setup::default()
        })
        .await,
    );
    let t = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for k in 0..GET_WORKERS + POST_WORKERS {
        let (w, t) = (w.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let c = w.client(k % 2 == 1);
            let mut i = 0;
            while !t.stop.load(Ordering::SeqCst) {
                if k < GET_WORKERS {
                    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
                    *t.gets.lock().unwrap().entry(r.status).or_default() += 1;
                } else {
                    let body = format!("{{\"name\":\"load-{k}-{i}\"}}");
                    let r = c
                        .call(
                            "POST",
                            &w.url("/v1/bdbs"),
                            Some(ADMIN),
                            &[("content-type", "application/json")],
                            body.as_bytes(),
                        )
                        .await;
                    t.posts.lock().unwrap().push((body, r.status));
                }
                i += 1;
                t.done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    until_done(&t, PHASE).await;
    // the master (node 0) dies
    w.node(0).set_mode(Mode::Down);
    until_done(&t, 2 * PHASE).await;
    // the master moves to node 1; node 2 is a follower now. The sim runs
    // on this thread: what node 2 recorded so far was served by it.
    w.cluster.set_master(1);
    w.node(2).set_mode(Mode::Redirect(w.node(1).url()));
    let acted_on_2 = post_names(&w, 2);
    until_done(&t, 3 * PHASE).await;
    t.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    let gets = t.gets.lock().unwrap().clone();
    assert_eq!(
        gets.keys().copied().collect::<Vec<_>>(),
        [200],
        "GETs: {gets:?}"
    );
    let posts = t.posts.lock().unwrap().clone();
    assert!(
        posts.iter().all(|(_, s)| *s != 307),
        "a 307 reached a client"
    );
    // every POST was applied at most once; every 200 exactly once
    let mut applied: HashMap<String, usize> = HashMap::new();
    for name in post_names(&w, 0)
        .into_iter()
        .chain(post_names(&w, 1))
        .chain(acted_on_2)
    {
        *applied.entry(name).or_default() += 1;
    }
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    for (body, status) in &posts {
        if *status == 200 {
            assert_eq!(applied.get(body), Some(&1), "{body}");
        } else {
            // a write cut by the kill may fail, never be repeated
            assert_eq!(*status, 502, "{body}");
        }
    }
    let ok = posts.iter().filter(|(_, s)| *s == 200).count();
    eprintln!(
        "load: GETs {gets:?}; POSTs {} ({ok} ok, {} applied once)",
        posts.len(),
        applied.len()
    );
    assert!(
        ok * 10 >= posts.len() * 9,
        "{ok} of {} POSTs succeeded",
        posts.len()
    );
    // health follows: node 0 is down, the others up, the gateway ready
    let dead = w.node(0).url();
    eventually(
        "node 2 down in the metrics",
        Duration::from_secs(5),
        || async {
            let m = metrics_text(w.gateway.metrics_addr).await;
            (metric_sum(&m, "regate_node_up", &[("node", &dead)]) == 0.0
                && metric_sum(&m, "regate_node_up", &[]) == 2.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        admin_get(w.gateway.metrics_addr.unwrap(), "/readyz")
            .await
            .0,
        200
    );
    // the kill was exercised: requests were retried away from the dead master
    let m = metrics_text(w.gateway.metrics_addr).await;
    assert!(
        metric_sum(
            &m,
            "regate_upstream_retries_total",
            &[("outcome", "retried")]
        ) >= 1.0
    );
    // and every call now ends at the new master (directly, or followed
    // from the follower)
    let on_1 = || {
        w.node(1)
            .requests()
            .iter()
            .filter(|r| r.target == "/v1/bdbs")
            .count()
    };
    let c = w.client(false);
    let before = on_1();
    for _ in 0..10 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    }
    assert_eq!(on_1() - before, 10, "every call went to the new master");
}
