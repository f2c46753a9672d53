//! Which failed upstream requests are sent again, and which never are:
//! a request a node may have read is repeated only for GET, HEAD and
//! OPTIONS; a bodyless DELETE or PUT (an action in this API) that reached
//! a node which then closed without answering is a 502, sent once.

mod common;

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
