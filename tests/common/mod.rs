//! Shared test harness: a per-run PKI (rcgen), the simulated cluster, the
//! gateway started in-process from a real config file on 127.0.0.1:0, and
//! TLS clients (HTTP/1.1, h2, raw bytes) that trust the test CA.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use regate::pki::{PkiFiles, TestPki};
use regate::sim::{self, SimCluster, SimOptions, SimTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ADMIN: (&str, &str) = ("admin@redis.local", "admin123");
pub const VIEWER: (&str, &str) = ("viewer@redis.local", "viewer123");

/// One test world: PKI, cluster, gateway.
pub struct World {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub files: PkiFiles,
    pub cluster: SimCluster,
    pub gateway: regate::Running,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
}

/// Extra TOML appended to the generated config (sections or keys).
#[derive(Default, Clone)]
pub struct Setup {
    pub nodes: usize,
    pub extra: String,
    pub sim: Option<SimOptions>,
    /// Files written into the world's directory before the config is
    /// loaded (name relative to the directory, contents): users files,
    /// service-account files.
    pub files: Vec<(String, String)>,
    /// Node URLs used instead of the simulated cluster's (a scripted
    /// upstream); the cluster still runs, unused.
    pub node_urls: Vec<String>,
    /// Extra keys of the `[server]` section (`trusted_proxies = [...]`).
    pub server: String,
}

impl World {
    pub async fn start() -> World {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> World {
        Self::with_tls(setup, "").await
    }

    /// Like [`World::with`], with extra keys in the `[tls]` section
    /// (`client_ca`, `client_auth`).
    pub async fn with_tls(setup: Setup, tls_extra: &str) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate().unwrap();
        let files = pki.write_to(dir.path()).unwrap();
        for (name, text) in &setup.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut opts = setup.sim.clone().unwrap_or_default();
        opts.nodes = if setup.nodes == 0 { 1 } else { setup.nodes };
        // a test may give the nodes certificates of their own (another CA)
        if opts.tls.is_none() {
            opts.tls = Some(SimTls {
                cert_pem: pki.cert_pem.clone(),
                key_pem: pki.key_pem.clone(),
            });
        }
        let cluster = sim::start(opts).await.unwrap();
        let urls = if setup.node_urls.is_empty() {
            cluster.urls()
        } else {
            setup.node_urls.clone()
        };
        // an entry written as a TOML table (`{ name = ..., url = "{node0}" }`)
        // goes in as it is
        let nodes: Vec<String> = urls
            .iter()
            .map(|u| match u.starts_with('{') {
                true => cluster
                    .urls()
                    .iter()
                    .enumerate()
                    .fold(u.clone(), |t, (i, url)| {
                        t.replace(&format!("{{node{i}}}"), url)
                    }),
                false => format!("\"{u}\""),
            })
            .collect();
        // `{node0}`, `{node1}`... in `extra` stand for the nodes' URLs
        let mut extra = setup.extra.clone();
        for (i, u) in cluster.urls().iter().enumerate() {
            extra = extra.replace(&format!("{{node{i}}}"), u);
        }
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n{}\n\n[upstream]\nnodes = [{}]\nca = \"ca.pem\"\n\n{}\n",
            setup.server,
            tls_extra,
            nodes.join(", "),
            extra
        );
        let mut config = config;
        if !setup.extra.contains("[auth]") {
            std::fs::write(dir.path().join("users.toml"), users_toml()).unwrap();
            config.push_str("\n[auth]\nusers = \"users.toml\"\n");
        }
        if !setup.extra.contains("[audit]") {
            config.push_str("\n[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\n");
        }
        // Active health checks probe every node at start and every 5 s: a
        // test that counts what the nodes received asks for them itself.
        if !setup.extra.contains("[upstream.health]") {
            config.push_str("\n[upstream.health]\nenabled = false\n");
        }
        if !setup.extra.contains("[metrics]") {
            config.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        }
        let config_path = dir.path().join("regate.toml");
        std::fs::write(&config_path, config).unwrap();
        let cfg = match regate::config::load(&config_path) {
            Ok(c) => c,
            Err(e) => panic!("test config invalid: {e:?}"),
        };
        let gateway = regate::start(cfg).await.unwrap();
        let addr = gateway.addr;
        World {
            dir,
            pki,
            files,
            cluster,
            gateway,
            addr,
            config_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }

    /// A client trusting the test CA; `h2` forces HTTP/2 via ALPN.
    pub fn client(&self, h2: bool) -> TestClient {
        TestClient::new(&self.pki.ca_pem, h2)
    }

    /// Opens a TLS connection for raw HTTP/1.1 bytes.
    pub async fn raw(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        raw_tls(&self.pki.ca_pem, self.addr).await
    }

    pub fn node(&self, i: usize) -> &sim::SimNode {
        &self.cluster.nodes()[i]
    }

    /// All requests the cluster's nodes received.
    pub fn upstream_requests(&self) -> Vec<sim::RecordedRequest> {
        self.cluster
            .nodes()
            .iter()
            .flat_map(|n| n.requests())
            .collect()
    }
}

/// The users file matching the simulator's default users (bcrypt cost 4:
/// fast for tests; production files use cost 10+ or argon2id).
pub fn users_toml() -> String {
    let mut out = String::new();
    for (name, pass, role, uid) in [
        (ADMIN.0, ADMIN.1, "admin", 1),
        (VIEWER.0, VIEWER.1, "db_viewer", 2),
    ] {
        let hash = bcrypt::hash(pass, 4).unwrap();
        out.push_str(&format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nrole = \"{role}\"\nuid = {uid}\n\n"
        ));
    }
    out
}

