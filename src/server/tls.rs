//! The client-facing TLS configuration: rustls (ring provider), TLS 1.2
//! and 1.3 only, AEAD suites with forward secrecy only (the provider's
//! defaults), server cipher preference, ALPN `h2` then `http/1.1`, no
//! 0-RTT, stateless session tickets for cheap resumption. PEM is parsed
//! with `rustls-pki-types`' `PemObject`. With `client_auth` set, client
//! certificates are verified against `client_ca` by webpki
//! (`WebPkiClientVerifier`); a client that fails that check fails the
//! handshake (counted and logged at debug by the connection task).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use crate::config::ConfigError;

/// Loads a PEM certificate chain (leaf first).
pub fn load_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<_> = iter
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(key, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

/// `[tls] client_auth`: whether clients are asked for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate is asked for (default).
    #[default]
    None,
    /// Asked for; a client may go without, but one it presents must chain
    /// to `client_ca`.
    Optional,
    /// A certificate chaining to `client_ca` is required to connect.
    Required,
}

/// Builds the client verifier for `mode` and the CA file (the
/// `client_auth`/`client_ca` pair already checked for consistency).
fn client_verifier(
    mode: ClientAuth,
    ca: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca, "tls.client_ca")? {
        roots.add(c).map_err(|e| {
            ConfigError::new(
                "tls.client_ca",
                format!("{}: not a usable CA certificate: {e}", ca.display()),
            )
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match mode {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        ClientAuth::Required | ClientAuth::None => builder,
    };
    builder
        .build()
        .map_err(|e| ConfigError::new("tls.client_ca", format!("{}: {e}", ca.display())))
}

/// Builds the listener's rustls config from the `[tls]` files. `client`
/// is `client_auth` with the `client_ca` path, when clients are asked for
/// a certificate.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client: Option<(ClientAuth, &Path)>,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let chain = load_certs(cert, "tls.cert")?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ConfigError::new(
            "tls.key",
            format!(
                "{}: no usable PKCS#8, SEC1 or RSA private key ({e})",
                key.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::new("tls", e.to_string()))?;
    let builder = match client {
        Some((mode, ca)) if mode != ClientAuth::None => {
            builder.with_client_cert_verifier(client_verifier(mode, ca, &provider)?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key_der).map_err(|e| {
        ConfigError::new(
            "tls.key",
            format!("does not match tls.cert or is unsupported: {e}"),
        )
    })?;
    cfg.ignore_client_order = true;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.max_early_data_size = 0;
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| ConfigError::new("tls", format!("session tickets: {e}")))?;
    Ok(Arc::new(cfg))
}

/// Name of a negotiated protocol version, for the audit record.
pub fn version_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
}
