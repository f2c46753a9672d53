//! The audit trail through the real gateway (issue 6, SECURITY.md group H):
//! concurrent allowed and denied requests over HTTP/1.1 and h2 leave
//! exactly one well-formed, chained line each once the gateway has shut
//! down; `regate audit verify` accepts the file and names an edited line;
//! hostile user names and paths give one escaped line each and no secret
//! reaches the audit file, the logs or `/metrics`; `required = true` with
//! a failing sink refuses with 503 and forwards nothing; `body_digest`
//! records the SHA-256 of a request body.

mod common;
mod gw;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gw::*;
use sha2::{Digest, Sha256};

const BDB1_FIXTURE: &[u8] = include_bytes!("../src/sim/fixtures/GET_v1_bdbs_1.json");

/// Auth throttles and rate limits wide open: these tests count records,
/// not limits (a 401 burst would otherwise turn into 429s).
fn open_limits(users: &Path) -> String {
    format!(
        "[auth]\nusers = \"{}\"\nfailed_per_ip = {{ rate = \"1000/s\", burst = 100000 }}\n\
         failed_per_ip_user = {{ rate = \"1000/s\", burst = 100000 }}\n\
         failed_per_user = {{ rate = \"1000/s\", burst = 100000 }}\n\n\
         [rate_limit]\nenabled = false\n",
        users.display()
    )
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify_cli(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regate"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Allowed,
    BadPassword,
    Forbidden,
    NotFound,
    Post,
}

const KINDS: [Kind; 5] = [
    Kind::Allowed,
    Kind::BadPassword,
    Kind::Forbidden,
    Kind::NotFound,
    Kind::Post,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_leave_one_verified_line_each() {
    const N: usize = 200;
    let users_dir = tempfile::tempdir().unwrap();
    let users = users_file(
        users_dir.path(),
        &[
            (ADMIN.0, ADMIN.1, "admin"),
            (VIEWER.0, VIEWER.1, "db_viewer"),
        ],
    );
    let w = World::with(Setup {
        nodes: 2,
        extra: open_limits(&users),
        ..Setup::default()
    })
    .await;
    let clients = Arc::new([w.client(false), w.client(true)]);
    let post_body = br#"{"name":"audited","memory_size":1073741824}"#;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let kind = KINDS[i % KINDS.len()];
        let h2 = i % 2 == 0;
        let clients = clients.clone();
        let base = w.url("");
        tasks.spawn(async move {
            let c = &clients[usize::from(h2)];
            let id = format!("t-{i}");
            let hdr = [("x-request-id", id.as_str())];
            let r = match kind {
                Kind::Allowed => {
                    c.call("GET", &format!("{base}/v1/bdbs/1"), Some(ADMIN), &hdr, b"")
                        .await
                }
                Kind::BadPassword => {
                    let who = (ADMIN.0, "wrong-password");
                    c.call("GET", &format!("{base}/v1/bdbs"), Some(who), &hdr, b"")
                        .await
                }
                Kind::Forbidden => {
                    c.call("GET", &format!("{base}/v1/users"), Some(VIEWER), &hdr, b"")
                        .await
                }
                Kind::NotFound => {
                    c.call("GET", &format!("{base}/v1/no-such"), Some(ADMIN), &hdr, b"")
                        .await
                }
                Kind::Post => {
                    let h = [hdr[0], ("content-type", "application/json")];
                    c.call(
                        "POST",
                        &format!("{base}/v1/bdbs"),
                        Some(ADMIN),
                        &h,
                        post_body,
                    )
                    .await
                }
            };
            (id, kind, h2, r)
        });
    }
    let mut sent = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (id, kind, h2, r) = done.unwrap();
        sent.insert(id, (kind, h2, r));
    }
    assert_eq!(sent.len(), N);
    let forwarded = w.upstream_requests().len();

    // Drain and flush: only now is every record guaranteed on disk.
    let World {
        gateway,
        dir,
        cluster,
        ..
    } = w;
    gateway.shutdown().await;
    let path = dir.path().join("audit.jsonl");
    let lines = read_lines(&path);
    assert_eq!(lines.len(), N, "one audit line per request");

    let nodes: HashSet<String> = cluster.urls().into_iter().collect();
    let mut seen = HashSet::new();
    for (n, line) in lines.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        assert_eq!(v["seq"], n as u64 + 1, "seq counts from 1 without gaps");
        let id = v["id"].as_str().unwrap().to_string();
        assert!(seen.insert(id.clone()), "duplicate record for {id}");
        let (kind, h2, r) = &sent[&id];
        let ctx = format!("{kind:?} h2={h2}: {line}");
        assert_eq!(v["status"], r.status, "{ctx}");
        assert_eq!(v["bytes_out"], r.body.len() as u64, "{ctx}");
        assert_eq!(v["complete"], true, "{ctx}");
        assert_eq!(v["client_ip"], "127.0.0.1", "{ctx}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{ctx}");
        match kind {
            Kind::Allowed | Kind::Post => {
                assert_eq!(v["decision"], "allow", "{ctx}");
                assert_eq!(v["user"], ADMIN.0, "{ctx}");
                assert_eq!(v["role"], "admin", "{ctx}");
                assert_eq!(v["upstream_status"], r.status, "{ctx}");
                let node = v["upstream"].as_str().unwrap_or_default();
                assert!(nodes.contains(node), "forwarded to a known node: {ctx}");
                if *kind == Kind::Allowed {
                    assert_eq!(r.status, 200, "{ctx}");
                    assert_eq!(r.body.as_ref(), BDB1_FIXTURE);
                    assert_eq!(v["route"], "/v1/bdbs/{uid}", "{ctx}");
                    assert_eq!(v["method"], "GET", "{ctx}");
                    assert_eq!(v["bytes_in"], 0, "{ctx}");
                } else {
                    assert_eq!(r.status, 200, "{ctx}");
                    assert_eq!(v["route"], "/v1/bdbs", "{ctx}");
                    assert_eq!(v["method"], "POST", "{ctx}");
                    assert_eq!(v["bytes_in"], post_body.len() as u64, "{ctx}");
                }
            }
            Kind::BadPassword => {
                assert_eq!(r.status, 401, "{ctx}");
                assert_eq!(v["decision"], "deny", "{ctx}");
                assert_eq!(v["route"], "/v1/bdbs", "{ctx}");
                assert!(v.get("user").is_none(), "not authenticated: {ctx}");
                assert!(v.get("upstream").is_none(), "{ctx}");
            }
            Kind::Forbidden => {
                assert_eq!(r.status, 403, "{ctx}");
                assert_eq!(v["decision"], "deny", "{ctx}");
                assert_eq!(v["user"], VIEWER.0, "{ctx}");
                assert_eq!(v["role"], "db_viewer", "{ctx}");
                assert_eq!(v["route"], "/v1/users", "{ctx}");
                assert!(v.get("upstream").is_none(), "{ctx}");
            }
            Kind::NotFound => {
                assert_eq!(r.status, 404, "{ctx}");
                assert_eq!(r.json()["error_code"], "not_found");
                assert_eq!(v["decision"], "deny", "{ctx}");
                assert_eq!(v["raw_path"], "/v1/no-such", "{ctx}");
                assert!(v.get("route").is_none(), "{ctx}");
                assert!(v.get("upstream").is_none(), "{ctx}");
            }
        }
    }
    assert_eq!(forwarded, N * 2 / 5, "only allowed requests reach a node");

    // The untouched file verifies; one edited line is named.
    let (ok, text) = verify_cli(&path);
    assert!(ok, "verify failed on an untouched log: {text}");
    assert!(text.contains(&format!("{N} records")), "{text}");
    let victim = lines
        .iter()
        .enumerate()
        .skip(N / 2)
        .find(|(_, l)| l.contains("\"decision\":\"deny\""))
        .map(|(i, _)| i)
        .unwrap();
    let mut edited = lines.clone();
    edited[victim] = edited[victim].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let (ok, text) = verify_cli(&path);
    assert!(!ok, "verify passed an edited log: {text}");
    assert!(
        text.contains(&format!("line {}", victim + 1)),
        "names line {}: {text}",
        victim + 1
    );
}

