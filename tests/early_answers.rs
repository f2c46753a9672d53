//! Every early answer reaches the client (issue 14, SECURITY.md rule 4):
//! POSTs whose bodies (2 B, 64 KiB, 1 MiB) the gateway refuses before
//! reading them get their 401, 403, 413 or 429 and its JSON body, with
//! zero transport errors, from real clients: Debian's curl over HTTP/1.1
//! and h2, Python `requests` (HTTP/1.1) and `httpx` (h2).
//!
//! Tries per case: `REGATE_EARLY_TRIES` (default 4 in the test suite; the
//! stress run in the README uses 200).

mod common;

use std::path::Path;

use common::*;

const SIZES: [usize; 3] = [2, 64 * 1024, 1024 * 1024];

fn tries() -> usize {
    std::env::var("REGATE_EARLY_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// What the client saw for one case.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    failures: Vec<String>,
}

/// One refused case: who posts, what status and error code they must see.
struct Case<'a> {
    who: Option<(&'a str, &'a str)>,
    status: u16,
    code: &'a str,
}

async fn curl(w: &World, case: &Case<'_>, body: &Path, h2: bool, tries: usize) -> Seen {
    let mut seen = Seen::default();
    for _ in 0..tries {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "--cacert"])
            .arg(&w.files.ca)
            .arg(if h2 { "--http2" } else { "--http1.1" })
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_code} %{http_version}"]);
        if let Some((u, p)) = case.who {
            cmd.args(["-u", &format!("{u}:{p}")]);
        }
        cmd.arg(w.url("/v1/bdbs"));
        let out = cmd.output().await.expect("curl must be installed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            seen.failures.push(format!(
                "curl exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let (json, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        let want_version = if h2 { "2" } else { "1.1" };
        let code = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["error_code"].as_str().map(str::to_owned));
        if tail != format!("{} {want_version}", case.status) || code.as_deref() != Some(case.code) {
            seen.failures.push(format!("got {tail} {json}"));
        } else {
            seen.ok += 1;
        }
    }
    seen
}

async fn python(w: &World, case: &Case<'_>, client: &str, size: usize, tries: usize) -> Seen {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/early_answers.py");
    let (user, pass) = case.who.unwrap_or(("-", "-"));
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(client)
        .arg(w.url("/v1/bdbs"))
        .arg(&w.files.ca)
        .args([user, pass, &size.to_string(), &tries.to_string()])
        .output()
        .await
        .expect("python3 must be installed (tests/run.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{client} script failed (tests/run.sh installs requests and httpx[http2]): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut seen = Seen::default();
    for e in v["errors"].as_array().unwrap() {
        seen.failures
            .push(e.as_str().unwrap_or_default().to_owned());
    }
    let statuses = v["statuses"].as_object().unwrap();
    let codes = v["codes"].as_object().unwrap();
    seen.ok = statuses
        .get(&case.status.to_string())
        .and_then(|n| n.as_u64())
        .unwrap_or(0) as usize;
    if statuses.len() > 1 || codes.len() > 1 || (seen.ok > 0 && codes.get(case.code).is_none()) {
        seen.failures.push(format!("{statuses:?} {codes:?}"));
    }
    let want = if client == "httpx-h2" {
        "HTTP/2"
    } else {
        "HTTP/1.1"
    };
    if seen.ok > 0 && v["versions"] != serde_json::json!([want]) {
        seen.failures
            .push(format!("spoke {} instead of {want}", v["versions"]));
    }
    seen
}

/// Runs every client over every size for `case`; panics listing every
/// try that did not end with the refusal.
async fn every_client_gets(w: &World, case: Case<'_>, sizes: &[usize]) {
    let tries = tries();
    let mut report = Vec::new();
    for &size in sizes {
        let body = w.dir.path().join(format!("body-{size}"));
        std::fs::write(&body, vec![b'x'; size]).unwrap();
        let runs = [
            ("curl http/1.1", curl(w, &case, &body, false, tries).await),
            ("curl h2", curl(w, &case, &body, true, tries).await),
            ("requests", python(w, &case, "requests", size, tries).await),
            ("httpx h2", python(w, &case, "httpx-h2", size, tries).await),
        ];
        for (client, seen) in runs {
            if seen.ok != tries || !seen.failures.is_empty() {
                report.push(format!(
                    "{client}, {size} B: {}/{tries} got {}; {:?}",
                    seen.ok, case.status, seen.failures
                ));
            }
        }
    }
    assert!(report.is_empty(), "lost refusals:\n{}", report.join("\n"));
}

#[tokio::test]
async fn refusals_before_the_body_reach_every_client() {
    let w = World::with(Setup {
        // the per-IP limit out of the way: hundreds of tries come from 127.0.0.1
        extra: "[rate_limit]\nper_ip = { rate = \"100000/s\", burst = 100000 }\n\
                [rate_limit.classes]\nwrite = { rate = \"1/min\", burst = 1 }\n"
            .into(),
        ..Setup::default()
    })
    .await;
    // 401: no credentials
    let none = Case {
        who: None,
        status: 401,
        code: "unauthorized",
    };
    every_client_gets(&w, none, &SIZES).await;
    // 403: a db_viewer may not create databases
    let viewer = Case {
        who: Some(VIEWER),
        status: 403,
        code: "missing_permission:create_bdb",
    };
    every_client_gets(&w, viewer, &SIZES).await;
    // 429: the admin's one write token is spent by this first POST
    let first = w
        .client(false)
        .call("POST", &w.url("/v1/bdbs"), Some(ADMIN), &[], b"{}")
        .await;
    assert_ne!(first.status, 429, "the first write must pass the limiter");
    let limited = Case {
        who: Some(ADMIN),
        status: 429,
        code: "rate_limited",
    };
    every_client_gets(&w, limited, &SIZES).await;
    // nothing refused reached a node: only the one allowed POST did
    let posts = w
        .upstream_requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn payload_too_large_reaches_every_client() {
    let w = World::with(Setup {
        extra: "[limits]\nmax_body_bytes = 1024\n".into(),
        ..Setup::default()
    })
    .await;
    let too_large = Case {
        who: Some(ADMIN),
        status: 413,
        code: "payload_too_large",
    };
    every_client_gets(&w, too_large, &SIZES[1..]).await;
    assert!(w.upstream_requests().is_empty());
}
