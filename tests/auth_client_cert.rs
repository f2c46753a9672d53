//! Client certificates (issue 17): `[tls] client_ca` + `client_auth`, and
//! users-file `client_cert` bindings. Certificates are minted per run with
//! rcgen (a client CA, another CA, one certificate per user); clients are
//! rustls (through hyper) and curl `--cert/--key`. What each client sees:
//! no certificate / another CA's certificate fail the handshake with
//! `required`; another user's certificate gets 403
//! `client_certificate_mismatch` without any password hashing; the right
//! one gets in, and the audit record names its subject and fingerprint.

mod common;
mod gw;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA that signs client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A client certificate: (cert PEM, key PEM, SHA-256 hex of its DER).
    fn issue(&self, cn: &str, email: Option<&str>) -> (String, String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        if let Some(e) = email {
            p.subject_alt_names
                .push(SanType::Rfc822Name(e.try_into().unwrap()));
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let sha = {
            use sha2::Digest;
            sha2::Sha256::digest(cert.der())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        (cert.pem(), key.serialize_pem(), sha)
    }
}

/// Everything a test needs: the world and its client certificates.
struct Mtls {
    w: World,
    /// ADMIN's own certificate (bound by its SAN email).
    admin: (String, String, String),
    /// VIEWER's certificate (VIEWER has no binding).
    viewer: (String, String, String),
    /// ADMIN's names, but signed by another CA.
    forged: (String, String, String),
}

const ADMIN_EMAIL: &str = "admin-laptop@corp.example";

async fn start(mode: &str) -> Mtls {
    let ca = Ca::new("regate test client CA");
    let other = Ca::new("some other CA");
    let admin = ca.issue("admin-laptop", Some(ADMIN_EMAIL));
    let viewer = ca.issue("viewer-robot", None);
    let forged = other.issue("admin-laptop", Some(ADMIN_EMAIL));
    let mut users = String::new();
    for (name, pass, role, uid, bind) in [
        (ADMIN.0, ADMIN.1, "admin", 1, Some(ADMIN_EMAIL)),
        (VIEWER.0, VIEWER.1, "db_viewer", 2, None),
    ] {
        let hash = bcrypt::hash(pass, 4).unwrap();
        users.push_str(&format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nrole = \"{role}\"\nuid = {uid}\n"
        ));
        if let Some(b) = bind {
            users.push_str(&format!("client_cert = \"{b}\"\n"));
        }
    }
    let mut files = vec![
        ("client-ca.pem".to_string(), ca.cert.pem()),
        ("other-ca.pem".to_string(), other.cert.pem()),
        ("users.toml".to_string(), users),
    ];
    for (name, (cert, key, _)) in [("admin", &admin), ("viewer", &viewer), ("forged", &forged)] {
        files.push((format!("{name}.pem"), cert.clone()));
        files.push((format!("{name}.key"), key.clone()));
    }
    let w = World::with_tls(
        Setup {
            extra: "[auth]\nusers = \"users.toml\"\n".into(),
            files,
            ..Setup::default()
        },
        &format!("client_ca = \"client-ca.pem\"\nclient_auth = \"{mode}\"\n"),
    )
    .await;
    Mtls {
        w,
        admin,
        viewer,
        forged,
    }
}

/// A client presenting `cert` (or nothing).
fn client(w: &World, cert: Option<&(String, String, String)>) -> TestClient {
    TestClient::with_tls(client_config(w, cert), false)
}

