//! Prometheus metrics of a running gateway (issue 6, SECURITY.md H5):
//! `/metrics` after real traffic passes `promtool check metrics` and
//! counts every request; random paths and user names add no series;
//! `/healthz` and `/readyz` follow the nodes' health; `/metrics` is never
//! served on the client TLS port; a real Prometheus server scraping
//! the admin listener sees the number of requests made; and the counters
//! kept by the authenticator show in the very next scrape and keep
//! counting across config reloads.

mod common;
mod gw;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gw::*;
use regate::sim::Mode;

/// Rate limits and failed-login throttles wide open: these tests count
/// requests, not limits.
fn open_limits(users: &std::path::Path) -> String {
    format!(
        "[auth]\nusers = \"{}\"\nfailed_per_ip = {{ rate = \"1000/s\", burst = 100000 }}\n\
         failed_per_ip_user = {{ rate = \"1000/s\", burst = 100000 }}\n\
         failed_per_user = {{ rate = \"1000/s\", burst = 100000 }}\n\n\
         [rate_limit]\nenabled = false\n",
        users.display()
    )
}

async fn open_world(nodes: usize) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(
        dir.path(),
        &[
            (ADMIN.0, ADMIN.1, "admin"),
            (VIEWER.0, VIEWER.1, "db_viewer"),
        ],
    );
    let w = World::with(Setup {
        nodes,
        extra: open_limits(&users),
        sim: None,
        ..Setup::default()
    })
    .await;
    (w, dir)
}

/// Sends a fixed mix (200, 401, 403, 404 over HTTP/1.1 and h2); returns
/// how many requests were made and how many of them were allowed.
async fn traffic(w: &World) -> (usize, usize) {
    let mut made = 0;
    let mut allowed = 0;
    for h2 in [false, true] {
        let c = w.client(h2);
        for _ in 0..3 {
            assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
            assert_eq!(c.get(&w.url("/v1/bdbs/1"), VIEWER).await.status, 200);
            allowed += 2;
            assert_eq!(
                c.get(&w.url("/v1/bdbs"), (ADMIN.0, "nope")).await.status,
                401
            );
            assert_eq!(c.get(&w.url("/v1/users"), VIEWER).await.status, 403);
            assert_eq!(c.get(&w.url("/v1/nothing"), ADMIN).await.status, 404);
            made += 5;
        }
    }
    (made, allowed)
}

