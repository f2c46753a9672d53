//! What a rate-limit decision costs on the request path.
//!
//! `local`: regate's synchronous checks (governor GCRA over the capped
//! DashMap store; `check_request` takes three limits: user, class, global)
//! against a naive token bucket behind one `Mutex<HashMap>`, single
//! threaded, on one hot key and spread over 10 000 keys. Quotas are huge
//! so every check is an allow (the common path). `local_2_threads`: the
//! same over two threads at once (the machine's core count), where the
//! single lock serialises and DashMap's shards do not.
//!
//! `redis`: one `check_request_shared` round trip (EVALSHA of the GCRA
//! script, three keys) to a `redis-server` the bench starts on a free
//! loopback port; skipped if `/usr/bin/redis-server` is missing.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use regate::ratelimit::{Backend, Class, QuotaSpec, RateLimitSettings, RateLimiter, RedisSettings};

/// The baseline: a classic refilling token bucket per key, one lock.
struct NaiveBuckets {
    rate_per_sec: f64,
    burst: f64,
    map: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl NaiveBuckets {
    fn check(&self, key: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = map.entry(key).or_insert((self.burst, now));
        let refill = now.duration_since(*last).as_secs_f64() * self.rate_per_sec;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn huge() -> QuotaSpec {
    QuotaSpec {
        count: 1_000_000,
        period: Duration::from_secs(1),
        burst: 1_000_000,
    }
}

fn settings() -> RateLimitSettings {
    let mut s = RateLimitSettings {
        per_ip: huge(),
        global: Some(huge()),
        ..RateLimitSettings::default()
    };
    s.defaults.per_user = huge();
    s.defaults.classes.read = huge();
    s
}

fn keys() -> Vec<IpAddr> {
    (0..10_000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect()
}

fn local(c: &mut Criterion) {
    let limiter = RateLimiter::new(settings());
    let naive = NaiveBuckets {
        rate_per_sec: 1e6,
        burst: 1e6,
        map: Mutex::new(HashMap::new()),
    };
    let keys = keys();
    let hot: IpAddr = "192.0.2.1"
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut g = c.benchmark_group("local");
    g.bench_function("regate_check_ip_hot_key", |b| {
        b.iter(|| black_box(limiter.check_ip(black_box(hot)).is_ok()))
    });
    g.bench_function("naive_mutex_hashmap_hot_key", |b| {
        b.iter(|| black_box(naive.check(black_box(hot))))
    });
    let mut i = 0usize;
    g.bench_function("regate_check_ip_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check_ip(keys[i]).is_ok())
        })
    });
    g.bench_function("naive_mutex_hashmap_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(naive.check(keys[i]))
        })
    });
    g.bench_function("regate_check_request_3_limits", |b| {
        b.iter(|| {
            black_box(
                limiter
                    .check_request("alice", "db_viewer", Class::Read)
                    .is_ok(),
            )
        })
    });
    g.finish();
    // Two threads over 10 000 keys each (criterion's time = per check).
    let mut g = c.benchmark_group("local_2_threads");
    g.bench_function("regate_check_ip_10k_keys", |b| {
        b.iter_custom(|n| contended(n, |k| limiter.check_ip(k).is_ok(), &keys))
    });
    g.bench_function("naive_mutex_hashmap_10k_keys", |b| {
        b.iter_custom(|n| contended(n, |k| naive.check(k), &keys))
    });
    g.finish();
}

/// Runs `n` checks on each of two threads; returns the time per thread's
/// `n` checks (so the figure reads as latency per check under contention).
fn contended(n: u64, check: impl Fn(IpAddr) -> bool + Sync, keys: &[IpAddr]) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2usize {
            let check = &check;
            s.spawn(move || {
                for i in 0..n as usize {
                    black_box(check(keys[(i * 7 + t * 5_000) % keys.len()]));
                }
            });
        }
    });
    start.elapsed()
}

fn redis(c: &mut Criterion) {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        eprintln!("redis bench skipped: /usr/bin/redis-server not installed");
        return;
    }
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(_) => return,
    };
    let Ok(mut child) = Command::new("/usr/bin/redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = settings();
    s.backend = Backend::Redis(RedisSettings {
        url: format!("redis://127.0.0.1:{port}"),
        timeout: Duration::from_millis(50),
        key_prefix: "bench:".into(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    if let Ok(rt) = rt {
        let limiter = RateLimiter::new(s);
        let mut g = c.benchmark_group("redis");
        g.bench_function("check_request_shared_round_trip", |b| {
            b.iter(|| {
                rt.block_on(limiter.check_request_shared("alice", "db_viewer", Class::Read))
                    .is_ok()
            })
        });
        g.finish();
        let st = limiter.stats();
        eprintln!(
            "redis bench: errors={} fallbacks={}",
            st.redis_errors, st.redis_fallbacks
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