/// Hostile user names and paths (H1-H3): one escaped line each, nothing
/// that a terminal would interpret, no forged record, no secret anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_paths_give_one_escaped_line_each() {
    let logs = captured_logs();
    // Authorization values over 8 KiB are refused (431) before any lookup,
    // so a 16 KiB name never authenticates; a 5 KiB one does, and is cut.
    let huge_user = "h".repeat(16 * 1024);
    let long_user = "u".repeat(5 * 1024);
    let long_pass = "long-user-secret-9";
    let users_dir = tempfile::tempdir().unwrap();
    let users = users_file(
        users_dir.path(),
        &[
            (ADMIN.0, ADMIN.1, "admin"),
            (&long_user, long_pass, "db_viewer"),
        ],
    );
    let w = World::with(Setup {
        extra: format!(
            "[limits]\nmax_header_bytes = 65536\n\n{}",
            open_limits(&users)
        ),
        ..Setup::default()
    })
    .await;
    let fake = "{\"seq\":99,\"user\":\"admin\",\"decision\":\"allow\"}";
    let crlf_user = format!("adm\r\nin FAKE:x\r\n{fake}\r\n");
    let ansi_user = "\x1b[2J\x1b[31mroot\x1b[0m".to_string();
    // (id, user, password, path)
    let cases: Vec<(&str, String, &str, String)> = vec![
        ("crlf-user", crlf_user, ADMIN.1, "/v1/bdbs".into()),
        ("ansi-user", ansi_user, ADMIN.1, "/v1/bdbs".into()),
        ("json-user", fake.to_string(), ADMIN.1, "/v1/bdbs".into()),
        ("long-user", long_user.clone(), long_pass, "/v1/bdbs".into()),
        ("huge-user", huge_user.clone(), long_pass, "/v1/bdbs".into()),
        (
            "crlf-path",
            ADMIN.0.into(),
            ADMIN.1,
            format!("/v1/bdbs%0d%0a{}", fake.replace('"', "%22")),
        ),
        (
            "ansi-path",
            ADMIN.0.into(),
            ADMIN.1,
            "/v1/bdbs/%1b%5b2J%1b]0;x%07".into(),
        ),
        (
            "json-path",
            ADMIN.0.into(),
            ADMIN.1,
            "/v1/bdbs/\"},{\"seq\":99,\"decision\":\"allow\"".into(),
        ),
        (
            "long-path",
            ADMIN.0.into(),
            ADMIN.1,
            format!("/v1/bdbs/{}", "a".repeat(16 * 1024)),
        ),
    ];
    let c = w.client(false);
    let mut statuses = HashMap::new();
    for (id, user, pass, path) in &cases {
        let hdr = [
            ("x-request-id", *id),
            (
                "authorization",
                &*format!("Basic {}", basic_b64(user, pass)),
            ),
        ];
        let r = c.call("GET", &w.url(path), None, &hdr, b"").await;
        statuses.insert(id.to_string(), r.status);
    }
    let metrics = metrics_text(w.gateway.metrics_addr).await;

    let World { gateway, dir, .. } = w;
    gateway.shutdown().await;
    let path = dir.path().join("audit.jsonl");
    let bytes = std::fs::read(&path).unwrap();
    let text = std::str::from_utf8(&bytes).expect("the audit file is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one line per request:\n{text}");
    assert!(
        !bytes
            .iter()
            .any(|b| (*b < 0x20 && *b != b'\n') || *b == 0x7f),
        "a control byte reached the audit file"
    );
    let mut by_id = HashMap::new();
    for (n, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        assert_eq!(v["seq"], n as u64 + 1, "no forged or missing seq: {line}");
        assert!(
            line.len() < 8 * 1024,
            "fields are truncated: {} bytes",
            line.len()
        );
        by_id.insert(v["id"].as_str().unwrap().to_string(), v);
    }
    assert_eq!(by_id.len(), cases.len());
    for (id, user, _, _) in &cases[..3] {
        let v = &by_id[*id];
        assert_eq!(statuses[*id], 401, "{id}");
        assert_eq!(v["status"], 401, "{id}");
        assert_eq!(v["decision"], "deny");
        assert!(
            v.get("user").is_none(),
            "{id}: unauthenticated name {user:?} recorded as a user"
        );
    }
    let v = &by_id["huge-user"];
    assert_eq!(statuses["huge-user"], 431, "{v}");
    assert_eq!(v["status"], 431);
    assert!(v.get("user").is_none(), "{v}");
    // An authenticated 5 KiB name is recorded, cut, with a marker.
    let v = &by_id["long-user"];
    assert_eq!(v["role"], "db_viewer", "{v}");
    let recorded = v["user"].as_str().unwrap();
    assert!(recorded.len() <= 1100, "{} bytes", recorded.len());
    assert!(recorded.ends_with("[truncated]"), "{recorded:.40}...");
    assert!(long_user.starts_with(recorded.trim_end_matches("…[truncated]")));
    for id in ["crlf-path", "ansi-path", "json-path", "long-path"] {
        let v = &by_id[id];
        assert_eq!(v["status"], statuses[id], "{id}");
        let raw = v["raw_path"].as_str().unwrap();
        assert!(raw.starts_with("/v1/bdbs"), "{id}: {raw}");
    }
    assert!(by_id["long-path"]["raw_path"]
        .as_str()
        .unwrap()
        .ends_with("[truncated]"));
    assert_eq!(
        by_id["json-path"]["raw_path"],
        "/v1/bdbs/\"},{\"seq\":99,\"decision\":\"allow\""
    );

    // H1: no password and no credential, plain or base64, anywhere.
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the gateway's logs were captured");
    let secrets = [
        ADMIN.1.to_string(),
        long_pass.to_string(),
        basic_b64(ADMIN.0, ADMIN.1),
        basic_b64(&long_user, long_pass),
        basic_b64(&huge_user, long_pass),
        basic_b64(fake, ADMIN.1),
    ];
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "audit file holds {s:.40}");
        assert!(!logs.contains(s.as_str()), "logs hold {s:.40}");
        assert!(!metrics.contains(s.as_str()), "/metrics holds {s:.40}");
    }
    for needle in [ADMIN.0, "FAKE", "u".repeat(64).as_str()] {
        assert!(!metrics.contains(needle), "/metrics holds {needle:.40}");
    }
}

