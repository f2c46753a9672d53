//! Failed-login budgets through the real gateway (issue 17): one client
//! guessing one account is stopped without locking out the colleagues
//! behind the same address, a correct password for an account whose own
//! budget is spent is still refused (429 + Retry-After), and password
//! spraying from one address is slowed by the per-IP budget. Default
//! budgets throughout: what an operator who sets nothing gets.

mod common;

use common::*;

/// A general per-IP request limit far above the failed-login budgets, so
/// only the latter are met.
const LOOSE_REQUEST_LIMIT: &str = "[rate_limit]\nper_ip = { rate = \"10000/s\", burst = 10000 }\n";

fn verifications(w: &World) -> u64 {
    w.gateway.gateway.current().auth.stats().verifications()
}

fn assert_throttled(r: &Reply, what: &str) {
    assert_eq!(
        r.status,
        429,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["error_code"], "too_many_failed_logins", "{what}");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_locks_out_its_account_not_the_team_behind_its_ip() {
    let w = World::with(Setup {
        extra: LOOSE_REQUEST_LIMIT.into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    // User A's script has a stale password: 50 attempts from 127.0.0.1.
    let mut statuses = Vec::new();
    for i in 0..50 {
        let r = c
            .get(&w.url("/v1/bdbs"), (VIEWER.0, &format!("stale-{i}")))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let hashed = verifications(&w);
    assert_eq!(hashed, 5, "throttled attempts are not hashed");

    // User B, never seen before, same IP, right password: in.
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(w.upstream_requests().len(), 1);

    // User A with the right password: still refused until the budget
    // recovers, and told when to retry; nothing was hashed for it.
    let r = c.get(&w.url("/v1/bdbs"), VIEWER).await;
    assert_throttled(&r, "A with the right password");
    assert_eq!(verifications(&w), hashed + 1, "only B's login was hashed");
    assert_eq!(w.upstream_requests().len(), 1, "A reached no node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_spraying_from_one_ip_is_slowed_by_the_per_ip_budget() {
    let w = World::with(Setup {
        extra: LOOSE_REQUEST_LIMIT.into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    let mut refused = 0;
    let mut throttled = 0;
    for i in 0..200 {
        let r = c
            .get(
                &w.url("/v1/bdbs"),
                (&format!("user{i}@corp.example"), "Summer2026!"),
            )
            .await;
        match r.status {
            401 => refused += 1,
            429 => {
                assert_throttled(&r, "spraying");
                throttled += 1;
            }
            other => panic!("status {other}"),
        }
    }
    // The per-IP budget is 50 at once and 30/min after: a test run of a
    // few seconds adds a handful at most.
    assert!(
        (50..60).contains(&refused),
        "{refused} attempts were checked"
    );
    assert_eq!(refused + throttled, 200);
    assert_eq!(
        verifications(&w),
        refused,
        "throttled guesses cost no hashing"
    );
    // While the IP is over its spraying budget, even a right password from
    // it waits (the attacker could be guessing that account too).
    let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_throttled(&r, "right password from the spraying IP");
    assert!(w.upstream_requests().is_empty());
}
