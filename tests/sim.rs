//! The simulated cluster seen from a real client: hyper-util's client over
//! rustls trusting a per-run CA, against nodes on 127.0.0.1. Raw-socket
//! checks (framing, fault bytes) live in `src/sim/wire_tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use regate::pki::TestPki;
use regate::sim::{self, Mode, SimCluster, SimOptions, SimTls, SimUser};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
const ADMIN: (&str, &str) = ("admin@redis.local", "admin123");

struct Sim {
    cluster: SimCluster,
    client: HttpsClient,
}

async fn tls_sim(opts: SimOptions) -> Sim {
    let pki = TestPki::generate().unwrap();
    let cluster = sim::start(SimOptions {
        tls: Some(SimTls {
            cert_pem: pki.cert_pem.clone(),
            key_pem: pki.key_pem.clone(),
        }),
        ..opts
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    Sim { cluster, client }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cluster.urls()[0])
    }

    async fn try_send(
        &self,
        method: Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let mut req = Request::builder().method(method).uri(self.url(path));
        if let Some((u, p)) = auth {
            req = req.header(
                "Authorization",
                format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
            );
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("{e:?}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| "timeout".to_string())?
    }

    async fn get(&self, path: &str, auth: Option<(&str, &str)>) -> Answer {
        self.try_send(Method::GET, path, auth, Vec::new())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn fixtures_are_served_verbatim_over_tls() {
    let sim = tls_sim(SimOptions::default()).await;
    assert!(sim
        .cluster
        .urls()
        .iter()
        .all(|u| u.starts_with("https://127.0.0.1:")));
    assert_eq!(sim.cluster.nodes().len(), 3);
    let cases = [
        (
            "/v1/bdbs",
            include_str!("../src/sim/fixtures/GET_v1_bdbs.json"),
        ),
        (
            "/v1/bdbs/1",
            include_str!("../src/sim/fixtures/GET_v1_bdbs_1.json"),
        ),
        (
            "/v1/bdbs/stats",
            include_str!("../src/sim/fixtures/GET_v1_bdbs_stats.json"),
        ),
        (
            "/v1/cluster",
            include_str!("../src/sim/fixtures/GET_v1_cluster.json"),
        ),
        (
            "/v1/nodes",
            include_str!("../src/sim/fixtures/GET_v1_nodes.json"),
        ),
        (
            "/v1/nodes/1",
            include_str!("../src/sim/fixtures/GET_v1_nodes_1.json"),
        ),
        (
            "/v1/license",
            include_str!("../src/sim/fixtures/GET_v1_license.json"),
        ),
    ];
    for (path, fixture) in cases {
        let a = sim.get(path, Some(ADMIN)).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.body, fixture.as_bytes(), "{path}");
        assert_eq!(a.headers["content-type"], "application/json");
    }
    assert_eq!(sim.cluster.nodes()[0].request_count(), cases.len());
    assert_eq!(sim.cluster.nodes()[1].request_count(), 0);
}

#[tokio::test]
async fn tls12_and_alpn_http11_are_offered() {
    let pki = TestPki::generate().unwrap();
    let tls = SimTls {
        cert_pem: pki.cert_pem.clone(),
        key_pem: pki.key_pem.clone(),
    };
    let cluster = sim::start(SimOptions {
        nodes: 1,
        tls: Some(tls),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(cluster.nodes()[0].addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn basic_auth_is_required() {
    let sim = tls_sim(SimOptions::default()).await;
    for auth in [
        None,
        Some(("admin@redis.local", "wrong")),
        Some(("nobody@x", "admin123")),
    ] {
        let a = sim.get("/v1/bdbs", auth).await;
        assert_eq!(a.status, 401, "{auth:?}");
        assert_eq!(a.json()["error_code"], "unauthorized");
        assert!(a.headers.contains_key("www-authenticate"));
    }
    assert_eq!(
        sim.get("/v1/bdbs", Some(("viewer@redis.local", "viewer123")))
            .await
            .status,
        200
    );
    // Unauthenticated requests are recorded too.
    assert_eq!(sim.cluster.nodes()[0].request_count(), 4);
}

#[tokio::test]
async fn unknown_uids_and_paths_answer_404_json() {
    let sim = tls_sim(SimOptions::default()).await;
    for (path, code) in [
        ("/v1/bdbs/42", "db_not_exist"),
        ("/v1/bdbs/42/availability", "db_not_exist"),
        ("/v1/nodes/9", "node_not_exist"),
        ("/v1/users/99", "user_not_exist"),
        ("/v1/no/such/path", "not_found"),
    ] {
        let a = sim.get(path, Some(ADMIN)).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.json()["error_code"], code, "{path}");
        assert!(a.json()["description"].is_string());
    }
}

#[tokio::test]
async fn writes_answer_with_an_action_uid_and_are_recorded() {
    let sim = tls_sim(SimOptions::default()).await;
    let a = sim
        .try_send(
            Method::POST,
            "/v1/bdbs",
            Some(ADMIN),
            br#"{"name":"db2","memory_size":1073741824}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["name"], "db2");
    assert_eq!(a.json()["action_uid"].as_str().unwrap().len(), 36);
    let v2 = sim
        .try_send(
            Method::POST,
            "/v2/bdbs",
            Some(ADMIN),
            br#"{"bdb":{"name":"db3"}}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(v2.json()["bdb"]["name"], "db3");
    assert!(v2.json()["action_uid"].is_string());
    let del = sim
        .try_send(Method::DELETE, "/v1/bdbs/1", Some(ADMIN), Vec::new())
        .await
        .unwrap();
    assert!(del.json()["action_uid"].is_string());
    // A 3 MB multipart upload is streamed and digested, not stored.
    let upload = vec![b'm'; 3 * 1024 * 1024];
    let up = sim
        .try_send(Method::POST, "/v1/modules", Some(ADMIN), upload.clone())
        .await
        .unwrap();
    assert_eq!(up.status, 200);
    let rec = sim.cluster.nodes()[0].requests().pop().unwrap();
    assert_eq!(rec.body_len, upload.len() as u64);
    assert_eq!(rec.body_prefix, &upload[..sim::BODY_PREFIX_LEN]);
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&upload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rec.body_sha256, want);
}

#[tokio::test]
async fn the_target_and_headers_are_recorded_verbatim() {
    let sim = tls_sim(SimOptions::default()).await;
    let target = "/v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b";
    assert_eq!(sim.get(target, Some(ADMIN)).await.status, 200);
    let rec = sim.cluster.nodes()[0].requests().pop().unwrap();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.target, target);
    assert_eq!(rec.version, "HTTP/1.1");
    assert!(rec.header("AUTHORIZATION").unwrap().starts_with(b"Basic "));
    assert_eq!(rec.header_all("host").len(), 1);
    assert_eq!(rec.body_len, 0);
    sim.cluster.nodes()[0].clear_requests();
    assert_eq!(sim.cluster.nodes()[0].request_count(), 0);
}

#[tokio::test]
async fn down_refuses_connects_then_recovers_on_the_same_port() {
    let sim = tls_sim(SimOptions::default()).await;
    let node = &sim.cluster.nodes()[0];
    assert_eq!(sim.get("/v1/cluster", Some(ADMIN)).await.status, 200);
    node.set_mode(Mode::Down);
    let err = tokio::net::TcpStream::connect(node.addr())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(sim
        .try_send(Method::GET, "/v1/cluster", Some(ADMIN), Vec::new())
        .await
        .is_err());
    node.set_mode(Mode::Normal);
    assert_eq!(sim.get("/v1/cluster", Some(ADMIN)).await.status, 200);
}

#[tokio::test]
async fn not_in_cluster_and_forced_status() {
    let sim = tls_sim(SimOptions::default()).await;
    sim.cluster.nodes()[0].set_mode(Mode::NotInCluster);
    let a = sim.get("/v1/bdbs", Some(ADMIN)).await;
    assert_eq!(a.status, 503);
    assert!(a.json()["error_code"].is_string());
    sim.cluster.nodes()[0].set_mode(Mode::Status(429));
    assert_eq!(sim.get("/v1/bdbs", None).await.status, 429);
    sim.cluster.nodes()[0].set_mode(Mode::Normal);
    assert_eq!(sim.get("/v1/bdbs", Some(ADMIN)).await.status, 200);
}

#[tokio::test]
async fn broken_responses_are_client_errors() {
    let sim = tls_sim(SimOptions::default()).await;
    for mode in [
        Mode::Garbage,
        Mode::Reset,
        Mode::Close,
        Mode::ShortBody,
        Mode::BadCl,
    ] {
        sim.cluster.nodes()[0].set_mode(mode.clone());
        let r = sim
            .try_send(Method::GET, "/v1/bdbs", Some(ADMIN), Vec::new())
            .await;
        assert!(r.is_err(), "{mode:?} gave {:?}", r.map(|a| a.status));
    }
    // Every request was read and recorded before the node misbehaved.
    assert_eq!(sim.cluster.nodes()[0].request_count(), 5);
    sim.cluster.nodes()[0].set_mode(Mode::SlowHead(Duration::from_millis(300)));
    let t = std::time::Instant::now();
    assert_eq!(sim.get("/v1/bdbs", Some(ADMIN)).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn debuginfo_streams_exactly_the_configured_size() {
    let size = 5 * 1024 * 1024 + 7;
    let sim = tls_sim(SimOptions {
        debuginfo_bytes: size,
        ..SimOptions::default()
    })
    .await;
    for path in ["/v1/debuginfo/all", "/v1/debuginfo/node"] {
        let req = Request::get(sim.url(path))
            .header(
                "Authorization",
                format!("Basic {}", STANDARD.encode("admin@redis.local:admin123")),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sim.client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-gzip");
        let cd = resp.headers()["content-disposition"].to_str().unwrap();
        assert!(cd.starts_with("attachment; filename=debuginfo."), "{cd}");
        let mut body = resp.into_body();
        let (mut total, mut first) = (0u64, None);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                first.get_or_insert_with(|| data.slice(..2));
                total += data.len() as u64;
            }
        }
        assert_eq!(total, size, "{path}");
        assert_eq!(first.unwrap(), &[0x1f, 0x8b][..]);
    }
}

#[tokio::test]
async fn users_and_roles_follow_the_control_api() {
    let sim = tls_sim(SimOptions::default()).await;
    let users = sim.get("/v1/users", Some(ADMIN)).await.json();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let roles = sim.get("/v1/roles", Some(ADMIN)).await.json();
    let management_of = |uid: &Value| {
        roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| &r["uid"] == uid)
            .unwrap()["management"]
            .clone()
    };
    assert_eq!(management_of(&users[1]["role_uids"][0]), "db_viewer");

    let carol = ("carol@redis.local", "carol-pw");
    sim.cluster.add_user(SimUser {
        uid: 7,
        name: carol.0.into(),
        password: carol.1.into(),
        role: "cluster_viewer".into(),
    });
    let listed = sim.get("/v1/users/7", Some(carol)).await.json();
    assert_eq!(listed["email"], carol.0);
    assert_eq!(management_of(&listed["role_uids"][0]), "cluster_viewer");
    let token = sim
        .try_send(Method::POST, "/v1/users/authorize", Some(carol), Vec::new())
        .await
        .unwrap();
    assert_eq!(token.status, 200);
    assert!(token.json()["access_token"].is_string());
    let by_body = br#"{"username":"carol@redis.local","password":"carol-pw"}"#.to_vec();
    assert_eq!(
        sim.try_send(Method::POST, "/v1/users/authorize", None, by_body)
            .await
            .unwrap()
            .status,
        200
    );

    sim.cluster.set_password(carol.0, "new-pw");
    let after = sim
        .get("/v1/users/7", Some((carol.0, "new-pw")))
        .await
        .json();
    assert_ne!(after["password_issue_date"], listed["password_issue_date"]);
    assert_eq!(sim.get("/v1/cluster", Some(carol)).await.status, 401);
    let old = sim
        .try_send(Method::POST, "/v1/users/authorize", Some(carol), Vec::new())
        .await
        .unwrap();
    assert_eq!(old.status, 401);

    sim.cluster.remove_user(carol.0);
    assert_eq!(
        sim.get("/v1/cluster", Some((carol.0, "new-pw")))
            .await
            .status,
        401
    );
    assert_eq!(
        sim.get("/v1/users", Some(ADMIN))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    sim.cluster.shutdown().await;
}
