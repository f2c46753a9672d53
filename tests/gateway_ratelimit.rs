//! Rate limits through the real gateway (issue 5, SECURITY.md group E):
//! the 429 arrives exactly when a quota is spent, with `Retry-After`,
//! `RateLimit-*` and a JSON body; `headers_on_success` counts down;
//! `X-Forwarded-For` from an untrusted peer does not evade the per-IP
//! limit; denied requests spend no per-user tokens; two gateways sharing
//! one real `redis-server` enforce one budget, fall back to local limits
//! (or 503 with `fail_closed`) while it is dead, and recover after it
//! restarts.

mod common;
mod gw;

use std::time::Duration;

use common::*;
use gw::*;

/// A world whose `[rate_limit]` section is `limits` (small quotas).
async fn limited_world(limits: &str) -> World {
    World::with(Setup {
        extra: format!("[rate_limit]\n{limits}\n"),
        ..Setup::default()
    })
    .await
}

fn header(r: &Reply, name: &str) -> Option<u64> {
    r.headers.get(name).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {v:?} is not a number"))
    })
}

/// The 429 a user sees: status, JSON body, `Retry-After` and `RateLimit-*`.
fn assert_limited(r: &Reply, limit: u64, max_wait: u64) {
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_code"], "rate_limited");
    assert_eq!(r.headers["content-type"], "application/json");
    let retry = header(r, "retry-after").expect("Retry-After");
    assert!((1..=max_wait).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(r, "ratelimit-limit"), Some(limit));
    assert_eq!(header(r, "ratelimit-remaining"), Some(0));
    assert_eq!(header(r, "ratelimit-reset"), Some(retry));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_429_comes_exactly_when_the_user_quota_is_spent() {
    let w = limited_world(
        "per_ip = { rate = \"1000/s\", burst = 1000 }\n\
         per_user = { rate = \"1/min\", burst = 5 }\n\
         [rate_limit.classes]\nread = { rate = \"1000/s\" }\n",
    )
    .await;
    // h2 and HTTP/1.1 draw from the same budget
    for i in 0..5 {
        let r = w.client(i % 2 == 0).get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "request {}", i + 1);
        assert!(
            r.headers.get("ratelimit-remaining").is_none(),
            "off by default"
        );
    }
    for h2 in [false, true] {
        let r = w.client(h2).get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_limited(&r, 5, 60);
    }
    assert_eq!(w.upstream_requests().len(), 5, "429s are not forwarded");
    // another user has a budget of their own
    assert_eq!(
        w.client(false).get(&w.url("/v1/bdbs"), VIEWER).await.status,
        200
    );
    let m = metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        metric_sum(&m, "regate_rate_limited_total", &[("scope", "user")]),
        2.0
    );
    // the audit trail says which limit refused
    let World { gateway, dir, .. } = w;
    gateway.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    for v in &lines {
        match v["status"].as_u64() {
            Some(429) => {
                assert_eq!(v["rate_limit"], "limited", "{v}");
                assert_eq!(v["rate_limit_scope"], "user", "{v}");
                assert_eq!(v["decision"], "deny", "{v}");
            }
            _ => assert_eq!(v["rate_limit"], "pass", "{v}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_quota_limits_writes_and_leaves_reads() {
    let w = limited_world(
        "per_ip = { rate = \"1000/s\", burst = 1000 }\n\
         per_user = { rate = \"1000/s\", burst = 1000 }\n\
         [rate_limit.classes]\nread = { rate = \"1000/s\" }\nwrite = { rate = \"1/min\", burst = 2 }\n",
    )
    .await;
    let c = w.client(true);
    let url = w.url("/v1/bdbs");
    let post = || c.call("POST", &url, Some(ADMIN), &[], b"{\"name\":\"x\"}");
    assert_eq!(post().await.status, 200);
    assert_eq!(post().await.status, 200);
    assert_limited(&post().await, 2, 60);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remaining_counts_down_on_successful_responses() {
    let w = limited_world(
        "headers_on_success = true\n\
         per_ip = { rate = \"1000/s\", burst = 1000 }\n\
         per_user = { rate = \"1/min\", burst = 4 }\n\
         [rate_limit.classes]\nread = { rate = \"1000/s\" }\n",
    )
    .await;
    let c = w.client(false);
    for want in (0..4).rev() {
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "ratelimit-limit"), Some(4));
        assert_eq!(header(&r, "ratelimit-remaining"), Some(want));
        let reset = header(&r, "ratelimit-reset").expect("RateLimit-Reset");
        assert!((1..=60 * 4).contains(&reset), "reset {reset}");
    }
    assert_limited(&c.get(&w.url("/v1/bdbs"), ADMIN).await, 4, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_an_untrusted_peer_do_not_evade_the_ip_limit() {
    let w = limited_world(
        "per_ip = { rate = \"1/min\", burst = 6 }\n\
         per_user = { rate = \"1000/s\", burst = 1000 }\n\
         [rate_limit.classes]\nread = { rate = \"1000/s\" }\n",
    )
    .await;
    let c = w.client(false);
    for i in 0..8u32 {
        let ip = format!("10.{}.{}.{}", i, i * 7 % 256, i + 1);
        let xff = format!("{ip}, 127.0.0.1");
        let fwd = format!("for={ip}");
        let hdr = [
            ("x-forwarded-for", xff.as_str()),
            ("x-real-ip", ip.as_str()),
            ("forwarded", fwd.as_str()),
        ];
        let r = c
            .call("GET", &w.url("/v1/bdbs"), Some(ADMIN), &hdr, b"")
            .await;
        if i < 6 {
            assert_eq!(r.status, 200, "request {}", i + 1);
        } else {
            assert_limited(&r, 6, 60);
        }
    }
    // Unauthenticated attempts are counted per IP too (before any hashing).
    let r = c.get(&w.url("/v1/bdbs"), (ADMIN.0, "guess")).await;
    assert_eq!(r.status, 429);
    let m = metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        metric_sum(&m, "regate_rate_limited_total", &[("scope", "ip")]),
        3.0
    );
    // the node saw the socket peer, not the client's claim
    for req in w.upstream_requests() {
        let xff = req.header("x-forwarded-for").unwrap();
        assert_eq!(xff, b"127.0.0.1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requests_spend_no_user_tokens() {
    let w = limited_world(
        "per_ip = { rate = \"1000/s\", burst = 1000 }\n\
         per_user = { rate = \"1/min\", burst = 3 }\n\
         [rate_limit.classes]\nread = { rate = \"1000/s\" }\nwrite = { rate = \"1000/s\" }\n\
         destructive = { rate = \"1000/s\" }\n",
    )
    .await;
    let c = w.client(true);
    for _ in 0..10 {
        // db_viewer: no permission for /v1/users, nor to delete a database
        assert_eq!(c.get(&w.url("/v1/users"), VIEWER).await.status, 403);
        let r = c
            .call("DELETE", &w.url("/v1/bdbs/1"), Some(VIEWER), &[], b"")
            .await;
        assert_eq!(r.status, 403);
        // unknown routes are refused before authentication
        assert_eq!(c.get(&w.url("/v1/nothing"), VIEWER).await.status, 404);
    }
    for i in 0..3 {
        let r = c.get(&w.url("/v1/bdbs"), VIEWER).await;
        assert_eq!(r.status, 200, "allowed request {} after 30 denials", i + 1);
    }
    assert_limited(&c.get(&w.url("/v1/bdbs"), VIEWER).await, 3, 60);
}

fn redis_limits(port: u16, fail_closed: bool) -> String {
    format!(
        "backend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
         redis_timeout = \"100ms\"\nredis_key_prefix = \"gwtest:\"\nfail_closed = {fail_closed}\n\
         per_ip = {{ rate = \"1000/s\", burst = 1000 }}\n\
         per_user = {{ rate = \"1/min\", burst = 6 }}\n\
         [rate_limit.classes]\nread = {{ rate = \"1000/s\" }}\n"
    )
}

/// Alternates between the gateways until one says 429; returns how many
/// requests were allowed in total.
async fn spend(gateways: &[&World], who: (&str, &str), max: usize) -> usize {
    for i in 0..max {
        let w = gateways[i % gateways.len()];
        let r = w.client(i % 2 == 1).get(&w.url("/v1/bdbs"), who).await;
        match r.status {
            200 => {}
            429 => {
                assert_limited(&r, 6, 60);
                return i;
            }
            s => panic!(
                "request {}: {s} {}",
                i + 1,
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
    panic!("no 429 after {max} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_redis_budget_and_survive_its_death() {
    let port = free_port();
    let redis = RedisServer::start(port);
    let a = limited_world(&redis_limits(port, false)).await;
    let b = limited_world(&redis_limits(port, false)).await;
    let strict = limited_world(&redis_limits(port, true)).await;

    // One budget of 6 for both gateways, whichever is asked.
    assert_eq!(spend(&[&a, &b], ADMIN, 20).await, 6);
    // Still spent on each gateway (and on a third one).
    for w in [&a, &b, &strict] {
        assert_limited(&w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await, 6, 60);
    }

    // Redis dies: the fail-open gateways decide locally and keep serving,
    // the fail-closed one refuses.
    redis.kill();
    for w in [&a, &b] {
        for _ in 0..3 {
            let r = w.client(true).get(&w.url("/v1/bdbs"), VIEWER).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    }
    let r = strict
        .client(false)
        .get(&strict.url("/v1/bdbs"), VIEWER)
        .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_code"], "rate_limit_unavailable");
    assert!(r.headers.get("retry-after").is_none());
    // local fallback still limits: a fresh local bucket of 6, 3 spent above
    assert_eq!(spend(&[&a], VIEWER, 20).await, 3);
    for w in [&a, &b] {
        assert!(fallbacks(w) >= 3, "decided locally");
    }
    // ... and operators see it, exactly, in the next scrape
    for (w, event) in [
        (&a, "local_fallback"),
        (&b, "local_fallback"),
        (&strict, "unavailable"),
    ] {
        let n = backend_events(w, event).await;
        assert!(n >= 1.0 && n == fallbacks(w) as f64, "{event}: {n}");
    }
    // A reload that changes the Redis settings (a new connection and
    // breaker) keeps counting from there.
    let before = backend_events(&b, "local_fallback").await;
    let text = std::fs::read_to_string(&b.config_path).unwrap();
    std::fs::write(
        &b.config_path,
        text.replace("redis_timeout = \"100ms\"", "redis_timeout = \"150ms\""),
    )
    .unwrap();
    let gw = b.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        backend_events(&b, "local_fallback").await,
        before,
        "kept across the reload"
    );

    // Redis is back on the same port (empty): each gateway's breaker probes
    // it again and decides through it (no more local decisions) ...
    let _redis = RedisServer::start(port);
    for w in [&strict, &a, &b] {
        eventually(
            "decisions through Redis again",
            Duration::from_secs(10),
            || async {
                let before = fallbacks(w);
                let r = w.client(false).get(&w.url("/v1/bdbs"), VIEWER).await;
                (r.status == 200 && fallbacks(w) == before).then_some(())
            },
        )
        .await;
    }
    // ... and the budget is one again. ADMIN's local buckets on `a` and `b`
    // are untouched, so a gateway still deciding locally would allow more.
    assert_eq!(spend(&[&b, &a, &strict], ADMIN, 20).await, 6);
}

/// `regate_rate_limit_backend_events_total{event}` in a scrape now.
async fn backend_events(w: &World, event: &str) -> f64 {
    let m = metrics_text(w.gateway.metrics_addr).await;
    metric_sum(
        &m,
        "regate_rate_limit_backend_events_total",
        &[("event", event)],
    )
}

/// Requests the gateway decided without Redis (fallback or 503).
fn fallbacks(w: &World) -> u64 {
    let s = w.gateway.gateway.current().limiter.stats();
    s.redis_fallbacks + s.redis_unavailable
}
