//! `verify` against tampered files: an edited line, an edited `prev`, a
//! deleted line, a reordered line, a duplicated line, garbage and a torn
//! tail are each reported with the file and line; an untouched log passes.

use std::path::{Path, PathBuf};

use regate::audit::{verify, AuditLog, AuditRecord, AuditSettings, Break, VerifyError};

/// Writes `n` records and returns the log's lines.
async fn write_log(path: &Path, n: usize) -> Vec<String> {
    let log = AuditLog::open(AuditSettings::file(path)).unwrap();
    for i in 0..n {
        let id = format!("req-{i}");
        let user = format!("user-{i}");
        log.submit(&AuditRecord {
            request_id: &id,
            user: Some(&user),
            method: "GET",
            raw_path: b"/v1/bdbs",
            status: 200,
            ..AuditRecord::default()
        })
        .await;
    }
    log.shutdown().await;
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn broken(path: &Path) -> (u64, Break, String) {
    match verify(&[path.to_path_buf()]) {
        Err(e @ VerifyError::Broken { .. }) => {
            let text = e.to_string();
            let VerifyError::Broken { line, problem, .. } = e else {
                unreachable!()
            };
            (line, problem, text)
        }
        other => panic!("expected a break, got {other:?}"),
    }
}

async fn fixture(n: usize) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let lines = write_log(&path, n).await;
    (dir, path, lines)
}

#[tokio::test]
async fn untouched_log_verifies() {
    let (_d, path, _) = fixture(10).await;
    let report = verify(&[path]).unwrap();
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (10, Some(1), Some(10))
    );
    assert!(report
        .to_string()
        .starts_with("OK: 10 records in 1 file(s), seq 1..10"));
}

#[tokio::test]
async fn edited_line_is_named() {
    let (_d, path, mut lines) = fixture(10).await;
    lines[3] = lines[3].replace("user-3", "admin");
    rewrite(&path, &lines);
    let (line, problem, text) = broken(&path);
    assert_eq!(line, 5, "the break shows at the next line");
    assert_eq!(
        problem,
        Break::Edited {
            path: path.clone(),
            line: 4
        }
    );
    assert!(text.contains("line 4 was modified"), "{text}");
}

#[tokio::test]
async fn edited_prev_field_names_that_line() {
    let (_d, path, mut lines) = fixture(10).await;
    let v: serde_json::Value = serde_json::from_str(&lines[6]).unwrap();
    let prev = v["prev"].as_str().unwrap();
    lines[6] = lines[6].replace(prev, &"0".repeat(64));
    rewrite(&path, &lines);
    let (line, problem, _) = broken(&path);
    assert_eq!(line, 7);
    assert_eq!(
        problem,
        Break::Edited {
            path: path.clone(),
            line: 7
        }
    );
}

#[tokio::test]
async fn deleted_line_is_named() {
    let (_d, path, mut lines) = fixture(10).await;
    lines.remove(4); // seq 5
    rewrite(&path, &lines);
    let (line, problem, text) = broken(&path);
    assert_eq!(line, 5);
    assert_eq!(problem, Break::Deleted { after: 4, found: 6 });
    assert!(text.contains("deleted"), "{text}");
    assert!(text.contains("line 5"), "{text}");
}

#[tokio::test]
async fn reordered_line_is_named() {
    let (_d, path, mut lines) = fixture(10).await;
    lines.swap(2, 3);
    rewrite(&path, &lines);
    let (line, problem, text) = broken(&path);
    assert_eq!(line, 3);
    assert_eq!(
        problem,
        Break::Reordered {
            found: 4,
            expected: 3,
            expected_at: Some((path.clone(), 4))
        }
    );
    assert!(text.contains("reordered"), "{text}");
}

#[tokio::test]
async fn line_moved_to_the_end_is_a_reorder_not_a_deletion() {
    let (_d, path, mut lines) = fixture(10).await;
    let moved = lines.remove(1);
    lines.push(moved);
    rewrite(&path, &lines);
    let (line, problem, _) = broken(&path);
    assert_eq!(line, 2);
    assert!(matches!(
        problem,
        Break::Reordered {
            found: 3,
            expected: 2,
            expected_at: Some((_, 10))
        }
    ));
}

#[tokio::test]
async fn duplicated_line_is_caught() {
    let (_d, path, mut lines) = fixture(5).await;
    let dup = lines[2].clone();
    lines.insert(3, dup);
    rewrite(&path, &lines);
    let (line, problem, _) = broken(&path);
    assert_eq!(line, 4);
    assert!(matches!(
        problem,
        Break::Reordered {
            found: 3,
            expected: 4,
            ..
        }
    ));
}

#[tokio::test]
async fn garbage_and_torn_tail_are_caught() {
    let (_d, path, mut lines) = fixture(5).await;
    let original = lines.clone();
    lines[1] = "hello, I am not JSON".into();
    rewrite(&path, &lines);
    let (line, problem, _) = broken(&path);
    assert_eq!(line, 2);
    assert!(matches!(problem, Break::Malformed(_)));

    // A torn last line (kill -9 mid-write) is reported; the complete
    // records before it still verify.
    let mut text: String = original.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("{\"seq\":6");
    std::fs::write(&path, &text).unwrap();
    let report = verify(std::slice::from_ref(&path)).unwrap();
    assert_eq!(
        (report.records, report.torn.clone()),
        (5, Some((path.clone(), 6)))
    );
    assert!(report.to_string().contains("TORN:"), "{report}");

    // Torn before the end of the trail: a line was cut in the middle.
    let later = path.with_extension("later");
    rewrite(&later, &[original[4].replace("\"seq\":5", "\"seq\":7")]);
    std::fs::write(&path, original.join("\n")).unwrap(); // no final newline
    match verify(&[path.clone(), later]) {
        Err(VerifyError::Broken { problem, .. }) => assert_eq!(problem, Break::Torn),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn editing_the_last_line_needs_the_anchor() {
    let (_d, path, mut lines) = fixture(5).await;
    let anchor = verify(std::slice::from_ref(&path)).unwrap().head;
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("user-4", "nobody");
    rewrite(&path, &lines);
    // The chain alone cannot see it; the head kept elsewhere does.
    let report = verify(&[path]).unwrap();
    assert_ne!(report.head, anchor);
}

#[tokio::test]
async fn missing_middle_file_is_reported_at_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let lines = write_log(&a, 9).await;
    let (b, c) = (dir.path().join("b.jsonl"), dir.path().join("c.jsonl"));
    rewrite(&a, &lines[..3]);
    rewrite(&b, &lines[3..6]);
    rewrite(&c, &lines[6..]);
    assert_eq!(
        verify(&[c.clone(), a.clone(), b.clone()]).unwrap().records,
        9
    );
    match verify(&[a, c.clone()]) {
        Err(VerifyError::Broken {
            path,
            line,
            problem,
        }) => {
            assert_eq!((path, line), (c, 1));
            assert_eq!(problem, Break::Deleted { after: 3, found: 7 });
        }
        other => panic!("{other:?}"),
    }
}
