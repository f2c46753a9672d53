//! The audit log end to end through a real file: one intact line per
//! submitted record under concurrency, shutdown flushing, rotation keeping
//! `keep` files, the chain across rotation and restarts, drop counting,
//! and health when the sink cannot be written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regate::audit::sink::rotated_path;
use regate::audit::{
    verify, AuditLog, AuditRecord, AuditSettings, Decision, Fsync, OnFull, SinkSettings, Submitted,
};

fn record(id: &str) -> AuditRecord<'_> {
    AuditRecord {
        time: std::time::SystemTime::now(),
        request_id: id,
        client_ip: "192.0.2.7".parse().unwrap(),
        client_port: 50123,
        tls_version: "TLSv1.3",
        user: Some("alice"),
        role: Some("db_viewer"),
        method: "GET",
        path: Some("/v1/bdbs"),
        raw_path: b"/v1/bdbs",
        route: Some("/v1/bdbs"),
        decision: Decision::Allow,
        status: 200,
        ..AuditRecord::default()
    }
}

fn settings(path: &Path, f: impl FnOnce(&mut AuditSettings)) -> AuditSettings {
    let mut s = AuditSettings::file(path);
    f(&mut s);
    s
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read(path).unwrap();
    assert!(text.is_empty() || text.ends_with(b"\n"), "torn tail");
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("every line is one JSON object"))
        .collect()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_give_exactly_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // A small queue so submitters really wait on back-pressure.
    let log = AuditLog::open(settings(&path, |s| s.queue_capacity = 16)).unwrap();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let id = format!("t{t}-r{i}");
                assert_eq!(log.submit(&record(&id)).await, Submitted::Queued);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.shutdown().await;
    let recs = lines(&path);
    assert_eq!(recs.len(), 2000);
    let ids: HashSet<&str> = recs.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2000, "every record exactly once");
    let stats = log.stats();
    assert_eq!(
        (stats.accepted, stats.written, stats.dropped, stats.failed),
        (2000, 2000, 0, 0)
    );
    let report = verify(&[path]).unwrap();
    assert_eq!(report.records, 2000);
    assert!(report.from_genesis);
    assert_eq!(report.head, stats.head);
    assert_eq!(report.last_seq, Some(2000));
}

#[tokio::test]
async fn shutdown_flushes_everything_even_with_a_long_fsync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(settings(&path, |s| {
        s.fsync = Fsync::Every(Duration::from_secs(3600))
    }))
    .unwrap();
    for i in 0..1000 {
        assert_eq!(log.try_submit(&record(&i.to_string())), Submitted::Queued);
    }
    log.shutdown().await;
    assert_eq!(lines(&path).len(), 1000);
    // After shutdown, records are refused and counted.
    assert_eq!(log.submit(&record("late")).await, Submitted::Closed);
    assert_eq!(log.stats().dropped, 1);
}

#[tokio::test]
async fn rotation_keeps_n_files_and_the_chain_crosses_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = |keep| SinkSettings::File {
        path: path.clone(),
        max_bytes: 4096,
        keep,
    };
    let log = AuditLog::open(settings(&path, |s| s.sink = sink(3))).unwrap();
    for i in 0..200 {
        log.submit(&record(&format!("r{i}"))).await;
    }
    log.shutdown().await;
    let files: Vec<PathBuf> = [3, 2, 1]
        .iter()
        .map(|n| rotated_path(&path, *n))
        .chain([path.clone()])
        .collect();
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 4096, "{} is {len} bytes", f.display());
    }
    assert!(
        !rotated_path(&path, 4).exists(),
        "only `keep` rotated files"
    );
    // Passed in glob order, not chain order: verify sorts them.
    let mut glob_order = files.clone();
    glob_order.sort();
    let report = verify(&glob_order).unwrap();
    assert_eq!(report.last_seq, Some(200));
    assert!(!report.from_genesis, "older files were rotated away");
    assert_eq!(
        report
            .files
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
        files
    );
}

#[tokio::test]
async fn chain_survives_every_rotation_when_all_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(settings(&path, |s| {
        s.sink = SinkSettings::File {
            path: path.clone(),
            max_bytes: 4096,
            keep: 1000,
        }
    }))
    .unwrap();
    for i in 0..200 {
        log.submit(&record(&format!("r{i}"))).await;
    }
    log.shutdown().await;
    let mut files = vec![path.clone()];
    let mut n = 1;
    while rotated_path(&path, n).exists() {
        files.push(rotated_path(&path, n));
        n += 1;
    }
    assert!(
        files.len() > 5,
        "expected several rotations, got {}",
        files.len()
    );
    let report = verify(&files).unwrap();
    assert_eq!(report.records, 200);
    assert!(report.from_genesis);
}

