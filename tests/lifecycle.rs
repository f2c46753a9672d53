//! The real binary: `check-config` names the broken key and exits 78 (EX_CONFIG);
//! `run` drains in-flight requests on SIGTERM and exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use regate::sim::{self, Mode, SimOptions, SimTls};

const BIN: &str = env!("CARGO_BIN_EXE_regate");

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    write_config_as(dir, "regate.toml", body)
}

fn write_config_as(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn check(path: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Kills the child if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const GOOD: &str = "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[upstream]\nnodes = [\"https://127.0.0.1:1\"]\nca = \"ca.pem\"\n[auth]\nusers = \"users.toml\"\n[audit]\npath = \"audit.jsonl\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

#[test]
fn check_config_names_the_broken_key() {
    let dir = tempfile::tempdir().unwrap();
    regate::pki::TestPki::generate()
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    std::fs::write(dir.path().join("users.toml"), users_toml()).unwrap();
    let p = write_config(dir.path(), GOOD);
    assert_eq!(check(&p).0, 0, "{}", check(&p).1);

    for (i, (broken, key)) in [
        (GOOD.replace("listen =", "lisen ="), "server.lisen"),
        (
            GOOD.replacen("127.0.0.1:0", "not-an-address", 1),
            "server.listen",
        ),
        (GOOD.replace("server.pem", "missing.pem"), "tls.cert"),
        (GOOD.replace("server.key", "ca.pem"), "tls.key"),
        (
            GOOD.replace("https://127.0.0.1:1", "ftp://x"),
            "upstream.nodes[0]",
        ),
        (
            format!("{GOOD}[timeouts]\nidle = \"forever\"\n"),
            "timeouts.idle",
        ),
        (
            // would overflow `Instant::now() + d` at the first request
            format!("{GOOD}[timeouts]\nrequest_header = \"9999999999999999h\"\n"),
            "timeouts.request_header",
        ),
        (
            format!("{GOOD}[limits]\nmax_header_bytes = 5000000000\n"),
            "limits.max_header_bytes",
        ),
        // a table header cut at its `[` names the file, never an empty key
        (format!("[\n{GOOD}"), "<file>: line 1: "),
        // a control character in a configured path stays on the one line
        (
            GOOD.replace("server.pem", "missing\\nserver.pem"),
            "missing\\nserver.pem",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // a file per case: no case can read another's content
        let p = write_config_as(dir.path(), &format!("broken-{i}.toml"), &broken);
        let (code, stderr) = check(&p);
        assert_eq!(code, 78, "{key}: {stderr}");
        assert!(stderr.contains(key), "expected `{key}` in: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line per problem: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = regate::pki::TestPki::generate().unwrap();
    pki.write_to(dir.path()).unwrap();
    std::fs::write(dir.path().join("users.toml"), users_toml()).unwrap();
    let cluster = sim::start(SimOptions {
        nodes: 1,
        tls: Some(SimTls {
            cert_pem: pki.cert_pem.clone(),
            key_pem: pki.key_pem.clone(),
        }),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let cfg = GOOD.replace("https://127.0.0.1:1", &cluster.urls()[0]);
    let path = write_config(dir.path(), &cfg);
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // the bound address is logged: "regate listening addr=127.0.0.1:PORT"
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no listen line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let url = format!(
        "https://localhost:{}/v1/bdbs",
        addr.rsplit(':').next().unwrap()
    );

    cluster.nodes()[0].set_mode(Mode::SlowHead(Duration::from_millis(2000)));
    let client = std::sync::Arc::new(TestClient::new(&pki.ca_pem, false));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, u) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { c.get(&u, ADMIN).await.status }));
    }
    // every request has reached the node (recorded before its slow answer)
    let t = std::time::Instant::now();
    // (health probes of /v1/bootstrap are not client requests)
    let bdbs = || {
        cluster.nodes()[0]
            .requests()
            .iter()
            .filter(|r| r.target == "/v1/bdbs")
            .count()
    };
    while bdbs() < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200, "an in-flight request was lost");
    }
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(bdbs(), 10);
}
