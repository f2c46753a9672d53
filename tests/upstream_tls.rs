//! Upstream TLS through the gateway: a node whose certificate comes from
//! another CA, or whose key matches none of its `pin_sha256`, is refused
//! with 502 `upstream_tls` before a byte of the request is sent (audited,
//! counted); a matching pin is served; a node that never completes the
//! handshake is a 504 after `upstream_connect`.

mod common;
mod gw;

use base64::Engine;
use common::*;
use regate::sim::{SimOptions, SimTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

#[tokio::test]
async fn a_node_certified_by_another_ca_is_refused() {
    let other = regate::pki::TestPki::generate().unwrap();
    let w = World::with(Setup {
        sim: Some(SimOptions {
            tls: Some(SimTls {
                cert_pem: other.cert_pem.clone(),
                key_pem: other.key_pem.clone(),
            }),
            ..SimOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error_code"], "upstream_tls");
    // the node is out now (h2 as well)
    let r = w.client(true).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error_code"], "no_healthy_node");
    // the first one tried and was refused; nothing was sent
    let lines = wait_audit(&w, 1).await;
    assert_eq!(lines[0]["status"], 502);
    assert_eq!(lines[0]["upstream_tried"][0]["error"], "tls");
    assert_eq!(w.node(0).request_count(), 0);
    let m = gw::metrics_text(w.gateway.metrics_addr).await;
    assert_eq!(
        gw::metric_sum(&m, "regate_upstream_errors_total", &[("kind", "tls")]),
        1.0
    );
}

fn pin_of(cert_pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let digest = regate::upstream::stream::spki_sha256(&der).unwrap();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[tokio::test]
async fn a_pinned_node_must_present_the_pinned_key() {
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let w = World::with(Setup {
        node_urls: vec![format!(
            "{{ name = \"n1\", url = \"{{node0}}\", pin_sha256 = [\"{wrong}\"] }}"
        )],
        ..Setup::default()
    })
    .await;
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 502, "the CA vouches for it, the pin does not");
    assert_eq!(r.json()["error_code"], "upstream_tls");
    assert_eq!(w.node(0).request_count(), 0);

    // the right pin (reloaded): served
    let text = std::fs::read_to_string(&w.config_path).unwrap();
    let right = pin_of(&w.pki.cert_pem);
    std::fs::write(&w.config_path, text.replace(&wrong, &right)).unwrap();
    let gw = w.gateway.gateway.clone();
    tokio::task::spawn_blocking(move || gw.reload())
        .await
        .unwrap()
        .unwrap();
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(w.node(0).request_count(), 1);
}

#[tokio::test]
async fn a_node_that_never_completes_the_handshake_is_504() {
    // accepted by the kernel, never by anyone: the TLS handshake hangs
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let w = World::with(Setup {
        node_urls: vec![url],
        extra: "[timeouts]\nupstream_connect = \"300ms\"\n".into(),
        ..Setup::default()
    })
    .await;
    let r = w.client(false).get(&w.url("/v1/bdbs"), ADMIN).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error_code"], "upstream_timeout");
}
