//! SIGHUP and the `[audit]` section: a new path closes the old file with a
//! checkpoint and the chain continues in the new one (both verify as one
//! trail with the key); keys that need a restart are reported, never
//! applied in silence; a new file that holds another trail is refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use regate::audit::seal::Sealer;
use regate::audit::{
    verify_with, AnchorSettings, AuditLog, AuditRecord, AuditSettings, Fsync, SealSettings,
    VerifyOptions,
};

async fn reload(w: &World) {
    let gw = w.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_reload_that_moves_the_trail_continues_the_chain() {
    let keys = tempfile::tempdir().unwrap();
    let regate::audit::seal::Keys {
        private, public, ..
    } = regate::audit::seal::keygen(keys.path()).unwrap();
    let w = World::with(Setup {
        extra: format!(
            "[audit]\npath = \"a.jsonl\"\nfsync = \"always\"\nsigning_key = \"{}\"\ncheckpoint_sink = \"file:cp.log\"\n",
            private.display()
        ),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    for _ in 0..3 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    }
    // records are queued once a response ends: wait until all 3 are written
    while w.gateway.gateway.audit.stats().written < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    std::fs::write(
        &w.config_path,
        text.replace("path = \"a.jsonl\"", "path = \"b.jsonl\""),
    )
    .unwrap();
    reload(&w).await;
    for _ in 0..2 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    }
    let World { dir, gateway, .. } = w;
    gateway.shutdown().await;

    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let a_lines = std::fs::read_to_string(&a).unwrap();
    let b_lines = std::fs::read_to_string(&b).unwrap();
    assert!(
        a_lines
            .lines()
            .last()
            .unwrap()
            .starts_with("{\"checkpoint\":3,"),
        "the old file is closed sealed: {a_lines}"
    );
    assert!(b_lines.starts_with("{\"seq\":4,"), "{b_lines}");
    let opts = VerifyOptions {
        keys: vec![regate::audit::seal::VerifyKey::load(&public).unwrap()],
        checkpoints: Some(dir.path().join("cp.log")),
        seed: None,
    };
    let report = verify_with(&[b, a], &opts).unwrap();
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (5, Some(1), Some(5))
    );
    assert_eq!(report.unsealed, None);
}

fn record() -> AuditRecord<'static> {
    AuditRecord {
        request_id: "r",
        method: "GET",
        status: 200,
        ..AuditRecord::default()
    }
}

#[tokio::test]
async fn every_key_is_applied_or_named_as_needing_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = AuditSettings::file(dir.path().join("a.jsonl"));
    let log = AuditLog::open(first.clone()).unwrap();
    log.submit(&record()).await;

    // Needs a restart: not applied, not reported as applied.
    let mut next = first.clone();
    next.queue_capacity = 16;
    assert!(log.reconfigure(&next).is_empty());

    let (sealer, _) = Sealer::generate().unwrap();
    let mut next = first.clone();
    next.fsync = Fsync::Always;
    next.required = true;
    next.body_digest = true;
    next.on_full = regate::audit::OnFull::Drop;
    next.seal = Some(SealSettings {
        sealer: Arc::new(sealer),
        interval: Duration::from_secs(1),
        records: 10,
        anchor: AnchorSettings::File(dir.path().join("cp.log")),
        forward: None,
    });
    if let regate::audit::SinkSettings::File {
        max_bytes, keep, ..
    } = &mut next.sink
    {
        *max_bytes = 8192;
        *keep = 2;
    }
    let applied = log.reconfigure(&next);
    assert_eq!(
        applied,
        [
            "audit.max_bytes/keep",
            "audit.on_full",
            "audit.required",
            "audit.body_digest",
            "audit.fsync",
            "audit.signing_key/checkpoint_*"
        ]
    );
    // applied once: the same settings again change nothing
    assert!(log.reconfigure(&next).is_empty());

    // A file that already holds another trail is refused; the old one stays.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"seq\":1}\n").unwrap();
    let mut moved = next.clone();
    moved.sink = regate::audit::SinkSettings::File {
        path: other.clone(),
        max_bytes: 8192,
        keep: 2,
    };
    assert!(log.reconfigure(&moved).is_empty());
    log.submit(&record()).await;
    log.shutdown().await;
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "{\"seq\":1}\n");
    let a = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    // the signing key took effect: the trail ends sealed
    assert!(
        a.lines().last().unwrap().starts_with("{\"checkpoint\":2,"),
        "{a}"
    );
}

