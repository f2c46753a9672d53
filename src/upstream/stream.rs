//! Opening a connection to a node: TCP (no Nagle, keepalive probes), then
//! rustls for `https` nodes (ALPN http/1.1), each step under the connect
//! deadline. Both client paths (hyper for requests with a body, inline for
//! the rest) talk over the same [`NodeStream`]; nothing here speaks HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::Upstream;

use super::client::ClientError;

/// A connection to a node: plain TCP or TLS over TCP.
// Not boxed: it always lives on the heap already (in the inline path's
// boxed `Conn`, or in hyper's spawned connection task).
#[allow(clippy::large_enum_variant)]
pub enum NodeStream {
    Plain(TcpStream),
    Tls(TlsStream<TcpStream>),
}

/// Opens connections to the nodes of one upstream config.
pub struct Connector {
    tls: TlsConnector,
    /// Nodes with SPKI pins: their own TLS config (by authority).
    pinned: Vec<(Authority, TlsConnector)>,
    /// `upstream.server_name`, verified instead of each node's host.
    server_name: Option<ServerName<'static>>,
    timeout: Duration,
}

impl Connector {
    /// A connector using the upstream's TLS config (ALPN set to http/1.1).
    pub fn new(up: &Upstream, timeout: Duration) -> Connector {
        let mut tls = (*up.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut pinned = Vec::new();
        if let Some(verifier) = &up.verifier {
            for node in up.nodes.iter().filter(|n| !n.pins.is_empty()) {
                let mut cfg = tls.clone();
                cfg.dangerous().set_certificate_verifier(Arc::new(Pinned {
                    inner: verifier.clone(),
                    pins: node.pins.clone(),
                }));
                pinned.push((node.authority.clone(), TlsConnector::from(Arc::new(cfg))));
            }
        }
        Connector {
            tls: TlsConnector::from(Arc::new(tls)),
            pinned,
            server_name: up.server_name.clone(),
            timeout,
        }
    }

    /// A new connection (TCP, then TLS for https) under the connect timeout.
    pub async fn connect(
        &self,
        https: bool,
        authority: &Authority,
    ) -> Result<NodeStream, ClientError> {
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "upstream connect timed out");
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Connect(timed_out()))?
            .map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
        if !https {
            return Ok(NodeStream::Plain(tcp));
        }
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => ServerName::try_from(host.to_owned()).map_err(|e| {
                ClientError::Connect(io::Error::new(io::ErrorKind::InvalidInput, e))
            })?,
        };
        let connector = self
            .pinned
            .iter()
            .find(|(a, _)| a == authority)
            .map_or(&self.tls, |(_, c)| c);
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Connect(timed_out()))?
            .map_err(ClientError::Connect)?;
        Ok(NodeStream::Tls(tls))
    }
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER, with its
/// SEQUENCE header): what `pin_sha256` holds, base64-encoded.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    use sha2::Digest;
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(sha2::Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

/// The CA verification, then the node's SPKI pins: a certificate the CA
/// vouches for is still refused unless its key is pinned.
#[derive(Debug)]
struct Pinned {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match spki_sha256(end_entity) {
            Some(d) if self.pins.contains(&d) => Ok(verified),
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))),
            )),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificate's key matches none of the node's `pin_sha256`.
#[derive(Debug)]
struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate key matches no pin_sha256 of the node")
    }
}

impl std::error::Error for PinMismatch {}

impl AsyncRead for NodeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NodeStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NodeStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            NodeStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NodeStream::Plain(s) => s.is_write_vectored(),
            NodeStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_flush(cx),
            NodeStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NodeStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
