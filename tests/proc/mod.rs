//! A real `regate run` process for the tests: a directory with a PKI,
//! users file and config (against a simulated cluster), the child process,
//! its stderr lines as they come, signals, and the admin endpoints.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regate::pki::TestPki;
use regate::sim::{self, SimCluster, SimOptions, SimTls};

pub const BIN: &str = env!("CARGO_BIN_EXE_regate");

/// A directory holding what a config names, and the simulated cluster.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub cluster: SimCluster,
}

impl Site {
    pub async fn new() -> Site {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate().unwrap();
        pki.write_to(dir.path()).unwrap();
        std::fs::write(dir.path().join("users.toml"), crate::common::users_toml()).unwrap();
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
        Site { dir, pki, cluster }
    }

    /// A config on ephemeral loopback ports; `extra` is appended (sections
    /// it names replace none of the base ones: use keys of new sections or
    /// `server_extra` for `[server]` keys).
    pub fn config(&self, server_extra: &str, extra: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[upstream]\nnodes = [\"{}\"]\nca = \"ca.pem\"\n[auth]\nusers = \"users.toml\"\n[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
            self.cluster.urls()[0]
        )
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A running `regate` child; killed on drop if still running.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// The `NOTIFY_SOCKET` the child reports readiness to (sd_notify).
    notify: (tempfile::TempDir, std::os::unix::net::UnixDatagram),
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `regate ARGS...` with `RUST_LOG` set as given (None: unset).
    pub fn spawn(args: &[&str], rust_log: Option<&str>) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        if let Some(l) = rust_log {
            cmd.env("RUST_LOG", l);
        }
        Self::from_command(cmd)
    }

    /// Spawns `cmd` with stderr captured and `NOTIFY_SOCKET` set.
    pub fn from_command(mut cmd: Command) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        cmd.env("NOTIFY_SOCKET", &path);
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines: rx,
            seen,
            notify: (dir, sock),
        }
    }

    /// Waits for the next sd_notify message and returns it (READY=1 is
    /// sent once the signal handlers are installed).
    pub fn next_notify(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.notify.1.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no sd_notify message ({e}); stderr so far:\n{}",
                self.seen.lock().unwrap().join("\n")
            )
        });
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Waits until the child has said READY=1.
    pub fn wait_ready_notify(&self) {
        loop {
            if self.next_notify().starts_with("READY=1") {
                return;
            }
        }
    }

    /// Waits for a stderr line containing `needle` and returns it; panics
    /// with everything seen when the process ends or goes quiet for 30 s.
    pub fn wait_line(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "no line with `{needle}`; stderr so far:\n{}",
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// The value of `key=` in the first line containing `needle`
    /// (text logs: `regate listening addr=127.0.0.1:PORT`).
    pub fn wait_field(&self, needle: &str, key: &str) -> String {
        let line = self.wait_line(needle);
        let pat = format!("{key}=");
        line.split(&pat)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {key}= in {line}"))
            .trim_matches('"')
            .to_string()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the exit; the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

/// `GET path` on the admin listener: (status, body).
pub fn admin_get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Polls `/readyz` until it answers `want` (the node's first health check
/// runs after start). Panics with the last answer after 30 s.
pub fn wait_ready(addr: &str, want: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _) = admin_get(addr, "/readyz");
        if s == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {s}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
