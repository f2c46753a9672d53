//! LOCAL STUB, do not merge: the minimal surface `demo.rs` uses, so the
//! crate compiles on the `ratelimit` branch until the real sim lands on main.

/// Stub of the simulator's TLS material.
#[derive(Debug, Clone, Default)]
pub struct SimTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Stub of a simulated user.
#[derive(Debug, Clone, Default)]
pub struct SimUser {
    pub name: String,
    pub password: String,
}

/// Stub of the simulator options.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub users: Vec<SimUser>,
    pub tls: Option<SimTls>,
}

/// Stub of a running simulated cluster.
#[derive(Debug, Default)]
pub struct SimCluster {
    urls: Vec<String>,
}

impl SimCluster {
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
    pub async fn shutdown(self) {}
}

/// Stub: always fails (the real simulator is not merged on this branch).
pub async fn start(_opts: SimOptions) -> std::io::Result<SimCluster> {
    Err(std::io::Error::other(
        "sim stub: simulator not available on this branch",
    ))
}
