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
    timeout: Duration,
}

impl Connector {
    /// A connector using the upstream's TLS config (ALPN set to http/1.1).
    pub fn new(up: &Upstream, timeout: Duration) -> Connector {
        let mut tls = (*up.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Connector {
            tls: TlsConnector::from(Arc::new(tls)),
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
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| ClientError::Connect(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let tls = tokio::time::timeout(self.timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Connect(timed_out()))?
            .map_err(ClientError::Connect)?;
        Ok(NodeStream::Tls(tls))
    }
}

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
