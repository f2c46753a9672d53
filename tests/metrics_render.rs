//! The metrics registry: a populated registry passes `promtool check
//! metrics`, label cardinality stays bounded whatever paths, users or
//! nodes are thrown at it, and audit counters follow the audit log.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regate::audit::{AuditLog, AuditRecord, AuditSettings, Decision};
use regate::context::IdentitySource;
use regate::metrics::{AuthOutcome, LiveSource, LiveValues, Metrics, UpstreamErrorKind};

const ROUTES: &[&str] = &["/v1/bdbs", "/v1/bdbs/{uid}", "/v1/users", "/v1/cluster"];
const NODES: &[&str] = &["https://n1:9443", "https://n2:9443"];

/// Values the live collector reads (the gateway's in a running regate).
struct Live(Mutex<LiveValues>);

impl LiveSource for Live {
    fn live(&self) -> LiveValues {
        self.0.lock().unwrap().clone()
    }
}

/// A registry with every kind of series, and the live values it reads.
fn populated() -> (Metrics, Arc<Live>) {
    let m = Metrics::new(ROUTES, NODES).unwrap();
    let live = Arc::new(Live(Mutex::new(LiveValues {
        cache_hits: 1,
        cache_misses: 1,
        users_file: [1, 0],
        redis_fallbacks: 2,
        nodes: vec![(NODES[0].into(), true), (NODES[1].into(), false)],
        cert_not_after: Some(1_900_000_000),
        ..LiveValues::default()
    })));
    let weak: std::sync::Weak<dyn LiveSource> = Arc::downgrade(&live) as _;
    m.attach_live(weak);
    let ms = Duration::from_millis(3);
    m.observe_request(Some("/v1/bdbs"), "GET", 200, Decision::Allow, ms);
    m.observe_request(Some("/v1/bdbs/{uid}"), "DELETE", 403, Decision::Deny, ms);
    m.observe_request(Some("/v1/users"), "PUT", 200, Decision::DryRunDeny, ms);
    m.observe_request(None, "BREW", 404, Decision::Deny, ms);
    m.observe_upstream(NODES[0], ms, None);
    m.observe_upstream(NODES[1], ms, Some(UpstreamErrorKind::Timeout));
    m.observe_auth(Some(IdentitySource::File), AuthOutcome::Success);
    m.observe_auth(Some(IdentitySource::Cluster), AuthOutcome::Failure);
    m.observe_auth(None, AuthOutcome::Missing);
    m.rate_limited("user");
    m.tls_handshake_failed();
    m.connection_opened();
    m.config_reloaded(true);
    m.config_reloaded(false);
    (m, live)
}

#[test]
fn promtool_accepts_the_exposition() {
    let (m, _live) = populated();
    let text = m.render();
    for name in [
        "regate_requests_total",
        "regate_request_duration_seconds_bucket",
        "regate_policy_dry_run_denials_total",
        "regate_upstream_requests_total",
        "regate_upstream_errors_total",
        "regate_upstream_duration_seconds_bucket",
        "regate_node_up",
        "regate_auth_total",
        "regate_auth_cache_hits_total",
        "regate_auth_cache_misses_total",
        "regate_rate_limited_total",
        "regate_tls_handshake_failures_total",
        "regate_open_connections",
        "regate_audit_records_written_total",
        "regate_audit_records_dropped_total",
        "regate_audit_write_failures_total",
        "regate_config_reloads_total",
        "regate_build_info",
        "regate_tls_cert_not_after_seconds 1900000000",
        "regate_identity_refresh_total{kind=\"users_file\",result=\"ok\"} 1",
        "regate_rate_limit_backend_events_total{event=\"local_fallback\"} 2",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(text.contains(
        "regate_requests_total{decision=\"deny\",method=\"other\",route=\"unmatched\",status_class=\"4xx\"} 1"
    ));
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn labels_stay_bounded_under_random_paths_users_and_nodes() {
    let (m, _live) = populated();
    let before = m.series_count();
    for i in 0..10_000u32 {
        let raw = format!("/v1/bdbs/{i}/../../users?x={i}");
        let user = format!("user-{i}\r\n");
        let method = format!("M{}", i % 97);
        m.observe_request(
            Some(&raw),
            &method,
            (i % 600) as u16,
            Decision::Deny,
            Duration::ZERO,
        );
        m.observe_upstream(
            &format!("https://evil-{i}:1"),
            Duration::ZERO,
            Some(UpstreamErrorKind::Protocol),
        );
        m.observe_upstream(&user, Duration::ZERO, None);
        m.observe_auth(Some(IdentitySource::File), AuthOutcome::Failure);
    }
    let after = m.series_count();
    // Only the `other` route/method/status buckets and the `other` node
    // could appear: a handful of series, not thousands.
    assert!(after - before < 40, "series grew from {before} to {after}");
    let text = m.render();
    assert!(!text.contains("user-1"));
    assert!(!text.contains("evil"));
    assert!(!text.contains("?x="));
}

#[test]
fn removed_nodes_lose_their_up_series() {
    let (m, live) = populated();
    // a reload: the gateway's snapshot now lists one node
    m.set_nodes(&[NODES[0]]);
    live.0.lock().unwrap().nodes.truncate(1);
    let text = m.render();
    assert!(!text.contains("regate_node_up{node=\"https://n2:9443\"}"));
    assert!(text.contains("regate_node_up{node=\"https://n1:9443\"} 1"));
}

#[tokio::test]
async fn audit_counters_follow_the_log() {
    let m = Metrics::new(ROUTES, NODES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(AuditSettings::file(dir.path().join("a.jsonl"))).unwrap();
    m.attach_audit(log.clone());
    for _ in 0..3 {
        log.submit(&AuditRecord::default()).await;
    }
    log.shutdown().await;
    log.submit(&AuditRecord::default()).await; // refused: counted as dropped
    let text = m.render();
    assert!(
        text.contains("regate_audit_records_written_total 3"),
        "{text}"
    );
    assert!(text.contains("regate_audit_records_dropped_total 1"));
    assert!(text.contains("regate_audit_write_failures_total 0"));
    // Rendering twice does not double count.
    assert!(m.render().contains("regate_audit_records_written_total 3"));
}

/// An idle gateway exports no per-route series: with every route of the
/// built-in profile known, a fresh registry renders no duration histogram,
/// and one request creates exactly one route's series.
#[test]
fn per_route_series_appear_on_first_use() {
    let policy = regate::policy::Policy::builtin().unwrap();
    let routes: Vec<&str> = policy.routes().map(|r| r.template).collect();
    assert!(routes.len() > 200);
    let m = Metrics::new(&routes, NODES).unwrap();
    let idle = m.render();
    let series = |text: &str, name: &str| text.lines().filter(|l| l.starts_with(name)).count();
    assert_eq!(
        series(&idle, "regate_request_duration_seconds"),
        0,
        "{idle}"
    );
    let lines = idle.lines().filter(|l| !l.starts_with('#')).count();
    assert!(lines < 400, "an idle scrape has {lines} series");
    m.observe_request(
        Some(routes[0]),
        "GET",
        200,
        Decision::Allow,
        Duration::from_millis(1),
    );
    let one = m.render();
    let labelled = format!(
        "regate_request_duration_seconds_count{{route=\"{}\"}}",
        routes[0]
    );
    assert!(one.contains(&labelled), "{one}");
    assert_eq!(series(&one, "regate_request_duration_seconds_count"), 1);
}