/// The rustls config of such a client.
fn client_config(w: &World, cert: Option<&(String, String, String)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(w.pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match cert {
        None => b.with_no_client_auth(),
        Some((pem, key, _)) => {
            let chain = vec![CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    };
    cfg
}

async fn try_get(c: &TestClient, url: &str, who: (&str, &str)) -> Result<Reply, String> {
    let req = http::Request::get(url)
        .header("authorization", basic(who.0, who.1))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.raw_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
        version,
    })
}

fn verifications(w: &World) -> u64 {
    w.gateway.gateway.current().auth.stats().verifications()
}

fn assert_mismatch(r: &Reply, what: &str) {
    assert_eq!(
        r.status,
        403,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.json()["error_code"],
        "client_certificate_mismatch",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_and_bindings() {
    let m = start("required").await;
    let w = &m.w;
    let url = w.url("/v1/bdbs");
    let failures = || async {
        let text = gw::metrics_text(w.gateway.metrics_addr).await;
        gw::metric_sum(&text, "regate_tls_handshake_failures_total", &[])
    };
    assert_eq!(failures().await, 0.0);

    // No certificate, or one from another CA: no HTTP at all.
    let r = try_get(&client(w, None), &url, ADMIN).await;
    assert!(
        r.is_err(),
        "no certificate got an answer: {:?}",
        r.map(|r| r.status)
    );
    let r = try_get(&client(w, Some(&m.forged)), &url, ADMIN).await;
    assert!(r.is_err(), "another CA's certificate got an answer");
    gw::eventually(
        "two failed handshakes counted",
        std::time::Duration::from_secs(10),
        || async { (failures().await >= 2.0).then_some(()) },
    )
    .await;

    // The admin's own certificate and password: in.
    let r = try_get(&client(w, Some(&m.admin)), &url, ADMIN)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The viewer's certificate with the admin's (right) password: 403,
    // decided before any hashing.
    let before = verifications(w);
    let r = try_get(&client(w, Some(&m.viewer)), &url, ADMIN)
        .await
        .unwrap();
    assert_mismatch(&r, "another user's certificate");
    assert_eq!(verifications(w), before, "no hashing for a mismatch");
    // The viewer is not bound: its password works with any trusted cert.
    let r = try_get(&client(w, Some(&m.viewer)), &url, VIEWER)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(w.upstream_requests().len(), 2);

    // The audit trail names the certificate of each request.
    let lines = wait_audit(w, 3).await;
    let admin_line = lines
        .iter()
        .find(|l| l["status"] == 200 && l["user"] == ADMIN.0)
        .expect("the admin's request is audited");
    assert_eq!(admin_line["client_cert"], "admin-laptop");
    assert_eq!(admin_line["client_cert_sha256"], m.admin.2.as_str());
    let refused = lines.iter().find(|l| l["status"] == 403).unwrap();
    assert_eq!(refused["client_cert"], "viewer-robot");
    assert_eq!(refused["client_cert_sha256"], m.viewer.2.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_bind_only_bound_users() {
    let m = start("optional").await;
    let w = &m.w;
    let url = w.url("/v1/bdbs");
    // Without a certificate: unbound users get in, bound ones get 403.
    let c = client(w, None);
    let r = try_get(&c, &url, VIEWER).await.unwrap();
    assert_eq!(r.status, 200);
    let r = try_get(&c, &url, ADMIN).await.unwrap();
    assert_mismatch(&r, "no certificate, bound user");
    // A cached verification of the admin (made on its own connection) is
    // not accepted on a connection without the certificate.
    let own = client(w, Some(&m.admin));
    assert_eq!(try_get(&own, &url, ADMIN).await.unwrap().status, 200);
    let hashed = verifications(w);
    let r = try_get(&c, &url, ADMIN).await.unwrap();
    assert_mismatch(&r, "cached credentials, no certificate");
    assert_eq!(try_get(&own, &url, ADMIN).await.unwrap().status, 200);
    assert_eq!(
        verifications(w),
        hashed,
        "the cache entry survived the refusal"
    );
    // Another CA's certificate is still refused at the handshake.
    assert!(try_get(&client(w, Some(&m.forged)), &url, VIEWER)
        .await
        .is_err());
}

/// curl's exit code and the HTTP status it printed (`-w %{http_code}`).
async fn curl(w: &World, cert: Option<&str>, who: (&str, &str)) -> (i32, String) {
    let dir = w.dir.path();
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--cacert")
        .arg(dir.join("ca.pem"))
        .args(["-u", &format!("{}:{}", who.0, who.1)]);
    if let Some(name) = cert {
        cmd.arg("--cert")
            .arg(dir.join(format!("{name}.pem")))
            .arg("--key")
            .arg(dir.join(format!("{name}.key")));
    }
    let out = cmd
        .arg(w.url("/v1/bdbs"))
        .output()
        .await
        .expect("curl is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_cert_and_key() {
    let m = start("required").await;
    let w = &m.w;
    assert_eq!(curl(w, Some("admin"), ADMIN).await, (0, "200".into()));
    assert_eq!(curl(w, Some("viewer"), ADMIN).await, (0, "403".into()));
    let (code, status) = curl(w, None, ADMIN).await;
    assert!(
        code != 0 && status == "000",
        "no certificate: curl {code} {status}"
    );
    let (code, status) = curl(w, Some("forged"), ADMIN).await;
    assert!(
        code != 0 && status == "000",
        "other CA: curl {code} {status}"
    );
    assert_eq!(w.upstream_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_picks_up_a_new_client_ca() {
    let m = start("required").await;
    let w = &m.w;
    let url = w.url("/v1/bdbs");
    assert_eq!(
        try_get(&client(w, Some(&m.admin)), &url, ADMIN)
            .await
            .unwrap()
            .status,
        200
    );
    // The CA is rotated: the "other" CA's certificate is now the valid one.
    std::fs::copy(
        w.dir.path().join("other-ca.pem"),
        w.dir.path().join("client-ca.pem"),
    )
    .unwrap();
    w.gateway.gateway.reload().unwrap();
    let r = try_get(&client(w, Some(&m.forged)), &url, ADMIN)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the new CA's certificate is accepted");
    assert!(
        try_get(&client(w, Some(&m.admin)), &url, ADMIN)
            .await
            .is_err(),
        "the old CA's certificate fails the handshake after the reload"
    );
}

fn check_config(w: &World) -> Vec<regate::config::ConfigError> {
    match regate::config::load(&w.config_path) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[tokio::test]
async fn client_auth_config_errors_name_their_key() {
    let m = start("required").await;
    let w = &m.w;
    let cfg = std::fs::read_to_string(&w.config_path).unwrap();
    let cases = [
        (
            "client_auth = \"required\"",
            "client_auth = \"none\"",
            "tls.client_auth",
        ),
        (
            "client_auth = \"required\"",
            "client_auth = \"sometimes\"",
            "tls.client_auth",
        ),
        ("client_ca = \"client-ca.pem\"\n", "", "tls.client_ca"),
        (
            "client_ca = \"client-ca.pem\"",
            "client_ca = \"missing.pem\"",
            "tls.client_ca",
        ),
    ];
    for (from, to, key) in cases {
        std::fs::write(&w.config_path, cfg.replace(from, to)).unwrap();
        let errs = check_config(w);
        assert!(
            errs.iter().any(|e| e.key == key),
            "{from} -> {to}: {errs:?}"
        );
    }
    // Both removed, but a user still bound: the users file is named.
    let none = cfg
        .replace("client_ca = \"client-ca.pem\"\n", "")
        .replace("client_auth = \"required\"\n", "");
    std::fs::write(&w.config_path, none).unwrap();
    let errs = check_config(w);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "auth.users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_keeps_its_certificate() {
    let m = start("required").await;
    let w = &m.w;
    let mut cfg = client_config(w, Some(&m.admin));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    let req = format!(
        "GET /v1/bdbs HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic(ADMIN.0, ADMIN.1)
    );
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        kinds.push(tls.get_ref().1.handshake_kind());
        let (resp, _) =
            raw_exchange(&mut tls, req.as_bytes(), std::time::Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    }
    assert_eq!(kinds[1], Some(rustls::HandshakeKind::Resumed), "{kinds:?}");
    // Both requests were audited with the certificate.
    let lines = wait_audit(w, 2).await;
    for l in &lines {
        assert_eq!(l["client_cert_sha256"], m.admin.2.as_str(), "{l}");
    }
}
