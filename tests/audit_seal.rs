//! Signed checkpoints against the forgeries an attacker holding the file
//! (but not the signing key) would try: edit + re-chain, delete +
//! re-chain, stripping checkpoints, a cut tail (caught with the second
//! sink), swapped rotated files, a checkpoint signed by another key and a
//! replayed old checkpoint. Each fails `verify_with` and names the first
//! bad record; the untouched trail, a restart and a torn tail verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regate::audit::json::hex;
use regate::audit::seal::{Sealer, VerifyKey};
use regate::audit::sink::rotated_path;
use regate::audit::{
    verify_with, AnchorSettings, AuditLog, AuditRecord, AuditSettings, Break, SealSettings,
    VerifyError, VerifyOptions,
};
use sha2::{Digest, Sha256};

/// Checkpoints every 5 records; the interval is long enough never to fire.
fn sealed(path: &Path, sealer: &Arc<Sealer>, anchor: &Path) -> AuditSettings {
    let mut s = AuditSettings::file(path);
    s.seal = Some(SealSettings {
        sealer: sealer.clone(),
        interval: Duration::from_secs(3600),
        records: 5,
        anchor: AnchorSettings::File(anchor.to_path_buf()),
        forward: None,
    });
    s
}

async fn write(settings: AuditSettings, from: usize, n: usize) {
    let log = AuditLog::open(settings).unwrap();
    for i in from..from + n {
        let id = format!("req-{i}");
        let user = format!("user-{i}");
        log.submit(&AuditRecord {
            request_id: &id,
            user: Some(&user),
            method: "DELETE",
            raw_path: b"/v1/bdbs/7",
            status: 200,
            ..AuditRecord::default()
        })
        .await;
    }
    log.shutdown().await;
}

struct Trail {
    _dir: tempfile::TempDir,
    path: PathBuf,
    anchor: PathBuf,
    key: VerifyKey,
}

impl Trail {
    async fn new(n: usize) -> Trail {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let anchor = dir.path().join("checkpoints.log");
        let (sealer, _) = Sealer::generate().unwrap();
        let key = sealer.verify_key();
        write(sealed(&path, &Arc::new(sealer), &anchor), 0, n).await;
        Trail {
            _dir: dir,
            path,
            anchor,
            key,
        }
    }

    fn lines(&self) -> Vec<String> {
        read_lines(&self.path)
    }

    fn keyed(&self) -> VerifyOptions {
        VerifyOptions {
            keys: vec![self.key.clone()],
            checkpoints: None,
            seed: None,
        }
    }