#[tokio::test]
async fn logrotate_then_sighup_leaves_the_old_file_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sealer, _) = Sealer::generate().unwrap();
    let key = sealer.verify_key();
    let mut s = AuditSettings::file(&path);
    s.seal = Some(SealSettings {
        sealer: Arc::new(sealer),
        interval: Duration::from_secs(3600),
        records: 100,
        anchor: AnchorSettings::File(dir.path().join("cp.log")),
        forward: None,
    });
    let log = AuditLog::open(s).unwrap();
    for _ in 0..3 {
        log.submit(&record()).await;
    }
    // wait until the writer has the 3 records on disk, then rotate away
    while log.stats().written < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let old = dir.path().join("audit.jsonl-20261206");
    std::fs::rename(&path, &old).unwrap();
    log.reopen();
    for _ in 0..2 {
        log.submit(&record()).await;
    }
    log.shutdown().await;
    let old_text = std::fs::read_to_string(&old).unwrap();
    assert!(
        old_text
            .lines()
            .last()
            .unwrap()
            .starts_with("{\"checkpoint\":3,"),
        "{old_text}"
    );
    let new_text = std::fs::read_to_string(&path).unwrap();
    assert!(new_text.starts_with("{\"seq\":4,"), "{new_text}");
    let opts = VerifyOptions {
        keys: vec![key],
        checkpoints: Some(dir.path().join("cp.log")),
        seed: None,
    };
    let report = verify_with(&[old, path], &opts).unwrap();
    assert_eq!((report.records, report.checkpoints), (5, 2));
}

#[tokio::test]
async fn a_key_rotation_hands_over_on_one_head_and_verifies_with_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let seal = |sealer: Sealer| SealSettings {
        sealer: Arc::new(sealer),
        interval: Duration::from_secs(3600),
        records: 100,
        anchor: AnchorSettings::File(dir.path().join("cp.log")),
        forward: None,
    };
    let (old, _) = Sealer::generate().unwrap();
    let (new, _) = Sealer::generate().unwrap();
    let (old_key, new_key) = (old.verify_key(), new.verify_key());
    let mut s = AuditSettings::file(&path);
    s.seal = Some(seal(old));
    let log = AuditLog::open(s.clone()).unwrap();
    for _ in 0..3 {
        log.submit(&record()).await;
    }
    while log.stats().written < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.seal = Some(seal(new));
    assert_eq!(log.reconfigure(&s), ["audit.signing_key/checkpoint_*"]);
    // the writer applies it at its next turn: wait for the hand-over
    let count = || {
        std::fs::read_to_string(&path)
            .unwrap()
            .matches("{\"checkpoint\":")
            .count()
    };
    while count() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..2 {
        log.submit(&record()).await;
    }
    log.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let cps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("{\"checkpoint\":"))
        .collect();
    // old key, then new key, on the same head; then the shutdown seal
    assert_eq!(cps.len(), 3, "{text}");
    assert!(cps[0].contains(old_key.id()) && cps[1].contains(new_key.id()));
    assert_eq!(cps[0][..20], cps[1][..20]);
    let both = VerifyOptions {
        keys: vec![old_key, new_key.clone()],
        ..VerifyOptions::default()
    };
    assert_eq!(
        verify_with(std::slice::from_ref(&path), &both)
            .unwrap()
            .checkpoints,
        3
    );
    let only_new = VerifyOptions {
        keys: vec![new_key],
        ..VerifyOptions::default()
    };
    assert!(matches!(
        verify_with(&[path], &only_new),
        Err(regate::audit::VerifyError::Broken {
            problem: regate::audit::Break::Forged { .. },
            ..
        })
    ));
}
