//! The Redis rate-limit backend against a real `redis-server` that each
//! test starts on a free loopback port (and kills): two limiters (two
//! gateway instances) share one budget; Redis killed mid-test means local
//! fallback (or 503 with `fail_closed`), and recovery is automatic once it
//! is back on the same port. A missing `redis-server` fails the tests
//! (tests/run.sh installs it): a skipped test would pass unseen.

use std::net::{IpAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regate::ratelimit::{
    Backend, Class, Denied, QuotaSpec, RateLimitSettings, RateLimiter, RedisSettings,
};

const REDIS: &str = "/usr/bin/redis-server";

/// A `redis-server` child process, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn start(port: u16) -> RedisServer {
        let child = Command::new(REDIS)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn available() -> bool {
    assert!(
        std::path::Path::new(REDIS).exists(),
        "{REDIS} is missing: tests/run.sh installs it (apt-get install redis-server)"
    );
    true
}

fn spec(count: u32, secs: u64, burst: u32) -> QuotaSpec {
    QuotaSpec {
        count,
        period: Duration::from_secs(secs),
        burst,
    }
}

fn settings(port: u16, fail_closed: bool) -> RateLimitSettings {
    let mut s = RateLimitSettings {
        backend: Backend::Redis(RedisSettings {
            url: format!("redis://127.0.0.1:{port}"),
            timeout: Duration::from_millis(50),
            key_prefix: "test:".into(),
        }),
        fail_closed,
        per_ip: spec(1, 60, 4),
        ..RateLimitSettings::default()
    };
    s.defaults.per_user = spec(1, 60, 10);
    s.defaults.classes.read = spec(1000, 1, 1000);
    s.defaults.classes.write = spec(1, 60, 3);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_enforce_one_budget() {
    if !available() {
        return;
    }
    let redis = RedisServer::start(RedisServer::free_port());
    let a = RateLimiter::new(settings(redis.port, false));
    let b = RateLimiter::new(settings(redis.port, false));
    // Writes: burst 3 across both instances, then denied on either.
    let mut allowed = 0;
    for i in 0..8 {
        let lim = if i % 2 == 0 { &a } else { &b };
        match lim
            .check_request_shared("alice", "db_member", Class::Write)
            .await
        {
            Ok(_) => allowed += 1,
            Err(Denied::Limited(l)) => assert_eq!(l.scope, "write"),
            Err(Denied::Unavailable) => panic!("redis is up"),
        }
    }
    assert_eq!(allowed, 3);
    // The 5 denied writes spent nothing of alice's per-user budget (10):
    // 7 reads are left, shared by both instances.
    let mut reads = 0;
    for i in 0..12 {
        let lim = if i % 2 == 0 { &b } else { &a };
        match lim
            .check_request_shared("alice", "db_member", Class::Read)
            .await
        {
            Ok(v) => {
                reads += 1;
                assert_eq!(v.remaining, 6 - (reads - 1), "countdown across instances");
            }
            Err(Denied::Limited(l)) => assert_eq!(l.scope, "user"),
            Err(Denied::Unavailable) => panic!("redis is up"),
        }
    }
    assert_eq!(reads, 7);
    // Per-IP, before authentication: 4 for the whole /64, over both.
    let mut ips = 0;
    for i in 0..10u16 {
        let ip: IpAddr = format!("2001:db8:7:7::{i:x}").parse().unwrap();
        let lim = if i % 2 == 0 { &a } else { &b };
        ips += u32::from(lim.check_ip_shared(ip).await.is_ok());
    }
    assert_eq!(ips, 4);
    assert_eq!(a.stats().redis_errors + b.stats().redis_errors, 0);
    redis.kill();
}

/// Calls until Redis decisions resume (breaker probe), at most 5 s.
async fn wait_for_shared(lim: &RateLimiter) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = lim.stats().redis_fallbacks + lim.stats().redis_unavailable;
        let _ = lim.check_ip_shared("203.0.113.250".parse().unwrap()).await;
        let after = lim.stats().redis_fallbacks + lim.stats().redis_unavailable;
        if after == before {
            return;
        }
        assert!(Instant::now() < deadline, "redis decisions did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_locally_and_recovers() {
    if !available() {
        return;
    }
    let port = RedisServer::free_port();
    let redis = RedisServer::start(port);
    let a = RateLimiter::new(settings(port, false));
    let b = RateLimiter::new(settings(port, false));
    assert!(a
        .check_request_shared("bob", "r", Class::Write)
        .await
        .is_ok());
    assert!(b
        .check_request_shared("bob", "r", Class::Write)
        .await
        .is_ok());
    redis.kill();
    // Down: each instance decides alone, with the same quota; no request
    // waits longer than the Redis timeout.
    let mut local = 0;
    for _ in 0..6 {
        let t = Instant::now();
        match a.check_request_shared("bob", "r", Class::Write).await {
            Ok(_) => local += 1,
            Err(Denied::Limited(l)) => assert_eq!(l.scope, "write"),
            Err(Denied::Unavailable) => panic!("fail_closed is off"),
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    assert_eq!(local, 3, "the local limit holds while Redis is down");
    let st = a.stats();
    assert!(st.redis_errors >= 1 && st.redis_fallbacks >= 6, "{st:?}");
    // Back on the same port: shared decisions resume by themselves, with a
    // fresh Redis (state lost): the write budget is 3 again, shared.
    let redis = RedisServer::start(port);
    wait_for_shared(&a).await;
    wait_for_shared(&b).await;
    let mut allowed = 0;
    for i in 0..6 {
        let lim = if i % 2 == 0 { &a } else { &b };
        allowed += u32::from(
            lim.check_request_shared("bob", "r", Class::Write)
                .await
                .is_ok(),
        );
    }
    assert_eq!(allowed, 3);
    redis.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_answers_unavailable_then_recovers() {
    if !available() {
        return;
    }
    let port = RedisServer::free_port();
    let redis = RedisServer::start(port);
    let a = RateLimiter::new(settings(port, true));
    assert!(a
        .check_request_shared("carol", "r", Class::Read)
        .await
        .is_ok());
    redis.kill();
    for _ in 0..5 {
        let t = Instant::now();
        let r = a.check_request_shared("carol", "r", Class::Read).await;
        assert_eq!(r.unwrap_err(), Denied::Unavailable);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    assert!(a.stats().redis_unavailable >= 5);
    // A probe abandoned midway (client gone) must not block later probes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = a.check_request_shared("carol", "r", Class::Read);
    let _ = tokio::time::timeout(Duration::from_micros(1), probe).await;
    let redis = RedisServer::start(port);
    wait_for_shared(&a).await;
    assert!(a
        .check_request_shared("carol", "r", Class::Read)
        .await
        .is_ok());
    redis.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absent_at_start_is_not_fatal() {
    if !available() {
        return;
    }
    let port = RedisServer::free_port();
    let a = RateLimiter::new(settings(port, false));
    assert!(a
        .check_ip_shared("192.0.2.1".parse().unwrap())
        .await
        .is_ok());
    assert_eq!(a.stats().redis_fallbacks, 1);
    let redis = RedisServer::start(port);
    wait_for_shared(&a).await;
    assert!(a.stats().redis_errors >= 1);
    redis.kill();
}
