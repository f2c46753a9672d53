//! The real `regate run` process under the signals an operator and a
//! service manager send: SIGTERM turns `/readyz` 503 at once and keeps
//! serving for `shutdown_delay` (a second SIGTERM skips it); SIGHUP
//! reloads users, policy and certificates (a broken config is rejected and
//! counted); SIGUSR1 reopens the audit file; SIGQUIT stops gracefully; a
//! second gateway on the same address fails naming it; systemd hears
//! READY=1 and STOPPING=1; socket activation serves on the passed socket;
//! `regate healthcheck` reports readiness.

mod common;
mod proc;

use std::process::Command;
use std::time::Duration;

use common::*;
use proc::*;

fn url(addr: &str, path: &str) -> String {
    let port = addr.rsplit(':').next().unwrap();
    format!("https://localhost:{port}{path}")
}

fn healthcheck(metrics: &str) -> i32 {
    Command::new(BIN)
        .args(["healthcheck", "--addr", metrics])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_at_once_and_serves_until_the_delay_ends() {
    let site = Site::new().await;
    let cfg = site.write("regate.toml", &site.config("shutdown_delay = \"10m\"", ""));
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null());
    let mut p = Proc::from_command(cmd);
    let addr = p.wait_field("regate listening", "addr");
    let metrics = p.wait_field("metrics listening", "addr");
    let ready = p.next_notify();
    assert!(ready.starts_with("READY=1"), "{ready}");
    wait_ready(&metrics, 200);
    assert_eq!(healthcheck(&metrics), 0);

    p.signal("TERM");
    p.wait_line("shutting down");
    // at once: no wait for a drain, nor for the delay
    assert_eq!(admin_get(&metrics, "/readyz").0, 503);
    assert_eq!(admin_get(&metrics, "/healthz").0, 200);
    assert_eq!(healthcheck(&metrics), 1);
    let stopping = p.next_notify();
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    // the listener still serves new connections during the delay
    let c = TestClient::new(&site.pki.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    // a second SIGTERM skips the (10 minute) delay
    p.signal("TERM");
    p.wait_line("skipping the shutdown delay");
    assert_eq!(p.wait_exit(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_address_fails_naming_it() {
    let site = Site::new().await;
    let cfg = site.write("regate.toml", &site.config("", ""));
    let first = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    let addr = first.wait_field("regate listening", "addr");
    // same TLS address, another metrics port
    // (its own audit trail: one trail has one writer, which would refuse
    // the start before the address is even tried)
    let second_cfg = site
        .config("", "")
        .replacen("127.0.0.1:0", &addr, 1)
        .replace("path = \"audit.jsonl\"", "path = \"audit2.jsonl\"");
    let cfg2 = site.write("second.toml", &second_cfg);
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg2)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (server.listen)")),
        "{stderr}"
    );
    // the first one still has every connection
    let c = TestClient::new(&site.pki.ca_pem, false);
    for _ in 0..8 {
        assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_users_roles_and_certificate_and_rejects_a_broken_config() {
    let site = Site::new().await;
    // at first: the admin holds only db_viewer, the viewer is unknown
    site.write(
        "users.toml",
        &users_toml_for(&[(ADMIN.0, ADMIN.1, "db_viewer", Some(1))]),
    );
    // no file watching here: only the signals reload
    let cfg = site.write("regate.toml", &unwatched(&site.config("", "")));
    let p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    let addr = p.wait_field("regate listening", "addr");
    let metrics = p.wait_field("metrics listening", "addr");
    p.wait_ready_notify();
    let c = TestClient::new(&site.pki.ca_pem, false);
    let r = c.get(&url(&addr, "/v1/bdbs"), VIEWER).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["description"],
        "valid Basic credentials are required",
        "the gateway's 401"
    );
    let r = c
        .call("DELETE", &url(&addr, "/v1/bdbs/1"), Some(ADMIN), &[], b"")
        .await;
    assert_eq!(r.status, 403);

    // the admin role back, a new user, a certificate from another CA
    site.write("users.toml", &users_toml());
    let next = regate::pki::TestPki::generate().unwrap();
    site.write("server.pem", &next.cert_pem);
    site.write("server.key", &next.key_pem);
    p.signal("HUP");
    p.wait_line("configuration reloaded");
    let c2 = TestClient::new(&next.ca_pem, false);
    assert_eq!(c2.get(&url(&addr, "/v1/bdbs"), VIEWER).await.status, 200);
    let r = c2
        .call("DELETE", &url(&addr, "/v1/bdbs/1"), Some(ADMIN), &[], b"")
        .await;
    assert_eq!(r.status, 200);

    // a broken config: rejected, counted, the running one keeps serving
    site.write("regate.toml", "[server]\nlisten = 1\n");
    p.signal("HUP");
    p.wait_line("configuration reload rejected");
    let (_, m) = admin_get(&metrics, "/metrics");
    assert!(
        m.contains("regate_config_reloads_total{result=\"failure\"} 1"),
        "{m}"
    );
    assert_eq!(c2.get(&url(&addr, "/v1/bdbs"), VIEWER).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_audit_file_and_sigquit_stops_gracefully() {
    let site = Site::new().await;
    let cfg = site.write("regate.toml", &site.config("shutdown_delay = \"0s\"", ""));
    let mut p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    let addr = p.wait_field("regate listening", "addr");
    p.wait_ready_notify();
    let c = TestClient::new(&site.pki.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    let audit = site.dir.path().join("audit.jsonl");
    let rotated = site.dir.path().join("audit.jsonl.1");
    wait_for(|| lines_of(&audit) == 1);
    // what logrotate does: move the file, then signal
    std::fs::rename(&audit, &rotated).unwrap();
    p.signal("USR1");
    p.wait_line("SIGUSR1: reopening the audit file");
    assert_eq!(c.get(&url(&addr, "/v1/bdbs/1"), ADMIN).await.status, 200);
    wait_for(|| lines_of(&audit) == 1);
    assert_eq!(lines_of(&rotated), 1);

    p.signal("QUIT");
    p.wait_line("stopped");
    assert_eq!(p.wait_exit(), Some(0), "SIGQUIT is a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_on_the_passed_socket() {
    let site = Site::new().await;
    let cfg = site.write("regate.toml", &site.config("", ""));
    // a free port for systemd-socket-activate to bind
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &addr, BIN, "run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null());
    let p = Proc::from_command(cmd);
    p.wait_line(&format!("Listening on {addr}"));
    // the first connection starts regate (as systemd does on demand); it
    // waits in the kernel's queue meanwhile and is served, not refused
    let c = TestClient::new(&site.pki.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    let line = p.wait_line("socket activation: serving on the passed socket");
    assert!(line.contains(&addr), "{line}");
    let listening = p.wait_field("regate listening", "addr");
    assert_eq!(listening, addr);
    for _ in 0..4 {
        assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    }
}

fn lines_of(p: &std::path::Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Polls a condition the writer thread makes true (30 s at most).
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition never met");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON object of a log line (panics on a line that is not one).
fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_carry_the_start_summary_and_warnings() {
    let site = Site::new().await;
    let risky = site.config(
        "trusted_proxies = [\"0.0.0.0/0\"]\nshutdown_delay = \"0s\"",
        "[policy]\nmode = \"dry_run\"\n[log]\nformat = \"json\"\n",
    );
    let risky = risky.replace("[audit]\n", "[audit]\nenabled = false\n");
    let cfg = site.write("regate.toml", &risky);
    let mut p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], None);
    let start = json_line(&p.wait_line("regate starting"));
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert!(!start["revision"].as_str().unwrap().is_empty());
    assert_eq!(start["config"], cfg.to_str().unwrap());
    assert_eq!(start["nodes"], site.cluster.urls()[0].as_str());
    assert_eq!(start["policy_mode"], "dry_run");
    let listening = json_line(&p.wait_line("regate listening"));
    let addr = listening["addr"].as_str().unwrap().to_string();
    p.wait_ready_notify();
    let c = TestClient::new(&site.pki.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    p.signal("TERM");
    assert_eq!(p.wait_exit(), Some(0));
    let lines = p.seen.lock().unwrap().clone();
    let parsed: Vec<serde_json::Value> = lines.iter().map(|l| json_line(l)).collect();
    let warnings: Vec<&str> = parsed
        .iter()
        .filter(|v| v["level"] == "WARN")
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    for needle in [
        "policy.mode = \"dry_run\"",
        "audit.enabled = false",
        "server.trusted_proxies covers every address",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(needle)),
            "no warning about {needle}: {warnings:?}"
        );
    }
    // no credential reaches the log
    assert!(!lines.iter().any(|l| l.contains(ADMIN.1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_applies_and_rust_log_wins_over_it() {
    let site = Site::new().await;
    let cfg_text = site.config(
        "shutdown_delay = \"0s\"",
        "[log]\nlevel = \"warn\"\n[policy]\nmode = \"dry_run\"\n",
    );
    let cfg = site.write("regate.toml", &cfg_text);
    // level = "warn": the start warning, no info line
    let mut p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], None);
    p.wait_line("dry_run");
    p.wait_ready_notify();
    p.signal("TERM");
    assert_eq!(p.wait_exit(), Some(0));
    let seen = p.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|l| !l.contains(" INFO ")), "{seen:?}");
    // RUST_LOG=info wins over level = "warn"
    let mut p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    p.wait_line("regate listening");
    p.wait_ready_notify();
    p.signal("TERM");
    assert_eq!(p.wait_exit(), Some(0));
}

#[tokio::test]
async fn an_idle_scrape_has_process_series_zeroed_alert_counters_and_the_certificate_expiry() {
    let w = World::start().await;
    let m = w.gateway.gateway.metrics.render();
    for needle in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "regate_config_reloads_total{result=\"failure\"} 0",
        "regate_config_reloads_total{result=\"success\"} 0",
        "regate_connections_refused_total{reason=\"max_connections\"} 0",
        "regate_connections_refused_total{reason=\"max_connections_per_ip\"} 0",
        "regate_audit_write_failures_total 0",
        "regate_tls_handshake_failures_total 0",
    ] {
        assert!(m.contains(needle), "`{needle}` missing:\n{m}");
    }
    let build = format!(
        "regate_build_info{{revision=\"{}\",version=\"{}\"}} 1",
        regate::ops::startup::REVISION,
        env!("CARGO_PKG_VERSION")
    );
    assert!(m.contains(&build), "`{build}` missing");
    // the gauge is filled by the once-a-second sync: wait for it, then
    // compare with the served certificate's notAfter
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(w.pki.cert_pem.as_bytes()).unwrap();
    let want = regate::config::files::validity(&der).unwrap().not_after;
    let line = format!("regate_tls_cert_not_after_seconds {want}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !w.gateway.gateway.metrics.render().contains(&line) {
        assert!(
            std::time::Instant::now() < deadline,
            "`{line}` never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unwatched(cfg: &str) -> String {
    cfg.replace(
        "key = \"server.key\"\n",
        "key = \"server.key\"\nwatch_interval = \"0s\"\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_signal_and_a_broken_one_is_not() {
    let site = Site::new().await;
    let cfg = site.config("", "").replace(
        "key = \"server.key\"\n",
        "key = \"server.key\"\nwatch_interval = \"100ms\"\n",
    );
    let cfg = site.write("regate.toml", &cfg);
    let p = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], Some("info"));
    let addr = p.wait_field("regate listening", "addr");
    p.wait_ready_notify();
    // as an ACME client or cert-manager renews: new files, no signal
    let next = regate::pki::TestPki::generate().unwrap();
    site.write("server.pem", &next.cert_pem);
    site.write("server.key", &next.key_pem);
    p.wait_line("TLS files changed: reloading");
    p.wait_line("configuration reloaded");
    let c = TestClient::new(&next.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
    // a broken certificate: rejected, the renewed one keeps serving
    site.write("server.pem", "not a certificate\n");
    p.wait_line("TLS files changed: reloading");
    p.wait_line("configuration reload rejected");
    let c = TestClient::new(&next.ca_pem, false);
    assert_eq!(c.get(&url(&addr, "/v1/bdbs"), ADMIN).await.status, 200);
}