/// A users file for `(name, password, role, uid)` entries (bcrypt cost 4).
pub fn users_toml_for(users: &[(&str, &str, &str, Option<u64>)]) -> String {
    let mut out = String::new();
    for (name, pass, role, uid) in users {
        let hash = bcrypt::hash(pass, 4).unwrap();
        out.push_str(&format!(
            "[[users]]\nname = {}\npassword_hash = \"{hash}\"\nrole = \"{role}\"\n",
            toml::Value::String(name.to_string())
        ));
        if let Some(uid) = uid {
            out.push_str(&format!("uid = {uid}\n"));
        }
        out.push('\n');
    }
    out
}

/// The audit file as written so far.
pub fn audit_text(w: &World) -> String {
    std::fs::read_to_string(w.dir.path().join("audit.jsonl")).unwrap_or_default()
}

/// Waits (up to 5 s) until the audit file holds at least `n` records: the
/// writer runs behind the response.
pub async fn wait_audit(w: &World, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let lines = audit_lines(w);
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The audit records written so far (one JSON object per line). A last
/// line without its newline is still being written: it is left for the
/// next read, not parsed half-way.
pub fn audit_lines(w: &World) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(w.dir.path().join("audit.jsonl")).unwrap_or_default();
    text.split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l}: {e}")))
        .collect()
}

pub fn client_tls(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg
}

pub async fn raw_tls(ca_pem: &str, addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = client_tls(ca_pem, &[b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends raw bytes and reads until the server closes or `timeout` passes.
pub async fn raw_exchange(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
    bytes: &[u8],
    timeout: std::time::Duration,
) -> (String, bool) {
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Every status code in a raw HTTP/1.1 response stream, in order.
pub fn statuses(resp: &str) -> Vec<u16> {
    resp.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| resp.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// "METHOD target" of every request the nodes received.
pub fn targets(w: &World) -> Vec<String> {
    w.upstream_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect()
}

pub struct TestClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl TestClient {
    pub fn new(ca_pem: &str, h2: bool) -> TestClient {
        Self::with_tls(client_tls(ca_pem, &[]), h2)
    }

    /// A client over a given rustls config (e.g. one with a client
    /// certificate); ALPN is set from `h2`.
    pub fn with_tls(tls: rustls::ClientConfig, h2: bool) -> TestClient {
        // hyper-rustls sets ALPN from the enabled versions
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        // no Nagle: small h2 frames would otherwise wait for delayed ACKs
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = if h2 {
            b.enable_http2().wrap_connector(http)
        } else {
            b.enable_http1().wrap_connector(http)
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder.http2_only(h2);
        TestClient {
            inner: builder.build(connector),
        }
    }

    pub async fn send(&self, req: http::Request<Full<Bytes>>) -> Reply {
        let resp = self.inner.request(req).await.unwrap();
        let version = resp.version();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            version,
        }
    }

    /// GET with Basic credentials.
    pub async fn get(&self, url: &str, who: (&str, &str)) -> Reply {
        let req = http::Request::get(url)
            .header("authorization", basic(who.0, who.1))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }

    /// A request with method, credentials, extra headers and a body.
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        who: Option<(&str, &str)>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut b = http::Request::builder().method(method).uri(url);
        if let Some((u, p)) = who {
            b = b.header("authorization", basic(u, p));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
            .await
    }
}

/// Resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

impl TestClient {
    /// Sends without collecting the body.
    pub async fn raw_request(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.inner.request(req).await.map_err(|e| e.to_string())
    }
}
