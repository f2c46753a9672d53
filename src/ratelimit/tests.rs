//! Unit tests of the local limiter on governor's `FakeRelativeClock`:
//! exact 429 timing and header countdown, refunds, role overrides, IP key
//! aggregation, the key cap under a million keys, reload, config errors.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::HeaderMap;

use super::config::RateLimitFile;
use super::*;

fn spec(count: u32, secs: u64, burst: u32) -> QuotaSpec {
    QuotaSpec {
        count,
        period: Duration::from_secs(secs),
        burst,
    }
}

/// Generous everywhere except what a test narrows.
fn loose() -> RateLimitSettings {
    let mut s = RateLimitSettings {
        per_ip: spec(1000, 1, 1000),
        ..RateLimitSettings::default()
    };
    s.defaults.per_user = spec(1000, 1, 1000);
    s.defaults.classes.read = spec(1000, 1, 1000);
    s.defaults.classes.write = spec(1000, 1, 1000);
    s.defaults.classes.destructive = spec(1000, 1, 1000);
    s
}

fn limiter(s: RateLimitSettings) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (RateLimiter::with_clock(s, clock.clone()), clock)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn denies_exactly_when_spent_and_remaining_counts_down() {
    let mut s = loose();
    s.defaults.per_user = spec(1, 1, 5);
    s.headers_on_success = true;
    let (rl, clock) = limiter(s);
    for expected in (0..5).rev() {
        let v = rl.check_request("alice", "db_viewer", Class::Read).unwrap();
        assert_eq!((v.scope, v.limit, v.remaining), ("user", 5, expected));
        let mut h = HeaderMap::new();
        v.apply_headers(&mut h);
        assert_eq!(h[RATELIMIT_LIMIT], "5");
        assert_eq!(h[RATELIMIT_REMAINING], expected.to_string().as_str());
        assert_eq!(h[RATELIMIT_RESET], (5 - expected).to_string().as_str());
    }
    let denied = rl
        .check_request("alice", "db_viewer", Class::Read)
        .unwrap_err();
    assert_eq!(
        (denied.scope, denied.limit, denied.retry_after_secs),
        ("user", 5, 1)
    );
    // Another user is unaffected; one interval later alice has one token.
    assert!(rl.check_request("bob", "db_viewer", Class::Read).is_ok());
    clock.advance(Duration::from_millis(999));
    assert!(rl.check_request("alice", "db_viewer", Class::Read).is_err());
    clock.advance(Duration::from_millis(1));
    let v = rl.check_request("alice", "db_viewer", Class::Read).unwrap();
    assert_eq!(v.remaining, 0);
    assert!(rl.check_request("alice", "db_viewer", Class::Read).is_err());
}

#[test]
fn headers_off_by_default_and_retry_after_of_slow_quota() {
    let mut s = loose();
    s.defaults.classes.destructive = spec(10, 60, 5);
    let (rl, clock) = limiter(s);
    for _ in 0..5 {
        let v = rl
            .check_request("ops", "admin", Class::Destructive)
            .unwrap();
        let mut h = HeaderMap::new();
        v.apply_headers(&mut h);
        assert!(h.is_empty());
    }
    let l = rl
        .check_request("ops", "admin", Class::Destructive)
        .unwrap_err();
    assert_eq!((l.scope, l.retry_after_secs), ("destructive", 6));
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        rl.check_request("ops", "admin", Class::Destructive)
            .unwrap_err()
            .retry_after_secs,
        1
    );
}

#[test]
fn denied_requests_spend_no_tokens_of_other_limits() {
    let mut s = loose();
    s.defaults.per_user = spec(1, 60, 10);
    s.defaults.classes.write = spec(1, 60, 2);
    s.global = Some(spec(1, 60, 15));
    let (rl, _clock) = limiter(s.clone());
    assert!(rl.check_request("alice", "r", Class::Write).is_ok());
    assert!(rl.check_request("alice", "r", Class::Write).is_ok());
    for _ in 0..20 {
        assert_eq!(
            rl.check_request("alice", "r", Class::Write)
                .unwrap_err()
                .scope,
            "write"
        );
    }
    // 20 denied writes took nothing from per-user or global: 8 reads left.
    for _ in 0..8 {
        assert!(rl.check_request("alice", "r", Class::Read).is_ok());
    }
    assert_eq!(
        rl.check_request("alice", "r", Class::Read)
            .unwrap_err()
            .scope,
        "user"
    );
    // Global has 15 - 10 = 5 left; bob takes them, then is denied by global.
    for _ in 0..5 {
        assert!(rl.check_request("bob", "r", Class::Read).is_ok());
    }
    for _ in 0..20 {
        assert_eq!(
            rl.check_request("bob", "r", Class::Read).unwrap_err().scope,
            "global"
        );
    }
    // Without the global ceiling (a reload keeping the user limits), bob's
    // own bucket shows only the 5 allowed requests: 10 - 5 - 1 = 4 left.
    let mut no_global = s;
    no_global.global = None;
    let rl = rl.rebuild(no_global);
    let v = rl.check_request("bob", "r", Class::Read).unwrap();
    assert_eq!((v.scope, v.remaining), ("user", 4));
}

