//! No `307` ever reaches a client: a follower that redirects to a
//! configured node (by its URL's host and port, or by an
//! `[upstream.aliases]` internal address) is followed once inside regate,
//! body included when it was small enough to keep; a redirect anywhere
//! else is a 502 `upstream_redirect`, audited, and nothing goes there.

mod common;

use common::*;
use regate::sim::Mode;

const BODY: &[u8] = b"{\"name\":\"db\",\"memory_size\":1073741824}";

async fn post(w: &World, c: &TestClient) -> Reply {
    c.call(
        "POST",
        &w.url("/v1/bdbs"),
        Some(ADMIN),
        &[("content-type", "application/json")],
        BODY,
    )
    .await
}

fn two_nodes(extra: &str) -> Setup {
    Setup {
        nodes: 2,
        extra: extra.into(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_redirect_to_a_configured_node_is_followed_inside() {
    for h2 in [false, true] {
        let w = World::with(two_nodes("")).await;
        // node 0 is a follower pointing at node 1, the master
        w.node(0).set_mode(Mode::Redirect(w.node(1).url()));
        let c = w.client(h2);
        // the round robin starts at node 0
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "h2={h2}");
        assert!(!r.headers.contains_key("location"));
        assert_eq!(w.node(1).request_count(), 1);
        let lines = wait_audit(&w, 1).await;
        assert_eq!(lines[0]["upstream"], w.node(1).url());
        assert_eq!(lines[0]["upstream_tried"][0]["node"], w.node(0).url());
        assert_eq!(lines[0]["upstream_tried"][0]["error"], "redirect");
    }
}

#[tokio::test]
async fn a_redirect_to_an_alias_is_followed_with_the_body() {
    let w = World::with(two_nodes(
        "[upstream.aliases]\n\"10.255.0.2:9443\" = \"{node1}\"\n",
    ))
    .await;
    w.node(0)
        .set_mode(Mode::Redirect("https://10.255.0.2:9443".into()));
    let r = post(&w, &w.client(false)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let on_master: Vec<_> = w
        .node(1)
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(on_master.len(), 1);
    assert_eq!(on_master[0].body_prefix, BODY);
    // the follower read it once and answered 307
    assert_eq!(w.node(0).request_count(), 1);
}

#[tokio::test]
async fn a_redirect_elsewhere_is_a_502() {
    for h2 in [false, true] {
        let w = World::with(two_nodes("")).await;
        w.node(0)
            .set_mode(Mode::Redirect("https://10.255.0.9:9443".into()));
        let c = w.client(h2);
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 502, "h2={h2}");
        assert_eq!(r.json()["error_code"], "upstream_redirect");
        assert!(!r.headers.contains_key("location"));
        assert_eq!(w.node(1).request_count(), 0, "nothing went anywhere else");
        let lines = wait_audit(&w, 1).await;
        assert_eq!(lines[0]["status"], 502);
        assert_eq!(lines[0]["upstream_tried"][0]["error"], "redirect");
    }
}

#[tokio::test]
async fn a_body_too_large_to_keep_is_not_followed() {
    let w = World::with(two_nodes("[limits]\nredirect_body_bytes = 16\n")).await;
    w.node(0).set_mode(Mode::Redirect(w.node(1).url()));
    let r = post(&w, &w.client(false)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error_code"], "upstream_redirect");
    assert_eq!(w.node(1).request_count(), 0);
}

#[tokio::test]
async fn a_second_redirect_is_not_followed() {
    let w = World::with(two_nodes("")).await;
    w.node(0).set_mode(Mode::Redirect(w.node(1).url()));
    w.node(1).set_mode(Mode::Redirect(w.node(0).url()));
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error_code"], "upstream_redirect");
    assert_eq!(w.node(0).request_count() + w.node(1).request_count(), 2);
}