/// Waits until `sum(regate_requests_total)` reaches `n` (the count is
/// taken when a response body ends, just after the client saw it).
async fn requests_total(addr: Option<SocketAddr>, n: usize) -> String {
    eventually("regate_requests_total", Duration::from_secs(5), || async {
        let m = metrics_text(addr).await;
        (metric_sum(&m, "regate_requests_total", &[]) >= n as f64).then_some(m)
    })
    .await
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (tests/run.sh installs the prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_pass_promtool_and_count_every_request() {
    let (w, _users) = open_world(2).await;
    let (made, allowed) = traffic(&w).await;
    let m = requests_total(w.gateway.metrics_addr, made).await;
    // settled: nothing counted twice
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m2 = metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        metric_sum(&m2, "regate_requests_total", &[]),
        made as f64,
        "{m}"
    );

    let (ok, msg) = promtool_check(&m2);
    assert!(ok, "promtool check metrics failed:\n{msg}\n{m2}");

    let by = |labels: &[(&str, &str)]| metric_sum(&m2, "regate_requests_total", labels);
    assert_eq!(by(&[("decision", "allow")]), allowed as f64);
    assert_eq!(by(&[("decision", "deny")]), (made - allowed) as f64);
    assert_eq!(by(&[("status_class", "2xx")]), allowed as f64);
    assert_eq!(by(&[("route", "/v1/bdbs/{uid}")]), 6.0);
    assert_eq!(by(&[("route", "/v1/users"), ("status_class", "4xx")]), 6.0);
    assert_eq!(by(&[("route", "unmatched")]), 6.0, "404s are unmatched");
    assert_eq!(
        metric_sum(&m2, "regate_upstream_requests_total", &[]),
        allowed as f64
    );
    assert_eq!(
        metric_sum(&m2, "regate_auth_total", &[("outcome", "failure")]),
        6.0
    );
    assert_eq!(
        metric_sum(&m2, "regate_request_duration_seconds_count", &[]),
        made as f64
    );
    // Read from the credential cache at the scrape: the same two good
    // credentials were presented 6 times each.
    let m3 = metrics_text(w.gateway.metrics_addr).await;
    assert!(
        metric_sum(&m3, "regate_auth_cache_hits_total", &[]) >= 8.0,
        "{m3}"
    );
    assert!(
        metric_sum(&m3, "regate_auth_cache_misses_total", &[]) >= 2.0,
        "{m3}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_and_user_names_add_no_series() {
    let (w, _users) = open_world(1).await;
    let c = Arc::new(w.client(true));
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let mut tokens = Vec::new();
    // Histograms exist up front for every route of the profile: that part
    // is bounded by the config, whatever the traffic.
    let baseline = series(&metrics_text(w.gateway.metrics_addr).await);
    let mut counts = Vec::new();
    for _round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let token = format!("zq{:016x}", rand::random::<u64>());
            tokens.push(token.clone());
            let (c, base) = (c.clone(), w.url(""));
            tasks.spawn(async move {
                let (path, who) = match i % 4 {
                    0 => (format!("/v1/bdbs/{token}"), ADMIN),
                    1 => (format!("/v1/{token}/x"), ADMIN),
                    2 => ("/v1/bdbs".to_string(), (token.as_str(), "pw")),
                    _ => (format!("/v1/users/{token}"), (token.as_str(), "pw")),
                };
                // borrowck: `who` may borrow `token`
                let who = (who.0.to_string(), who.1);
                c.get(&format!("{base}{path}"), (&who.0, who.1))
                    .await
                    .status
            });
        }
        while let Some(s) = tasks.join_next().await {
            assert_ne!(s.unwrap(), 500);
        }
        let m = requests_total(w.gateway.metrics_addr, 1000 * (counts.len() + 1)).await;
        for t in &tokens {
            assert!(!m.contains(t.as_str()), "{t} became a label");
        }
        counts.push(series(&m));
    }
    assert_eq!(
        counts[0], counts[1],
        "1000 new paths and users added series"
    );
    // the four routes' first use: a duration histogram each (17 series)
    // and their counters; then nothing more, whatever the paths and users
    assert!(
        counts[0] <= baseline + 4 * 17 + 30,
        "{baseline} series before, {} after 1000 distinct requests",
        counts[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_follow_the_nodes() {
    let (w, _users) = open_world(2).await;
    let addr = w.gateway.metrics_addr.unwrap();
    assert_eq!(admin_get(addr, "/healthz").await.0, 200);
    assert_eq!(admin_get(addr, "/readyz").await.0, 200);
    for i in 0..2 {
        w.node(i).set_mode(Mode::Down);
    }
    let c = w.client(false);
    // the first request tries both nodes (a refused connect is retried
    // elsewhere) and takes both out; the next ones find no healthy node
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 502);
    for _ in 0..3 {
        let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["error_code"], "no_healthy_node");
        assert!(r.headers.contains_key("retry-after"));
    }
    let (status, _, body) = admin_get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        admin_get(addr, "/healthz").await.0,
        200,
        "alive while unready"
    );
    // the node gauge follows within the 1 s sync
    eventually("regate_node_up 0", Duration::from_secs(3), || async {
        let m = metrics_text(Some(addr)).await;
        (metric_sum(&m, "regate_node_up", &[]) == 0.0).then_some(())
    })
    .await;

    for i in 0..2 {
        w.node(i).set_mode(Mode::Normal);
    }
    // without active checks a node is tried again after its back-off: a
    // request succeeds, the gateway is ready again
    eventually("ready after recovery", Duration::from_secs(10), || async {
        let ok = c.get(&w.url("/v1/bdbs"), ADMIN).await.status == 200;
        (ok && admin_get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_on_the_client_port() {
    let w = World::start().await;
    for h2 in [false, true] {
        let c = w.client(h2);
        for path in ["/metrics", "/healthz", "/readyz", "/v1/metrics"] {
            for who in [None, Some(ADMIN)] {
                let r = c.call("GET", &w.url(path), who, &[], b"").await;
                assert_eq!(r.status, 404, "{path} h2={h2} auth={}", who.is_some());
                assert_eq!(r.json()["error_code"], "not_found");
                let body = String::from_utf8_lossy(&r.body);
                assert!(!body.contains("regate_"), "{path}: {body}");
                assert!(!body.contains("# HELP"), "{path}: {body}");
            }
        }
    }
    assert!(
        w.upstream_requests().is_empty(),
        "nothing forwarded to a node"
    );
}

/// A `prometheus` child process, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: regate\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (tests/run.sh installs the prometheus package)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// `GET /api/v1/query?query=...` over HTTP/1.0 (no chunking); the JSON.
    async fn query(&self, q: &str) -> Option<serde_json::Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let q: String = q
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let req = format!("GET /api/v1/query?query={q} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8(buf).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_request_count() {
    let (w, _users) = open_world(1).await;
    let (made, _) = traffic(&w).await;
    requests_total(w.gateway.metrics_addr, made).await;
    let prom = Prometheus::start(w.gateway.metrics_addr.unwrap());
    let seen = eventually(
        "Prometheus to scrape regate_requests_total",
        Duration::from_secs(30),
        || async {
            let v = prom.query("sum(regate_requests_total)").await?;
            let value = v["data"]["result"][0]["value"][1].as_str()?.to_string();
            Some(value)
        },
    )
    .await;
    assert_eq!(seen, made.to_string());
    // the target is healthy from Prometheus's side too
    let up = prom.query("up{job=\"regate\"}").await.unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    drop(prom);
}

fn cache(text: &str) -> (f64, f64) {
    (
        metric_sum(text, "regate_auth_cache_hits_total", &[]),
        metric_sum(text, "regate_auth_cache_misses_total", &[]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_or_miss_shows_in_the_very_next_scrape() {
    let w = World::start().await;
    let scrape = || metrics_text(w.gateway.metrics_addr);
    assert_eq!(cache(&scrape().await), (0.0, 0.0), "present at 0");
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(cache(&scrape().await), (0.0, 1.0), "first sight: a miss");
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(cache(&scrape().await), (1.0, 1.0), "then a hit");
    let other = w.client(true);
    assert_eq!(other.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(
        cache(&scrape().await),
        (2.0, 1.0),
        "a hit on another connection"
    );
    assert_eq!(other.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(cache(&scrape().await), (2.0, 2.0));
}

/// Wrong passwords: each one a cache miss (refused, 401 or throttled).
async fn wrong_passwords(w: &World, n: usize) {
    let c = w.client(false);
    for i in 0..n {
        let status = c
            .get(&w.url("/v1/bdbs"), (VIEWER.0, &format!("wrong-{i}")))
            .await
            .status;
        assert!(status == 401 || status == 429, "{status}");
    }
}

fn users_file_refreshes(text: &str) -> f64 {
    metric_sum(
        text,
        "regate_identity_refresh_total",
        &[("kind", "users_file"), ("result", "ok")],
    )
}

/// Rewrites the users file and waits for the watcher to take it (`want`
/// refreshes counted in all).
async fn refresh_users_file(w: &World, want: f64) {
    std::fs::write(w.dir.path().join("users.toml"), users_toml()).unwrap();
    eventually(
        "the users-file refresh",
        Duration::from_secs(10),
        || async {
            let m = metrics_text(w.gateway.metrics_addr).await;
            (users_file_refreshes(&m) >= want).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_and_refresh_counts_survive_a_config_reload() {
    let w = World::start().await;
    let scrape = || metrics_text(w.gateway.metrics_addr);
    // before: 2 misses (M >= N below, so a copy restarting at zero would
    // lose them) and one users-file refresh
    wrong_passwords(&w, 2).await;
    assert_eq!(cache(&scrape().await).1, 2.0);
    refresh_users_file(&w, 1.0).await;

    let gw = w.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
    let m = scrape().await;
    assert_eq!(
        metric_sum(&m, "regate_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert_eq!(cache(&m).1, 2.0, "kept across the reload");
    assert_eq!(users_file_refreshes(&m), 1.0, "kept across the reload");

    // after: 3 more misses and one more refresh, by the new authenticator
    wrong_passwords(&w, 3).await;
    assert_eq!(cache(&scrape().await).1, 5.0, "N + M");
    refresh_users_file(&w, 2.0).await;
    assert_eq!(users_file_refreshes(&scrape().await), 2.0);
}
