//! SECURITY.md group H2/H3 at the audit layer: hostile user names and
//! paths (CRLF with a fake record, ANSI escapes, quotes, NUL, bidi
//! controls, invalid UTF-8, 16 KiB) each yield exactly one valid,
//! terminal-safe JSON line, truncated with a marker when too long.

use std::time::SystemTime;

use regate::audit::json::{MAX_FIELD_BYTES, TRUNCATED_MARKER};
use regate::audit::{verify, AuditLog, AuditRecord, AuditSettings, Decision};

const FAKE: &str = "{\"seq\":99,\"user\":\"admin\",\"decision\":\"allow\"}";

#[tokio::test]
async fn hostile_fields_give_one_escaped_line_each() {
    let long = "A".repeat(16 * 1024);
    let crlf_user = format!("adm\r\nin FAKE:x\n{FAKE}\n");
    let users: Vec<&str> = vec![
        &crlf_user,
        "\x1b[2J\x1b[31mroot\x1b[0m",
        "quote\"back\\slash",
        "nul\0byte",
        "bidi\u{202e}txt.exe\u{2066}\u{2028}\u{85}",
        "\x7f\x08\x07",
        &long,
    ];
    let raw_paths: Vec<Vec<u8>> = vec![
        b"/v1/bdbs%0d%0a{\"x\":1}".to_vec(),
        b"/v1/\xff\xfe\xc0\xaf/bdbs\r\nX: y".to_vec(),
        b"/v1/\x1b]0;title\x07".to_vec(),
        vec![b'/'; 16 * 1024],
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(AuditSettings::file(&path)).unwrap();
    let mut submitted = 0;
    for user in &users {
        for raw in &raw_paths {
            let rec = AuditRecord {
                time: SystemTime::now(),
                request_id: user,
                user: Some(user),
                role: Some(user),
                method: "GET",
                path: Some(user),
                raw_path: raw,
                sni: Some(user),
                decision: Decision::Deny,
                rule: Some("auth"),
                status: 401,
                ..AuditRecord::default()
            };
            log.submit(&rec).await;
            submitted += 1;
        }
    }
    log.shutdown().await;

    let bytes = std::fs::read(&path).unwrap();
    let text = std::str::from_utf8(&bytes).expect("the log is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        submitted,
        "one line per record, no injected lines"
    );
    // Terminal safety: no raw control bytes other than the line ends, no
    // raw C1, bidi or line-separator characters.
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!bad, "raw {c:?} in the log");
    }
    let mut i = 0;
    for user in &users {
        for raw in &raw_paths {
            let v: serde_json::Value = serde_json::from_str(lines[i]).unwrap();
            i += 1;
            let got = v["user"].as_str().unwrap();
            if user.len() > MAX_FIELD_BYTES {
                assert!(got.ends_with(TRUNCATED_MARKER));
                assert_eq!(got.len(), MAX_FIELD_BYTES + TRUNCATED_MARKER.len());
            } else {
                assert_eq!(got, *user, "escaping round-trips");
            }
            let raw_got = v["raw_path"].as_str().unwrap();
            let expect = String::from_utf8_lossy(&raw[..raw.len().min(MAX_FIELD_BYTES)]);
            assert!(raw_got.starts_with(&*expect));
            assert_eq!(
                raw.len() > MAX_FIELD_BYTES,
                raw_got.ends_with(TRUNCATED_MARKER)
            );
            // The injected fake record never becomes a field of its own.
            assert_eq!(v["decision"], "deny");
            assert_eq!(v["seq"], i as u64);
        }
    }
    // Every line stays far below a pathological size.
    assert!(lines.iter().all(|l| l.len() < 32 * 1024));
    verify(&[path]).unwrap();
}
