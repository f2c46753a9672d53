//! Responses of the simulated node and how they go on the wire: a status,
//! a few headers and a payload that is static, owned or generated on the
//! fly (debuginfo). Writes always carry `Content-Length`; generated
//! payloads are produced chunk by chunk and never held whole.

use serde_json::{json, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::debuginfo;

/// What a response carries.
#[derive(Debug)]
pub(crate) enum Payload {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    /// A debuginfo tarball of this many bytes, made while it is written.
    Generated(u64),
}

impl Payload {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Payload::Static(b) => b.len() as u64,
            Payload::Owned(b) => b.len() as u64,
            Payload::Generated(n) => *n,
        }
    }

    /// The byte at `offset` (for the 1 byte/s fault).
    pub(crate) fn byte_at(&self, offset: u64) -> u8 {
        let idx = usize::try_from(offset).unwrap_or(usize::MAX);
        match self {
            Payload::Static(b) => b.get(idx).copied().unwrap_or(0),
            Payload::Owned(b) => b.get(idx).copied().unwrap_or(0),
            Payload::Generated(_) => debuginfo::byte_at(offset),
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub payload: Payload,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            payload: Payload::Owned(body.to_string().into_bytes()),
        }
    }

    pub(crate) fn fixture(body: &'static str) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type", "application/json".into())],
            payload: Payload::Static(body.as_bytes()),
        }
    }

    /// An error shaped like the cluster's: `{"error_code", "description"}`.
    pub(crate) fn error(status: u16, code: &str, description: &str) -> Reply {
        Reply::json(
            status,
            &json!({"error_code": code, "description": description}),
        )
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Status line and headers, `Content-Length` included.
    pub(crate) fn head_bytes(&self, close: bool) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        out.push_str("Server: regate-sim\r\n");
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.payload.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Writes `reply` (without its body for HEAD) and flushes.
pub(crate) async fn write<S: AsyncWrite + Unpin>(
    io: &mut S,
    reply: &Reply,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let mut out = reply.head_bytes(close);
    match (&reply.payload, head_only) {
        (_, true) => io.write_all(&out).await?,
        // One write for head and body: one packet for small answers.
        (Payload::Static(b), false) => {
            out.extend_from_slice(b);
            io.write_all(&out).await?;
        }
        (Payload::Owned(b), false) => {
            out.extend_from_slice(b);
            io.write_all(&out).await?;
        }
        (Payload::Generated(n), false) => {
            io.write_all(&out).await?;
            debuginfo::write(io, *n).await?;
        }
    }
    io.flush().await
}