/// `required = true` and a sink that fails: 503 `audit_unavailable`, and
/// nothing more reaches the cluster until the sink works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_audit_refuses_while_the_sink_fails_and_recovers() {
    let logs_dir = tempfile::tempdir().unwrap();
    let audit_dir = logs_dir.path().join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let audit_path = audit_dir.join("audit.jsonl");
    let w = World::with(Setup {
        extra: format!(
            "[audit]\npath = \"{}\"\nfsync = \"always\"\nrequired = true\n",
            audit_path.display()
        ),
        ..Setup::default()
    })
    .await;
    let c = w.client(true);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    // the record is written by the audit thread after the response: wait
    // for it, so the chain has a head on disk before the sink breaks
    eventually(
        "the first record on disk",
        Duration::from_secs(5),
        || async { (!read_lines(&audit_path).is_empty()).then_some(()) },
    )
    .await;

    std::fs::remove_dir_all(&audit_dir).unwrap();
    // The record of the request that finds the sink broken can only fail
    // after its response: at most one more request is served unaudited.
    let served = std::cell::Cell::new(0);
    let first_503 = eventually(
        "a 503 once the sink fails",
        Duration::from_secs(5),
        || async {
            let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
            match r.status {
                200 => {
                    served.set(served.get() + 1);
                    None
                }
                _ => Some(r),
            }
        },
    )
    .await;
    let served = served.get();
    assert!(
        served <= 1,
        "{served} requests served while the sink failed"
    );
    assert_eq!(first_503.status, 503);
    assert_eq!(first_503.json()["error_code"], "audit_unavailable");
    let before = w.upstream_requests().len();
    for h2 in [false, true] {
        let r = w
            .client(h2)
            .call(
                "POST",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[],
                b"{\"name\":\"x\"}",
            )
            .await;
        assert_eq!(r.status, 503, "h2={h2}");
        assert_eq!(r.json()["error_code"], "audit_unavailable");
        let r = w.client(h2).get(&w.url("/v1/bdbs"), ADMIN).await;
        assert_eq!(r.status, 503);
    }
    assert_eq!(w.upstream_requests().len(), before, "nothing forwarded");
    // the records of the refused requests fail on the writer thread after
    // their responses (it lingers up to 5 ms to batch): wait for them
    let addr = w.gateway.metrics_addr;
    let m = eventually(
        "the failed records counted",
        Duration::from_secs(5),
        || async move {
            let m = metrics_text(addr).await;
            (metric_sum(&m, "regate_audit_write_failures_total", &[]) >= 4.0).then_some(m)
        },
    )
    .await;
    assert!(metric_sum(&m, "regate_requests_total", &[("status_class", "5xx")]) >= 5.0);

    // The directory is back: the next records are written and service resumes.
    std::fs::create_dir(&audit_dir).unwrap();
    eventually(
        "service after the sink recovers",
        Duration::from_secs(5),
        || async { (c.get(&w.url("/v1/bdbs"), ADMIN).await.status == 200).then_some(()) },
    )
    .await;
    let World { gateway, .. } = w;
    gateway.shutdown().await;
    let lines = read_lines(&audit_path);
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["seq"].as_u64().unwrap() >= 2, "continues the chain: {l}");
    }
}