    fn with_anchor(&self) -> VerifyOptions {
        VerifyOptions {
            keys: vec![self.key.clone()],
            checkpoints: Some(self.anchor.clone()),
            seed: None,
        }
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn is_cp(line: &str) -> bool {
    line.starts_with("{\"checkpoint\":")
}

/// What an attacker with ten lines of Python does: renumber `seq`,
/// recompute every `prev`, and (when `fix_checkpoints`) point each
/// checkpoint at the new head. The signatures stay as they were: the
/// attacker has no key.
fn rechain(lines: &[String], fix_checkpoints: bool) -> Vec<String> {
    let mut seq = 0u64;
    let mut prev = [0u8; 32];
    let mut out = Vec::new();
    for line in lines {
        if is_cp(line) {
            if fix_checkpoints {
                let rest = &line[line.find(",\"time\"").unwrap()..];
                out.push(format!(
                    "{{\"checkpoint\":{seq},\"head\":\"{}\"{rest}",
                    hex(&prev)
                ));
            } else {
                out.push(line.clone());
            }
            continue;
        }
        seq += 1;
        let rest = &line[line.find(",\"time\"").unwrap()..];
        let new = format!("{{\"seq\":{seq},\"prev\":\"{}\"{rest}", hex(&prev));
        prev = Sha256::digest(new.as_bytes()).into();
        out.push(new);
    }
    out
}

fn broken(paths: &[PathBuf], opts: &VerifyOptions) -> (PathBuf, u64, Break, String) {
    match verify_with(paths, opts) {
        Err(e @ VerifyError::Broken { .. }) => {
            let text = e.to_string();
            let VerifyError::Broken {
                path,
                line,
                problem,
            } = e
            else {
                unreachable!()
            };
            (path, line, problem, text)
        }
        other => panic!("expected a break, got {other:?}"),
    }
}

/// Where record `seq` sits in `lines` (1-based line number).
fn line_of(lines: &[String], seq: u64) -> u64 {
    let want = format!("{{\"seq\":{seq},");
    lines.iter().position(|l| l.starts_with(&want)).unwrap() as u64 + 1
}

#[tokio::test]
async fn an_untouched_sealed_trail_verifies_with_the_key_and_the_second_sink() {
    let t = Trail::new(12).await;
    let lines = t.lines();
    // checkpoints after seq 5, 10 and at shutdown (12)
    let cps: Vec<&String> = lines.iter().filter(|l| is_cp(l)).collect();
    assert_eq!(cps.len(), 3, "{lines:#?}");
    assert!(cps[0].starts_with("{\"checkpoint\":5,"));
    assert!(lines.last().unwrap().starts_with("{\"checkpoint\":12,"));
    let report = verify_with(std::slice::from_ref(&t.path), &t.with_anchor()).unwrap();
    assert_eq!((report.records, report.checkpoints), (12, 3));
    assert_eq!(report.unsealed, None);
    assert_eq!(
        report.anchors.map(|a| a.0),
        Some(1),
        "the newest checkpoint was shipped"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!("signed by key {}", t.key.id())),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");
}

#[tokio::test]
async fn edit_and_rechain_fails_and_names_the_first_unsealed_record() {
    let t = Trail::new(20).await;
    let mut lines = t.lines();
    let at = line_of(&lines, 7) as usize - 1;
    lines[at] = lines[at].replace("\"status\":200", "\"status\":201");

    // Checkpoints left alone: their signed heads no longer match.
    rewrite(&t.path, &rechain(&lines, false));
    let (path, line, problem, text) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!((path.clone(), line), (t.path.clone(), 12), "{text}");
    assert_eq!(
        problem,
        Break::Rechained {
            first: Some((6, t.path.clone(), 7))
        }
    );
    assert!(text.contains("seq 6"), "{text}");

    // Checkpoints re-pointed at the new heads: the chain alone is fooled,
    // the signature is not.
    let forged = rechain(&lines, true);
    rewrite(&t.path, &forged);
    let plain = verify_with(std::slice::from_ref(&t.path), &VerifyOptions::default()).unwrap();
    assert!(plain.to_string().contains("cannot detect"), "{plain}");
    let (_, line, problem, text) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!(line, 12);
    assert!(
        matches!(
            problem,
            Break::Forged {
                first: Some((6, _, 7)),
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("signature does not verify"), "{text}");

    // Checkpoints after the edit removed: too many records go unsealed.
    let stripped: Vec<String> = forged
        .iter()
        .enumerate()
        .filter(|(i, l)| !(is_cp(l) && *i > at))
        .map(|(_, l)| l.clone())
        .collect();
    rewrite(&t.path, &stripped);
    let (_, line, problem, _) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!(line, 7);
    assert!(matches!(
        problem,
        Break::Unsealed {
            records: 15,
            every: 5,
            ..
        }
    ));

    // All of them removed: nothing is sealed.
    let none: Vec<String> = forged.iter().filter(|l| !is_cp(l)).cloned().collect();
    rewrite(&t.path, &none);
    let (_, _, problem, _) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!(problem, Break::NoCheckpoint);
}

#[tokio::test]
async fn delete_and_rechain_fails() {
    let t = Trail::new(20).await;
    let mut lines = t.lines();
    lines.remove(line_of(&lines, 12) as usize - 1);
    rewrite(&t.path, &rechain(&lines, true));
    let (_, line, problem, text) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert!(
        matches!(
            problem,
            Break::Forged {
                first: Some((11, _, 13)),
                ..
            }
        ),
        "{text}"
    );
    // the checkpoint that sealed seq 15 (now pointed at 14)
    assert_eq!(line, 17);
}

#[tokio::test]
async fn a_cut_tail_is_found_with_the_second_sink() {
    let t = Trail::new(20).await;
    let lines = t.lines();
    // Cut right after the checkpoint of seq 15: the trail alone is consistent.
    let end = lines
        .iter()
        .position(|l| l.starts_with("{\"checkpoint\":15,"))
        .unwrap();
    rewrite(&t.path, &lines[..=end]);
    let alone = verify_with(std::slice::from_ref(&t.path), &t.keyed()).unwrap();
    assert!(alone.to_string().contains("no --checkpoints"), "{alone}");
    let (path, _, problem, text) = broken(std::slice::from_ref(&t.path), &t.with_anchor());
    assert_eq!(path, t.anchor);
    assert_eq!(
        problem,
        Break::Truncated {
            ends: 15,
            sealed: 20
        }
    );
    assert!(text.contains("from seq 16 on were cut off"), "{text}");
}

#[tokio::test]
async fn a_rewritten_trail_disagrees_with_the_second_sink() {
    let t = Trail::new(10).await;
    let mut lines = t.lines();
    lines[1] = lines[1].replace("user-1", "nobody");
    // Even a trail whose own checkpoints were stripped and left unsealed
    // below the limit cannot hide from the shipped checkpoint.
    let none: Vec<String> = rechain(&lines, true)
        .into_iter()
        .filter(|l| !is_cp(l))
        .collect();
    rewrite(&t.path, &none);
    let opts = VerifyOptions {
        keys: vec![],
        checkpoints: Some(t.anchor.clone()),
        seed: None,
    };
    let (path, line, problem, _) = broken(std::slice::from_ref(&t.path), &opts);
    assert_eq!((path, line), (t.path.clone(), 10));
    assert!(matches!(problem, Break::Rewritten { seq: 10, .. }));
}

#[tokio::test]
async fn swapped_rotated_files_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let anchor = dir.path().join("cp.log");
    let (sealer, _) = Sealer::generate().unwrap();
    let key = sealer.verify_key();
    let mut s = sealed(&path, &Arc::new(sealer), &anchor);
    if let regate::audit::SinkSettings::File { max_bytes, .. } = &mut s.sink {
        *max_bytes = 4096;
    }
    write(s, 0, 60).await;
    let files: Vec<PathBuf> = (1..=10)
        .rev()
        .map(|n| rotated_path(&path, n))
        .filter(|f| f.exists())
        .chain([path.clone()])
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    let opts = VerifyOptions {
        keys: vec![key],
        checkpoints: Some(anchor),
        seed: None,
    };
    // every rotated file ends with a checkpoint
    for f in &files[..files.len() - 1] {
        assert!(is_cp(read_lines(f).last().unwrap()), "{}", f.display());
    }
    let ok = verify_with(&files, &opts).unwrap();
    assert_eq!(ok.records, 60);

    let (one, two) = (rotated_path(&path, 1), rotated_path(&path, 2));
    let tmp = dir.path().join("tmp");
    std::fs::rename(&one, &tmp).unwrap();
    std::fs::rename(&two, &one).unwrap();
    std::fs::rename(&tmp, &two).unwrap();
    let (bad, _, problem, text) = broken(&files, &opts);
    assert_eq!(bad, two);
    assert_eq!(problem, Break::FileOrder { older: one });
    assert!(text.contains("out of order"), "{text}");
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_forged() {
    let t = Trail::new(10).await;
    let mut lines = t.lines();
    let (other, _) = Sealer::generate().unwrap();
    let at = lines.iter().position(|l| is_cp(l)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&lines[at]).unwrap();
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v["head"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap();
    }
    let mut line = Vec::new();
    other.seal(
        &regate::audit::chain::ChainHead { seq: 5, hash },
        5,
        std::time::SystemTime::now(),
        &mut line,
    );
    lines[at] = String::from_utf8(line).unwrap().trim_end().to_string();
    rewrite(&t.path, &lines);
    let (_, line, problem, text) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!(line, at as u64 + 1);
    assert!(matches!(
        problem,
        Break::Forged {
            first: Some((1, _, 1)),
            ..
        }
    ));
    assert!(text.contains("another key"), "{text}");
}

#[tokio::test]
async fn a_replayed_old_checkpoint_is_misplaced() {
    let t = Trail::new(20).await;
    let lines = t.lines();
    // Records 11..15 edited, their checkpoint replaced by the old one of seq 5.
    let old = lines
        .iter()
        .find(|l| l.starts_with("{\"checkpoint\":5,"))
        .unwrap()
        .clone();
    let at = lines
        .iter()
        .position(|l| l.starts_with("{\"checkpoint\":15,"))
        .unwrap();
    let mut forged = lines.clone();
    forged[at] = old;
    rewrite(&t.path, &forged);
    let (_, line, problem, _) = broken(std::slice::from_ref(&t.path), &t.keyed());
    assert_eq!(line, at as u64 + 1);
    assert_eq!(
        problem,
        Break::Misplaced {
            covers: 5,
            after: 15
        }
    );
}

#[tokio::test]
async fn a_torn_tail_and_a_restart_still_verify() {
    let t = Trail::new(7).await;
    // kill -9 in the middle of a write: half a line at the end
    let mut text = std::fs::read_to_string(&t.path).unwrap();
    text.push_str("{\"seq\":8,\"prev\":\"00");
    std::fs::write(&t.path, &text).unwrap();
    let report = verify_with(std::slice::from_ref(&t.path), &t.with_anchor()).unwrap();
    assert_eq!(report.records, 7);
    assert!(report.torn.is_some());

    // An unsealed trail (written without a key) is sealed on the next start.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    write(AuditSettings::file(&path), 0, 3).await;
    let (sealer, _) = Sealer::generate().unwrap();
    let key = sealer.verify_key();
    let anchor = dir.path().join("cp");
    write(sealed(&path, &Arc::new(sealer), &anchor), 3, 2).await;
    let lines = read_lines(&path);
    assert!(lines[3].starts_with("{\"checkpoint\":3,"), "{lines:#?}");
    let opts = VerifyOptions {
        keys: vec![key],
        checkpoints: Some(anchor),
        seed: None,
    };
    let report = verify_with(&[path], &opts).unwrap();
    assert_eq!((report.records, report.checkpoints), (5, 2));
}

#[tokio::test]
async fn the_interval_seals_a_quiet_trail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let anchor = dir.path().join("cp");
    let (sealer, _) = Sealer::generate().unwrap();
    let mut s = sealed(&path, &Arc::new(sealer), &anchor);
    if let Some(seal) = &mut s.seal {
        seal.interval = Duration::from_millis(20);
        seal.records = 1000;
    }
    let log = AuditLog::open(s).unwrap();
    log.submit(&AuditRecord {
        request_id: "one",
        method: "GET",
        status: 200,
        ..AuditRecord::default()
    })
    .await;
    // No shutdown: the interval alone must write the checkpoint and, once
    // synced (fsync "1s"), ship it.
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&anchor)
        .unwrap_or_default()
        .contains("{\"checkpoint\":1,")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no checkpoint shipped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(read_lines(&path)[1].starts_with("{\"checkpoint\":1,"));
    log.shutdown().await;
}

#[tokio::test]
async fn a_second_writer_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let first = AuditLog::open(AuditSettings::file(&path)).unwrap();
    let err = match AuditLog::open(AuditSettings::file(&path)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second writer was allowed"),
    };
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("locked by another process"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    first.shutdown().await;
    drop(first);
    // once the first is gone, the path is free again
    let again = AuditLog::open(AuditSettings::file(&path)).unwrap();
    again.shutdown().await;
}

/// Re-seals every checkpoint after line index `from` with the signing key
/// and a forward-secure key labelled `epoch`, `epoch + 1`...
fn reseal(
    lines: &[String],
    from: usize,
    sealer: &Sealer,
    key: &regate::audit::forward::Ratchet,
    relabel: Option<u64>,
) -> Vec<String> {
    let mut r = key.clone();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i < from || !is_cp(l) {
            out.push(l.clone());
            continue;
        }
        let cp = regate::audit::seal::parse_checkpoint(l.as_bytes()).unwrap();
        let mut label = r.clone();
        if let Some(e) = relabel {
            label.epoch = e + (r.epoch - key.epoch);
        }
        let mut buf = Vec::new();
        sealer.seal_forward(
            &cp.chain_head(),
            5,
            std::time::SystemTime::now(),
            Some(&label),
            &mut buf,
        );
        out.push(String::from_utf8(buf).unwrap().trim_end().to_string());
        r.advance();
    }
    out
}

#[tokio::test]
async fn forward_secure_macs_stop_a_stolen_key_from_resealing_the_past() {
    use regate::audit::forward;
    let dir = tempfile::tempdir().unwrap();
    let keys = regate::audit::seal::keygen(dir.path()).unwrap();
    let sealer = Arc::new(Sealer::load(&keys.private).unwrap());
    let path = dir.path().join("audit.jsonl");
    let anchor = dir.path().join("cp.log");
    let mut s = sealed(&path, &sealer, &anchor);
    if let Some(seal) = &mut s.seal {
        seal.forward = Some(keys.forward.clone());
    }
    write(s, 0, 20).await;
    let seed = forward::parse_seed(&keys.seed).unwrap();
    let opts = |seed| VerifyOptions {
        keys: vec![sealer.verify_key()],
        checkpoints: None,
        seed,
    };
    let report = verify_with(std::slice::from_ref(&path), &opts(Some(seed))).unwrap();
    assert_eq!(report.forward_secure, Some(3), "{report}");
    // the gateway holds only the key of the next epoch now
    let stolen = forward::load(&keys.forward).unwrap();
    assert_eq!(stolen.epoch, 4);

    // The shipped copies carry their MACs too; one re-made with the
    // stolen key under an earlier epoch is caught there as well.
    let shipped = VerifyOptions {
        keys: vec![sealer.verify_key()],
        checkpoints: Some(anchor.clone()),
        seed: Some(seed),
    };
    let report = verify_with(std::slice::from_ref(&path), &shipped).unwrap();
    assert!(report.anchors.is_some_and(|a| a.0 >= 1), "{report}");
    let copy = std::fs::read_to_string(&anchor).unwrap();
    let last =
        regate::audit::seal::parse_checkpoint(copy.lines().last().unwrap().as_bytes()).unwrap();
    let mut relabelled = stolen.clone();
    relabelled.epoch = 3;
    let mut forged_copy = Vec::new();
    sealer.seal_forward(
        &last.chain_head(),
        5,
        std::time::SystemTime::now(),
        Some(&relabelled),
        &mut forged_copy,
    );
    std::fs::write(&anchor, [copy.as_bytes(), &forged_copy].concat()).unwrap();
    let (bad, _, problem, _) = broken(std::slice::from_ref(&path), &shipped);
    assert_eq!(bad, anchor);
    assert!(matches!(
        problem,
        Break::Forged {
            error: regate::audit::seal::SealError::BadMac { epoch: Some(3) },
            ..
        }
    ));

    // With root on the gateway: the signing key and the current MAC key.
    let mut lines = read_lines(&path);
    let at = line_of(&lines, 7) as usize - 1;
    lines[at] = lines[at].replace("\"status\":200", "\"status\":201");
    let rechained = rechain(&lines, true);

    // Honest epoch labels: signatures hold, the epochs jump.
    let forged = reseal(&rechained, at, &sealer, &stolen, None);
    rewrite(&path, &forged);
    let signed_only = verify_with(std::slice::from_ref(&path), &opts(None));
    assert!(
        signed_only.is_ok(),
        "the signing key alone cannot tell: {signed_only:?}"
    );
    let (_, line, problem, _) = broken(std::slice::from_ref(&path), &opts(Some(seed)));
    assert_eq!(line, 12);
    assert_eq!(
        problem,
        Break::EpochGap {
            expected: 1,
            found: 4
        }
    );

    // Epochs relabelled to follow on: the MACs give it away.
    let forged = reseal(&rechained, at, &sealer, &stolen, Some(1));
    rewrite(&path, &forged);
    let (_, line, problem, text) = broken(std::slice::from_ref(&path), &opts(Some(seed)));
    assert_eq!(line, 12);
    assert!(
        matches!(
            problem,
            Break::Forged {
                error: regate::audit::seal::SealError::BadMac { epoch: Some(1) },
                first: Some((6, _, 7))
            }
        ),
        "{text}"
    );
}

#[tokio::test]
async fn checkpoints_reach_a_syslog_collector_as_rfc5424_over_tcp() {
    use std::io::Read;
    let collector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = collector.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sealer, _) = Sealer::generate().unwrap();
    let key = sealer.verify_key();
    let mut s = sealed(&path, &Arc::new(sealer), &path);
    if let Some(seal) = &mut s.seal {
        seal.anchor = AnchorSettings::Syslog(addr);
    }
    write(s, 0, 12).await;