#[test]
fn role_overrides_apply_to_their_role_only() {
    let mut s = loose();
    s.defaults.per_user = spec(1, 60, 5);
    s.defaults.classes.write = spec(1, 60, 3);
    let mut admin = s.defaults;
    admin.per_user = spec(100, 1, 200);
    admin.classes.write = spec(50, 1, 100);
    s.roles.insert("admin".into(), admin);
    let (rl, _clock) = limiter(s);
    for _ in 0..100 {
        assert!(rl
            .check_request("automation", "admin", Class::Write)
            .is_ok());
    }
    assert_eq!(
        rl.check_request("automation", "admin", Class::Write)
            .unwrap_err()
            .scope,
        "write"
    );
    for _ in 0..3 {
        assert!(rl.check_request("bob", "db_member", Class::Write).is_ok());
    }
    assert_eq!(
        rl.check_request("bob", "db_member", Class::Write)
            .unwrap_err()
            .scope,
        "write"
    );
    // An admin's read class is not overridden: it is the default limit.
    assert!(rl.check_request("automation", "admin", Class::Read).is_ok());
}

#[test]
fn ipv6_slash64_and_ipv4_mapped_share_a_bucket() {
    let mut s = loose();
    s.per_ip = spec(1, 60, 2);
    let (rl, _clock) = limiter(s);
    assert!(rl.check_ip(ip("2001:db8:1:2::1")).is_ok());
    assert!(rl.check_ip(ip("2001:db8:1:2:ffff:ffff:ffff:fffe")).is_ok());
    let l = rl.check_ip(ip("2001:db8:1:2:abcd::9")).unwrap_err();
    assert_eq!(l.scope, "ip");
    assert!(rl.check_ip(ip("2001:db8:1:3::1")).is_ok(), "another /64");
    assert!(rl.check_ip(ip("::ffff:192.0.2.7")).is_ok());
    assert!(rl.check_ip(ip("192.0.2.7")).is_ok());
    assert!(
        rl.check_ip(ip("::ffff:192.0.2.7")).is_err(),
        "mapped = IPv4"
    );
    assert!(rl.check_ip(ip("192.0.2.8")).is_ok());
}

#[test]
fn a_million_keys_stay_capped_and_limited_keys_stay_limited() {
    let mut s = loose();
    s.per_ip = spec(1, 10, 1);
    s.max_keys = 10_000;
    let (rl, clock) = limiter(s);
    let victim = ip("198.51.100.1");
    assert!(rl.check_ip(victim).is_ok());
    assert!(rl.check_ip(victim).is_err());
    let mut allowed = 0u32;
    for i in 0..1_000_000u32 {
        let key = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        allowed += u32::from(rl.check_ip(key).is_ok());
        if i % 100_000 == 99_999 {
            clock.advance(Duration::from_millis(500));
            rl.sweep();
            assert!(rl.stats().tracked_keys <= 10_000, "{:?}", rl.stats());
            assert!(rl.check_ip(victim).is_err(), "limited key reset by a sweep");
        }
        assert!(rl.per_ip.tracked() <= 10_000);
    }
    // 10 000 keys got a slot; the rest shared one overflow bucket, which
    // let through one request per 10 s: the flood stays one client.
    assert!(allowed <= 10_000 + 1, "allowed {allowed}");
    assert!(rl.stats().overflow_hits >= 990_000);
    // governor's retain rule keeps a key one interval past full: 4.5 s
    // (last insert) + 10 s (its token) + 10 s.
    clock.advance(Duration::from_secs(20));
    rl.sweep();
    assert_eq!(rl.stats().tracked_keys, 0);
    assert!(rl.check_ip(victim).is_ok());
}

#[test]
fn user_keys_are_capped_too() {
    let mut s = loose();
    s.max_keys = 1_000;
    let (rl, _clock) = limiter(s);
    for i in 0..20_000 {
        let user = format!("user-{i}");
        let _ = rl.check_request(&user, "r", Class::Read);
    }
    // per_user + three classes: each at most 1 000 keys.
    assert!(rl.stats().tracked_keys <= 4 * 1_000, "{:?}", rl.stats());
}

