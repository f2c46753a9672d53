//! Which failed upstream requests are sent again, and which never are:
//! a request a node may have read is repeated only for GET, HEAD and
//! OPTIONS; a bodyless DELETE or PUT (an action in this API) that reached
//! a node which then closed without answering is a 502, sent once. A
//! failed node is taken out and the request goes to another healthy one
//! when that is safe, within the retry budget, named in the audit record.

mod common;
mod gw;

use common::*;
use regate::sim::Mode;

/// Warms a pooled upstream connection with a GET, then makes the node
/// read the next request and close without a byte of answer.
async fn closing_after_a_pooled_get(h2: bool) -> (World, TestClient) {
    let w = World::start().await;
    let c = w.client(h2);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    w.node(0).set_mode(Mode::Close);
    w.node(0).clear_requests();
    (w, c)
}

fn received(w: &World, method: &str, target: &str) -> usize {
    w.node(0)
        .requests()
        .iter()
        .filter(|r| r.method == method && r.target == target)
        .count()
}

#[tokio::test]
async fn a_written_bodyless_delete_or_put_is_never_sent_twice() {
    for h2 in [false, true] {
        for (method, target) in [
            ("DELETE", "/v1/bdbs/7"),
            ("PUT", "/v1/bdbs/1/actions/rebalance"),
        ] {
            let (w, c) = closing_after_a_pooled_get(h2).await;
            let r = c.call(method, &w.url(target), Some(ADMIN), &[], b"").await;
            assert_eq!(r.status, 502, "{method} {target} h2={h2}");
            assert_eq!(r.json()["error_code"], "upstream_unreachable");
            assert_eq!(
                received(&w, method, target),
                1,
                "{method} {target} (h2={h2}) reached the node once"
            );
        }
    }
}

#[tokio::test]
async fn a_get_on_a_connection_closed_under_it_is_sent_again() {
    let (w, c) = closing_after_a_pooled_get(false).await;
    let r = c.get(&w.url("/v1/bdbs/7"), ADMIN).await;
    // the node keeps closing: the retry fails too, but it was made
    assert_eq!(r.status, 502);
    assert_eq!(received(&w, "GET", "/v1/bdbs/7"), 2);
}

async fn post(w: &World, c: &TestClient) -> Reply {
    c.call(
        "POST",
        &w.url("/v1/bdbs"),
        Some(ADMIN),
        &[("content-type", "application/json")],
        b"{\"name\":\"db\"}",
    )
    .await
}

fn posts_received(w: &World, nodes: usize) -> usize {
    (0..nodes)
        .map(|i| {
            w.node(i)
                .requests()
                .iter()
                .filter(|r| r.method == "POST")
                .count()
        })
        .sum()
}

