//! LOCAL STUB, do not merge: the minimal items `demo.rs` needs so the crate
//! compiles on the `audit` branch until the real simulator lands on main.
#![allow(dead_code)]

/// Stub.
#[derive(Default)]
pub struct SimOptions {
    pub tls: Option<SimTls>,
    pub users: Vec<SimUser>,
}

/// Stub.
pub struct SimUser {
    pub name: String,
    pub password: String,
}

/// Stub.
pub struct SimTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Stub.
pub struct SimCluster;

impl SimCluster {
    pub fn urls(&self) -> Vec<String> {
        Vec::new()
    }
    pub async fn shutdown(self) {}
}

/// Stub.
pub async fn start(_opts: SimOptions) -> std::io::Result<SimCluster> {
    Err(std::io::Error::other("sim stub"))
}