#[test]
fn rebuild_keeps_unchanged_limits_and_resets_changed_ones() {
    let mut s = loose();
    s.per_ip = spec(1, 60, 1);
    s.defaults.per_user = spec(1, 60, 1);
    let (rl, _clock) = limiter(s.clone());
    assert!(rl.check_ip(ip("192.0.2.1")).is_ok());
    assert!(rl.check_request("alice", "r", Class::Read).is_ok());
    let mut changed = s.clone();
    changed.defaults.per_user = spec(1, 60, 2);
    let rl2 = rl.rebuild(changed);
    assert!(rl2.check_ip(ip("192.0.2.1")).is_err(), "per_ip state kept");
    assert!(
        rl2.check_request("alice", "r", Class::Read).is_ok(),
        "new quota"
    );
    assert!(rl.check_ip(ip("192.0.2.2")).is_ok());
    assert!(
        rl2.check_ip(ip("192.0.2.2")).is_err(),
        "one state shared by old and new"
    );
    let mut prefix = s;
    prefix.ipv6_prefix = 56;
    assert!(
        rl2.rebuild(prefix).check_ip(ip("192.0.2.1")).is_ok(),
        "keys changed meaning"
    );
}

#[test]
fn disabled_allows_everything() {
    let mut s = loose();
    s.enabled = false;
    s.per_ip = spec(1, 60, 1);
    let (rl, _clock) = limiter(s);
    for _ in 0..10 {
        assert!(rl.check_ip(ip("192.0.2.1")).is_ok());
        let mut h = HeaderMap::new();
        rl.check_request("a", "r", Class::Write)
            .unwrap()
            .apply_headers(&mut h);
        assert!(h.is_empty());
    }
}

fn parse(text: &str) -> Result<RateLimitSettings, Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct F {
        rate_limit: RateLimitFile,
    }
    let f: F = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    f.rate_limit
        .validate()
        .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect())
}

#[test]
fn documented_defaults_and_example_validate() {
    assert_eq!(
        RateLimitFile::default().validate(),
        Ok(RateLimitSettings::default())
    );
    let s = parse(
        r#"
        [rate_limit]
        enabled = true
        backend = "local"
        redis_url = "redis://127.0.0.1:6379"
        fail_closed = false
        per_ip = { rate = "50/s", burst = 100 }
        per_user = { rate = "20/s", burst = 40 }
        [rate_limit.classes]
        read = { rate = "20/s", burst = 40 }
        write = { rate = "5/s", burst = 10 }
        destructive = { rate = "10/min", burst = 5 }
        [rate_limit.roles.admin]
        per_user = { rate = "100/s" }
        classes = { write = { rate = "50/s", burst = 60 } }
        "#,
    )
    .unwrap();
    let admin = s.roles["admin"];
    assert_eq!(admin.per_user, spec(100, 1, 100));
    assert_eq!(admin.classes.write, spec(50, 1, 60));
    assert_eq!(admin.classes.read, s.defaults.classes.read);
    assert_eq!(s.defaults.classes.destructive, spec(10, 60, 5));
}

#[test]
fn config_errors_name_their_keys() {
    let errs = parse(
        r#"
        [rate_limit]
        backend = "redis"
        redis_url = "http://user:hunter2@example"
        redis_timeout = "0ms"
        ipv6_prefix = 200
        per_ip = { rate = "50/day" }
        [rate_limit.classes]
        write = { rate = "5/s", burst = 0 }
        [rate_limit.roles.admin]
        per_user = { rate = "fast" }
        "#,
    )
    .unwrap_err();
    let keys = [
        "rate_limit.per_ip.rate",
        "rate_limit.classes.write.burst",
        "rate_limit.roles.admin.per_user.rate",
        "rate_limit.redis_url",
        "rate_limit.redis_timeout",
        "rate_limit.ipv6_prefix",
    ];
    for key in keys {
        assert!(
            errs.iter().any(|e| e.starts_with(key)),
            "{key} missing in {errs:?}"
        );
    }
    assert!(
        !errs.iter().any(|e| e.contains("hunter2")),
        "password echoed: {errs:?}"
    );
    let unknown = parse("[rate_limit]\nper_ip = { rate = \"1/s\", brust = 3 }\n").unwrap_err();
    assert!(unknown[0].contains("brust"), "{unknown:?}");
    let backend = parse("[rate_limit]\nbackend = \"memcached\"\n").unwrap_err();
    assert!(backend[0].starts_with("rate_limit.backend"));
}

#[tokio::test]
async fn sweeper_runs_under_pressure_and_stops_with_its_limiter() {
    let mut s = loose();
    s.per_ip = spec(1, 1, 1);
    s.max_keys = 100;
    s.sweep_interval = Duration::from_secs(3600);
    let (rl, clock) = limiter(s);
    let rl = std::sync::Arc::new(rl);
    let task = rl.spawn_sweeper();
    for i in 0..200u32 {
        let _ = rl.check_ip(IpAddr::V4(Ipv4Addr::from(i)));
    }
    assert_eq!(rl.stats().tracked_keys, 100);
    clock.advance(Duration::from_secs(3));
    // The cap was hit: swept within about a second, not after an hour.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rl.stats().tracked_keys > 0 {
        assert!(std::time::Instant::now() < deadline, "no sweep");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(rl);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();
}