#[tokio::test]
async fn a_dead_node_costs_no_client_a_failure() {
    let w = World::with(Setup {
        nodes: 3,
        ..Setup::default()
    })
    .await;
    w.node(1).set_mode(Mode::Down);
    let c = w.client(false);
    for i in 0..6 {
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "GET {i}");
        // a refused connect wrote nothing: even a POST goes elsewhere, once
        let r = post(&w, &c).await;
        assert_eq!(r.status, 200, "POST {i}");
        assert_eq!(posts_received(&w, 3), i + 1, "each POST arrived once");
    }
    // the first failure took the node out: no later request tried it
    let m = gw::metrics_text(w.gateway.metrics_addr).await;
    let url = w.node(1).url();
    assert_eq!(
        gw::metric_sum(
            &m,
            "regate_node_state_changes_total",
            &[("node", &url), ("to", "down")]
        ),
        1.0
    );
    assert_eq!(
        gw::metric_sum(
            &m,
            "regate_upstream_retries_total",
            &[("node", &url), ("outcome", "retried")]
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_node_outside_an_active_cluster_is_skipped_for_reads() {
    let w = World::with(Setup {
        nodes: 3,
        ..Setup::default()
    })
    .await;
    w.node(2).set_mode(Mode::NotInCluster);
    let c = w.client(true);
    for i in 0..30 {
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "GET {i}");
    }
    // asked once, answered 503, taken out
    assert_eq!(w.node(2).request_count(), 1);
}

#[tokio::test]
async fn a_written_post_is_not_sent_to_a_second_node() {
    let w = World::with(Setup {
        nodes: 2,
        ..Setup::default()
    })
    .await;
    for i in 0..2 {
        w.node(i).set_mode(Mode::Reset);
    }
    let c = w.client(false);
    let r = post(&w, &c).await;
    assert_eq!(r.status, 502);
    assert_eq!(posts_received(&w, 2), 1, "read by one node, never re-sent");
}

#[tokio::test]
async fn the_audit_record_names_every_node_tried() {
    let w = World::with(Setup {
        nodes: 2,
        ..Setup::default()
    })
    .await;
    w.node(0).set_mode(Mode::Down);
    let c = w.client(false);
    // the round robin starts at node 0
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    let lines = wait_audit(&w, 1).await;
    let rec = &lines[0];
    assert_eq!(rec["upstream"], w.node(1).url());
    assert_eq!(rec["upstream_status"], 200);
    let tried = rec["upstream_tried"].as_array().expect("upstream_tried");
    assert_eq!(tried.len(), 1, "{rec}");
    assert_eq!(tried[0]["node"], w.node(0).url());
    assert_eq!(tried[0]["error"], "unreachable");
}

#[tokio::test]
async fn a_spent_budget_stops_retries() {
    let w = World::with(Setup {
        nodes: 2,
        extra: "[upstream.retry]\nbudget_percent = 0\nmin_per_window = 0\n".into(),
        ..Setup::default()
    })
    .await;
    w.node(0).set_mode(Mode::Down);
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error_code"], "upstream_unreachable");
    assert_eq!(w.node(1).request_count(), 0);
    let m = gw::metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        gw::metric_sum(
            &m,
            "regate_upstream_retries_total",
            &[("outcome", "budget_spent")]
        ),
        1.0
    );
}

#[tokio::test]
async fn no_healthy_node_is_503_with_retry_after_on_both_protocols() {
    let w = World::with(Setup {
        nodes: 2,
        ..Setup::default()
    })
    .await;
    for i in 0..2 {
        w.node(i).set_mode(Mode::Down);
    }
    // the first request tries both and takes both out
    let first = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(first.status, 502);
    for h2 in [false, true] {
        let c = w.client(h2);
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 503, "h2={h2}");
        assert_eq!(r.json()["error_code"], "no_healthy_node");
        let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(after >= 1, "{after}");
    }
}

#[tokio::test]
async fn a_retry_after_is_waited_out_within_the_deadline() {
    let w = World::with(Setup {
        extra: "[timeouts]\nupstream_response = \"5s\"\n".into(),
        ..Setup::default()
    })
    .await;
    w.node(0).set_mode(Mode::Busy(1));
    // the node recovers once it has refused the first attempt
    let node = w.node(0).clone();
    let recover = tokio::spawn(async move {
        while node.request_count() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        node.set_mode(Mode::Normal);
    });
    let t = std::time::Instant::now();
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    recover.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(950));
    assert_eq!(received(&w, "GET", "/v1/bdbs"), 2);

    // a write is not repeated: the 503 passes through
    w.node(0).set_mode(Mode::Busy(1));
    let r = w
        .client(false)
        .call("DELETE", &w.url("/v1/bdbs/7"), Some(ADMIN), &[], b"")
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(received(&w, "DELETE", "/v1/bdbs/7"), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
    let w = World::with(Setup {
        extra: "[timeouts]\nupstream_response = \"2s\"\n".into(),
        ..Setup::default()
    })
    .await;
    w.node(0).set_mode(Mode::Busy(30));
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "30");
    assert_eq!(received(&w, "GET", "/v1/bdbs"), 1);
}