#[tokio::test]
async fn chain_continues_across_restart_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    for round in 0..2 {
        let log = AuditLog::open(settings(&path, |_| {})).unwrap();
        for i in 0..10 {
            log.submit(&record(&format!("{round}-{i}"))).await;
        }
        log.shutdown().await;
    }
    // Crash mid-write: a torn tail is cut off on the next open.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":21,\"prev\":\"ab");
    std::fs::write(&path, &bytes).unwrap();

    let log = AuditLog::open(settings(&path, |_| {})).unwrap();
    log.submit(&record("after-crash")).await;
    // logrotate-style external rotation, then SIGHUP.
    wait_until("the write", || log.stats().written == 1).await;
    let moved = dir.path().join("audit.jsonl.old");
    std::fs::rename(&path, &moved).unwrap();
    log.reopen();
    log.submit(&record("after-reopen")).await;
    log.shutdown().await;

    let report = verify(&[moved, path.clone()]).unwrap();
    assert_eq!(report.records, 22);
    assert!(report.from_genesis);
    assert_eq!(lines(&path)[0]["id"], "after-reopen");
}

#[tokio::test]
async fn drop_mode_counts_every_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(settings(&path, |s| {
        s.queue_capacity = 1;
        s.on_full = OnFull::Drop;
        s.fsync = Fsync::Always;
    }))
    .unwrap();
    // Deterministic: hold the only slot, then submit.
    let slot = log.reserve().await;
    assert_eq!(log.try_submit(&record("a")), Submitted::Dropped);
    assert_eq!(log.submit(&record("b")).await, Submitted::Dropped);
    assert_eq!(slot.submit(&record("c")), Submitted::Queued);
    // And under a burst: every record is either written or counted.
    let mut outcomes = (0u64, 0u64);
    for i in 0..3000 {
        match log.try_submit(&record(&i.to_string())) {
            Submitted::Queued => outcomes.0 += 1,
            Submitted::Dropped => outcomes.1 += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    log.shutdown().await;
    let s = log.stats();
    assert_eq!(s.accepted, outcomes.0 + 1);
    assert_eq!(s.dropped, outcomes.1 + 2);
    assert_eq!(s.written, s.accepted);
    assert_eq!(lines(&path).len() as u64, s.written);
    verify(&[path]).unwrap();
}

#[tokio::test]
async fn block_mode_try_submit_reports_would_block_without_counting() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(&dir.path().join("a.jsonl"), |s| {
        s.queue_capacity = 1
    }))
    .unwrap();
    let slot = log.reserve().await;
    assert_eq!(log.try_submit(&record("x")), Submitted::WouldBlock);
    drop(slot);
    assert_eq!(log.try_submit(&record("x")), Submitted::Queued);
    log.shutdown().await;
    let s = log.stats();
    assert_eq!((s.written, s.dropped), (1, 0));
}

#[tokio::test]
async fn required_sink_on_a_full_disk_is_unhealthy() {
    let log = AuditLog::open(settings(Path::new("/dev/full"), |s| s.required = true)).unwrap();
    assert!(log.healthy());
    log.submit(&record("x")).await;
    wait_until("unhealthy", || !log.healthy()).await;
    log.shutdown().await;
    let s = log.stats();
    assert_eq!((s.written, s.failed), (0, 1));
    assert!(!s.sink_ok);
}

#[tokio::test]
async fn optional_sink_failing_stays_healthy_but_counts() {
    let log = AuditLog::open(settings(Path::new("/dev/full"), |_| {})).unwrap();
    for i in 0..5 {
        log.submit(&record(&i.to_string())).await;
    }
    log.shutdown().await;
    let s = log.stats();
    assert!(log.healthy());
    assert_eq!((s.failed, s.sink_ok), (5, false));
}

#[tokio::test]
async fn removed_directory_makes_a_required_log_unhealthy_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("audit.jsonl");
    let log = AuditLog::open(settings(&path, |s| s.required = true)).unwrap();
    log.submit(&record("before")).await;
    wait_until("first write", || log.stats().written == 1).await;
    std::fs::remove_dir_all(&sub).unwrap();
    log.submit(&record("lost")).await;
    wait_until("unhealthy", || !log.healthy()).await;
    assert_eq!(log.stats().failed, 1);
    std::fs::create_dir(&sub).unwrap();
    log.submit(&record("back")).await;
    wait_until("healthy again", || log.healthy()).await;
    log.shutdown().await;
    let recs = lines(&path);
    assert_eq!(recs.len(), 1);
    // The chain links to the last record actually written (in the deleted file).
    assert_eq!(recs[0]["seq"], 2);
}

#[tokio::test]
async fn disabled_log_accepts_nothing() {
    let mut s = AuditSettings::file("/nonexistent/never-created");
    s.enabled = false;
    let log = AuditLog::open(s).unwrap();
    assert_eq!(log.submit(&record("x")).await, Submitted::Disabled);
    log.shutdown().await;
    assert!(log.healthy());
}

#[tokio::test]
async fn dropping_every_handle_still_drains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(settings(&path, |_| {})).unwrap());
    for i in 0..100 {
        log.try_submit(&record(&i.to_string()));
    }
    drop(log);
    wait_until("drain", || {
        std::fs::read(&path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) == 100
    })
    .await;
}
