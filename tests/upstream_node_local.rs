//! Node-local calls (`/v1/local/*`, `/v2/local/*`, `/v1/debuginfo/node*`,
//! `GET /v1/bootstrap`): the client picks the node with `regate-node:
//! <name>` (names from `[upstream] nodes` tables), only that node answers
//! and the header never reaches it; without the header any healthy node
//! answers; an unknown name is 400 `unknown_node`.

mod common;

use common::*;
use regate::sim::Mode;

async fn named_world() -> World {
    World::with(Setup {
        nodes: 3,
        node_urls: (0..3)
            .map(|i| format!("{{ name = \"n{}\", url = \"{{node{i}}}\" }}", i + 1))
            .collect(),
        ..Setup::default()
    })
    .await
}

async fn bootstrap(w: &World, c: &TestClient, node: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = node.map(|n| ("regate-node", n)).into_iter().collect();
    c.call("GET", &w.url("/v1/bootstrap"), Some(ADMIN), &headers, b"")
        .await
}

fn arrivals(w: &World, target: &str) -> Vec<usize> {
    (0..3)
        .map(|i| {
            w.node(i)
                .requests()
                .iter()
                .filter(|r| r.target == target)
                .count()
        })
        .collect()
}

#[tokio::test]
async fn the_named_node_answers_node_local_calls() {
    let w = named_world().await;
    for h2 in [false, true] {
        let c = w.client(h2);
        for _ in 0..4 {
            let r = bootstrap(&w, &c, Some("n3")).await;
            assert_eq!(r.status, 200, "h2={h2}");
        }
    }
    assert_eq!(arrivals(&w, "/v1/bootstrap"), [0, 0, 8]);
    assert!(w
        .node(2)
        .requests()
        .iter()
        .all(|r| r.header("regate-node").is_none()));
    // without the header, any node
    let c = w.client(false);
    for _ in 0..3 {
        assert_eq!(bootstrap(&w, &c, None).await.status, 200);
    }
    let spread = arrivals(&w, "/v1/bootstrap");
    assert_eq!(spread.iter().sum::<usize>(), 11);
    assert!(spread[0] + spread[1] >= 2, "{spread:?}");
}

#[tokio::test]
async fn an_unknown_name_is_400_and_nothing_is_sent() {
    let w = named_world().await;
    let r = bootstrap(&w, &w.client(false), Some("n9")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_code"], "unknown_node");
    assert_eq!(arrivals(&w, "/v1/bootstrap"), [0, 0, 0]);
}

#[tokio::test]
async fn a_named_node_that_is_down_is_not_replaced() {
    let w = named_world().await;
    w.node(0).set_mode(Mode::Down);
    let r = bootstrap(&w, &w.client(false), Some("n1")).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        arrivals(&w, "/v1/bootstrap"),
        [0, 0, 0],
        "no other node answered for n1"
    );
}
