//! End to end, in process: GET /v1/bdbs straight to a simulated node vs
//! through regate (users file with bcrypt cost 10 behind the cache, policy
//! enforced, limits evaluated, audit written, metrics on), over TLS
//! keep-alive, HTTP/1.1 and h2 (h2 through regate only: nodes speak 1.1). The difference is
//! what the gateway costs per request (on top of the client's own work,
//! which both sides share). Run: `cargo bench --bench e2e`.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use regate::pki::TestPki;
use regate::sim::{self, SimOptions, SimTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

fn client_tls(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()).flatten() {
        let _ = roots.add(c);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

type BenchClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client(ca: &str, h2: bool) -> BenchClient {
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca))
        .https_only();
    let conn = if h2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(h2);
    builder.build(conn)
}

async fn get(c: &BenchClient, url: &str, auth: &str) {
    let req = http::Request::get(url)
        .header("authorization", auth)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.expect("body");
}

fn e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate().expect("pki");
    pki.write_to(dir.path()).expect("pki files");
    let (cluster, running) = rt.block_on(async {
        let cluster = sim::start(SimOptions {
            nodes: 1,
            tls: Some(SimTls {
                cert_pem: pki.cert_pem.clone(),
                key_pem: pki.key_pem.clone(),
            }),
            ..SimOptions::default()
        })
        .await
        .expect("sim");
        // the realistic setup: users file, policy enforced, rate limits
        // evaluated (generous), audit records written, metrics on
        let hash = bcrypt::hash("admin123", 10).expect("hash");
        std::fs::write(
            dir.path().join("users.toml"),
            format!("[[users]]\nname = \"admin@redis.local\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n"),
        )
        .expect("users file");
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[upstream]\nnodes = [\"{}\"]\nca = \"ca.pem\"\n[auth]\nusers = \"users.toml\"\n[audit]\npath = \"audit.jsonl\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[rate_limit]\nper_ip = {{ rate = \"1000000/s\", burst = 1000000 }}\nper_user = {{ rate = \"1000000/s\", burst = 1000000 }}\n[rate_limit.classes]\nread = {{ rate = \"1000000/s\", burst = 1000000 }}\n",
            cluster.urls()[0]
        );
        let path = dir.path().join("regate.toml");
        std::fs::write(&path, cfg).expect("config");
        let config = regate::config::load(&path).map_err(|e| format!("{e:?}")).expect("config");
        let running = regate::start(config).await.expect("gateway");
        (cluster, running)
    });
    let auth = "Basic YWRtaW5AcmVkaXMubG9jYWw6YWRtaW4xMjM="; // admin@redis.local:admin123
    let direct = format!(
        "{}/v1/bdbs",
        cluster.urls()[0].replace("127.0.0.1", "localhost")
    );
    let via = format!("https://localhost:{}/v1/bdbs", running.addr.port());

    let mut g = c.benchmark_group("get_v1_bdbs");
    for h2 in [false, true] {
        let proto = if h2 { "h2" } else { "http1" };
        if !h2 {
            // the simulated node speaks HTTP/1.1 only, like the cluster's API
            let cl = client(&pki.ca_pem, false);
            g.bench_function(format!("direct/{proto}"), |b| {
                b.to_async(&rt).iter(|| get(&cl, &direct, auth))
            });
        }
        let cl = client(&pki.ca_pem, h2);
        g.bench_function(format!("regate/{proto}"), |b| {
            b.to_async(&rt).iter(|| get(&cl, &via, auth))
        });
    }
    g.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
