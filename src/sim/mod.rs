//! A simulated Redis Enterprise Software cluster for `regate demo` and the
//! integration tests: N nodes on `127.0.0.1`, each serving the RS REST API
//! over HTTPS (or plain HTTP) with Basic auth, captured fixture bodies, a
//! shared user table, a request log and switchable fault modes. It is kept
//! apart from the gateway and must never be used as a real upstream.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let cluster = regate::sim::start(regate::sim::SimOptions::default()).await?;
//! cluster.nodes()[1].set_mode(regate::sim::Mode::Down);
//! println!("{:?}", cluster.urls());
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod conn;
mod debuginfo;
mod faults;
mod fixtures;
mod head;
mod http1;
mod ids;
mod node;
mod record;
mod reply;
mod routes;
mod users;
#[cfg(test)]
mod wire_tests;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub use node::{Mode, SimNode};
pub use record::{RecordedRequest, BODY_PREFIX_LEN};
pub use users::SimUser;

use api::Api;
use users::UserTable;

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Number of nodes (each its own port). At least one is started.
    pub nodes: usize,
    /// Serve HTTPS with this certificate; `None` serves plain HTTP.
    pub tls: Option<SimTls>,
    /// The cluster's users, shared by all nodes.
    pub users: Vec<SimUser>,
    /// Size of the `GET /v1/debuginfo/*` download.
    pub debuginfo_bytes: u64,
}

impl Default for SimOptions {
    /// 3 nodes, plain HTTP, an admin and a db_viewer, 1 MiB debuginfo.
    fn default() -> Self {
        SimOptions {
            nodes: 3,
            tls: None,
            users: vec![
                SimUser {
                    uid: 1,
                    name: "admin@redis.local".into(),
                    password: "admin123".into(),
                    role: "admin".into(),
                },
                SimUser {
                    uid: 2,
                    name: "viewer@redis.local".into(),
                    password: "viewer123".into(),
                    role: "db_viewer".into(),
                },
            ],
            debuginfo_bytes: 1024 * 1024,
        }
    }
}

/// Server certificate chain and private key, as PEM text.
#[derive(Clone)]
pub struct SimTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for SimTls {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

/// A running simulated cluster. Dropping it stops every node.
pub struct SimCluster {
    nodes: Vec<SimNode>,
    users: UserTable,
    api: Arc<Api>,
}

/// Starts a cluster: one listener per node on `127.0.0.1:0`.
pub async fn start(opts: SimOptions) -> std::io::Result<SimCluster> {
    let tls = opts.tls.as_ref().map(acceptor).transpose()?;
    let users = UserTable::new(opts.users);
    let api = Arc::new(Api::new(
        users.clone(),
        opts.debuginfo_bytes,
        opts.nodes.max(1),
    ));
    let mut nodes = Vec::with_capacity(opts.nodes.max(1));
    for _ in 0..opts.nodes.max(1) {
        nodes.push(SimNode::start(tls.clone(), api.clone()).await?);
    }
    Ok(SimCluster { nodes, users, api })
}

fn acceptor(tls: &SimTls) -> std::io::Result<TlsAcceptor> {
    let bad = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl SimCluster {
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// Every node's base URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(SimNode::url).collect()
    }

    /// Makes node `i` (0-based) the master `GET /v1/nodes/status` reports,
    /// whose hostname is `sim-node-{i + 1}`.
    pub fn set_master(&self, i: usize) {
        self.api
            .master
            .store(i as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds a user (replacing one with the same name or uid).
    pub fn add_user(&self, u: SimUser) {
        self.users.upsert(u);
    }

    /// Changes a user's password and its `password_issue_date`; unknown
    /// names are ignored.
    pub fn set_password(&self, name: &str, password: &str) {
        if !self.users.set_password(name, password) {
            tracing::debug!(name, "sim: set_password for an unknown user");
        }
    }

    /// Removes a user; unknown names are ignored.
    pub fn remove_user(&self, name: &str) {
        self.users.remove(name);
    }

    /// Closes every listener and connection and waits for the accept
    /// loops to end.
    pub async fn shutdown(self) {
        for node in &self.nodes {
            node.stop();
        }
        for node in &self.nodes {
            node.join().await;
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.stop();
        }
    }
}