    // The sender thread delivers after the writer is done: read until the
    // shutdown checkpoint (seq 12) has arrived.
    let (mut conn, _) = collector.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("{\"checkpoint\":12,") {
        let n = conn.read(&mut buf).expect("collector read");
        assert!(n > 0, "collector connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    // RFC 6587 octet counting: "LEN SP MSG", MSG an RFC 5424 message
    let (len, rest) = text.split_once(' ').unwrap();
    let first = &rest[..len.parse::<usize>().unwrap()];
    assert!(first.starts_with("<86>1 "), "{first}");
    assert!(first.contains(" regate "), "{first}");
    let saved = dir.path().join("syslog.txt");
    std::fs::write(&saved, &text).unwrap();
    let opts = VerifyOptions {
        keys: vec![key],
        checkpoints: Some(saved),
        seed: None,
    };
    let report = verify_with(std::slice::from_ref(&path), &opts).unwrap();
    assert!(report.anchors.is_some_and(|a| a.0 >= 1), "{report}");

    // and the syslog copy finds a cut tail
    let lines = read_lines(&path);
    let end = lines
        .iter()
        .position(|l| l.starts_with("{\"checkpoint\":10,"))
        .unwrap();
    rewrite(&path, &lines[..=end]);
    let (_, _, problem, _) = broken(std::slice::from_ref(&path), &opts);
    assert_eq!(
        problem,
        Break::Truncated {
            ends: 10,
            sealed: 12
        }
    );
}