/// A sink that can never be written (`/dev/full`): 503 and nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_audit_on_a_full_device_refuses() {
    let w = World::with(Setup {
        extra: "[audit]\npath = \"/dev/full\"\nfsync = \"always\"\nrequired = true\n".into(),
        ..Setup::default()
    })
    .await;
    let c = w.client(false);
    let served = std::cell::Cell::new(0);
    let r = eventually(
        "a 503 from an unwritable sink",
        Duration::from_secs(5),
        || async {
            let r = c.get(&w.url("/v1/bdbs"), ADMIN).await;
            if r.status == 200 {
                served.set(served.get() + 1);
                return None;
            }
            Some(r)
        },
    )
    .await;
    let served = served.get();
    assert!(served <= 1, "{served} requests served unaudited");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error_code"], "audit_unavailable");
    let before = w.upstream_requests().len();
    for _ in 0..5 {
        assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 503);
    }
    assert_eq!(w.upstream_requests().len(), before, "nothing forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_digest_is_the_sha256_of_the_request_body() {
    let w = World::with(Setup {
        extra: "[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\nbody_digest = true\n".into(),
        ..Setup::default()
    })
    .await;
    let bodies: [&[u8]; 2] = [
        br#"{"name":"digest-h1","memory_size":1073741824}"#,
        br#"{"name":"digest-h2","memory_size":2147483648,"shards_count":2}"#,
    ];
    for (h2, body) in [false, true].into_iter().zip(bodies) {
        let id = format!("digest-{h2}");
        let r = w
            .client(h2)
            .call(
                "POST",
                &w.url("/v1/bdbs"),
                Some(ADMIN),
                &[("x-request-id", &id), ("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(
        w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await.status,
        200
    );
    let World { gateway, dir, .. } = w;
    gateway.shutdown().await;
    let lines = read_lines(&dir.path().join("audit.jsonl"));
    assert_eq!(lines.len(), 3);
    for (h2, body) in [false, true].into_iter().zip(bodies) {
        let id = format!("digest-{h2}");
        let v: serde_json::Value = lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["id"] == id.as_str())
            .unwrap();
        let want: String = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v["body_sha256"], want, "h2={h2}");
        assert_eq!(v["bytes_in"], body.len() as u64);
    }
    let get: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(get["method"], "GET");
    assert!(get.get("body_sha256").is_none(), "no digest without a body");
}

/// Requests hyper refuses before the pipeline sees them (raw invalid
/// UTF-8 and ESC in the request target, a head over the size limit) are
/// still audited and counted: one line each, status as the client saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_audited_too() {
    let w = World::start().await;
    let auth = basic(ADMIN.0, ADMIN.1);
    let mut bad_target = b"GET /v1/".to_vec();
    bad_target.extend_from_slice(b"\xff\xfe\x1b[2J");
    bad_target.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    );
    let huge_head = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let mut statuses = Vec::new();
    for bytes in [bad_target, huge_head.into_bytes()] {
        let mut s = w.raw().await;
        let (resp, _) = raw_exchange(&mut s, &bytes, Duration::from_secs(2)).await;
        let status: u16 = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        statuses.push(status);
    }
    assert_eq!(statuses, [400, 431]);
    let m = eventually(
        "malformed requests counted",
        Duration::from_secs(5),
        || async {
            let m = metrics_text(w.gateway.metrics_addr).await;
            (metric_sum(&m, "regate_requests_total", &[("status_class", "4xx")]) >= 2.0)
                .then_some(m)
        },
    )
    .await;
    assert_eq!(metric_sum(&m, "regate_requests_total", &[]), 2.0, "{m}");
    let World { gateway, dir, .. } = w;
    gateway.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains('\u{1b}'));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    // one line each; the two connections end concurrently, so their
    // records may land in either order
    let mut logged: Vec<u64> = lines.iter().filter_map(|v| v["status"].as_u64()).collect();
    logged.sort_unstable();
    assert_eq!(logged, [400, 431], "{text}");
    for v in &lines {
        assert_eq!(v["decision"], "deny", "{v}");
        assert_eq!(v["client_ip"], "127.0.0.1", "{v}");
        assert!(v.get("user").is_none(), "{v}");
    }
    assert!(!text.contains(ADMIN.1));
}
