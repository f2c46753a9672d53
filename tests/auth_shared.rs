//! Failed-login budgets shared through Redis (issue 17): three gateways on
//! one real `redis-server` (started per test on a free loopback port; a
//! missing `redis-server` fails the test) give an attacker one budget, not
//! three; a Redis that accepts connections but never answers makes every
//! gateway decide alone, within `redis_timeout`, for request limits and
//! failed logins alike, and the fallback is counted.

mod common;
mod gw;

use common::*;
use gw::{free_port, metric_sum, metrics_text, RedisServer};

fn redis_setup(port: u16) -> Setup {
    Setup {
        extra: format!(
            "[rate_limit]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
             redis_timeout = \"100ms\"\nper_ip = {{ rate = \"10000/s\", burst = 10000 }}\n"
        ),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_one_redis_enforce_one_failed_login_budget() {
    let redis = RedisServer::start(free_port());
    let worlds = [
        World::with(redis_setup(redis.port)).await,
        World::with(redis_setup(redis.port)).await,
        World::with(redis_setup(redis.port)).await,
    ];
    let clients: Vec<_> = worlds.iter().map(|w| w.client(false)).collect();
    // Six guesses at one account from one client, spread over the three
    // gateways: alone, each would allow all of its two (budget 5 each).
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (w, c) = (&worlds[i % 3], &clients[i % 3]);
        let r = c
            .get(&w.url("/v1/bdbs"), (VIEWER.0, &format!("guess-{i}")))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429], "one budget of 5");
    // The right password on a gateway that saw only two failures: refused.
    let r = clients[2].get(&worlds[2].url("/v1/bdbs"), VIEWER).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_code"], "too_many_failed_logins");
    assert!(r.headers.contains_key("retry-after"));
    // Another user behind the same IP is not affected, on any gateway.
    for (w, c) in worlds.iter().zip(&clients) {
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    for w in &worlds {
        let snap = w.gateway.gateway.current();
        assert_eq!(snap.auth.stats().shared_fallbacks(), 0, "redis answered");
        assert_eq!(snap.limiter.stats().redis_errors, 0);
    }
    let hashed: u64 = worlds
        .iter()
        .map(|w| w.gateway.gateway.current().auth.stats().verifications())
        .sum();
    assert_eq!(hashed, 5 + 3, "five guesses and the three admin logins");
    redis.kill();
}

/// A "Redis" that accepts connections and never answers.
async fn black_hole() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_means_local_budgets_counted() {
    let port = black_hole().await;
    let w = World::with(redis_setup(port)).await;
    let c = w.client(false);
    // The request limit and the failed-login budget are both decided
    // locally: five guesses are checked, the sixth is throttled.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = c
            .get(&w.url("/v1/bdbs"), (VIEWER.0, &format!("guess-{i}")))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let snap = w.gateway.gateway.current();
    let auth_fallbacks = snap.auth.stats().shared_fallbacks();
    assert!(
        auth_fallbacks >= 6,
        "failed-login fallbacks: {auth_fallbacks}"
    );
    let l = snap.limiter.stats();
    assert!(l.redis_errors >= 1, "{l:?}");
    assert!(
        l.redis_fallbacks >= auth_fallbacks + 7,
        "request-limit and failed-login fallbacks are both counted: {l:?}"
    );
    // ... and exported, exactly, in the next scrape.
    let text = metrics_text(w.gateway.metrics_addr).await;
    let exported = metric_sum(
        &text,
        "regate_rate_limit_backend_events_total",
        &[("event", "local_fallback")],
    );
    assert_eq!(exported, l.redis_fallbacks as f64);
    assert!(exported >= 13.0);
}
