//! Serde structs of the TOML config file: the first layer. Every struct
//! denies unknown keys (a mistyped security key must not fail open) and
//! carries explicit defaults; `config::validate` turns them into the
//! domain [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerFile,
    pub tls: Option<TlsFile>,
    pub upstream: Option<UpstreamFile>,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub auth: crate::auth::config::AuthConfig,
    #[serde(default)]
    pub policy: crate::policy::config::PolicyConfig,
    /// `[[roles]]`: custom roles.
    #[serde(default)]
    pub roles: Vec<crate::policy::config::CustomRoleConfig>,
    #[serde(default)]
    pub rate_limit: crate::ratelimit::config::RateLimitFile,
    #[serde(default)]
    pub audit: crate::audit::config::AuditConfig,
    #[serde(default)]
    pub metrics: crate::admin::MetricsConfig,
    #[serde(default)]
    pub log: crate::ops::logging::LogConfig,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Address the TLS listener binds.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// After SIGTERM, how long `/readyz` answers 503 while the listener
    /// still serves, before the drain starts (load balancers stop routing).
    #[serde(default = "default_shutdown_delay")]
    pub shutdown_delay: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: default_listen(),
            trusted_proxies: Vec::new(),
            shutdown_delay: default_shutdown_delay(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:9443".to_string()
}

fn default_shutdown_delay() -> String {
    "5s".to_string()
}

/// `[tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key: PKCS#8, SEC1 or RSA.
    pub key: String,
    /// PEM CA certificate(s) client certificates must chain to.
    pub client_ca: Option<String>,
    /// `"none"` (default), `"optional"` or `"required"`.
    #[serde(default)]
    pub client_auth: crate::server::tls::ClientAuth,
    /// How often `cert` and `key` are checked for changes (a renewed
    /// certificate is then loaded as by a reload); "0s" turns it off.
    #[serde(default = "default_watch_interval")]
    pub watch_interval: String,
}

fn default_watch_interval() -> String {
    "5s".to_string()
}

/// `[upstream]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// The cluster nodes: base URLs `https://host:9443` (or `http://`), or
    /// tables `{ name = "n1", url = "https://...", pin_sha256 = [...] }`.
    pub nodes: Vec<NodeEntry>,
    /// PEM bundle trusted for the nodes' certificates. Required for https nodes.
    pub ca: Option<String>,
    /// Server name to verify in the nodes' certificates instead of the URL's host.
    pub server_name: Option<String>,
    /// Idle pooled connections kept per node.
    #[serde(default = "default_pool_idle")]
    pub pool_max_idle_per_node: usize,
    /// `[upstream.versions]`: API version -> the subset of `nodes` serving it.
    #[serde(default)]
    pub versions: BTreeMap<String, Vec<String>>,
    /// `[upstream.health]`: active health checks.
    #[serde(default)]
    pub health: UpstreamHealthFile,
    /// `[upstream.retry]`: the retry budget.
    #[serde(default)]
    pub retry: UpstreamRetryFile,
    /// Send every call that is not node-local to the master the health
    /// checks report (needs `[upstream.health] credentials_file`).
    #[serde(default)]
    pub prefer_master: bool,
    /// `[upstream.aliases]`: `"host:port"` a node is known by inside the
    /// cluster (in a `307`'s `Location`) -> one of `nodes`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// `[upstream.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamHealthFile {
    /// Probe the nodes (else health is passive only).
    pub enabled: bool,
    pub interval: String,
    pub timeout: String,
    /// Consecutive passed checks that bring a node back.
    pub rise: u32,
    /// Consecutive failed checks that take a node out.
    pub fall: u32,
    /// A service account (same format as `[auth.cluster] credentials_file`):
    /// probes then call `GET /v1/cluster` with it.
    pub credentials_file: Option<String>,
}

impl Default for UpstreamHealthFile {
    fn default() -> Self {
        UpstreamHealthFile {
            enabled: true,
            interval: "5s".into(),
            timeout: "2s".into(),
            rise: 2,
            fall: 2,
            credentials_file: None,
        }
    }
}

/// `[upstream.retry]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamRetryFile {
    /// Retries allowed, in percent of the requests of the window.
    pub budget_percent: u32,
    /// The window the budget counts over.
    pub budget_window: String,
    /// Retries always allowed per window (so a quiet gateway can retry).
    pub min_per_window: u32,
}

impl Default for UpstreamRetryFile {
    fn default() -> Self {
        UpstreamRetryFile {
            budget_percent: 20,
            budget_window: "10s".into(),
            min_per_window: 10,
        }
    }
}

/// One entry of `[upstream] nodes`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NodeEntry {
    Url(String),
    Table(NodeTable),
}

/// `{ name = "n1", url = "https://...", pin_sha256 = ["base64", ...] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTable {
    /// What clients name the node by in `regate-node` (node-local calls).
    pub name: Option<String>,
    pub url: String,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo, base64: one of
    /// them must match (on top of the CA verification).
    #[serde(default)]
    pub pin_sha256: Vec<String>,
}

impl NodeEntry {
    pub fn url(&self) -> &str {
        match self {
            NodeEntry::Url(u) => u,
            NodeEntry::Table(t) => &t.url,
        }
    }
}

fn default_pool_idle() -> usize {
    64
}

/// `[timeouts]`: every phase has a deadline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsFile {
    pub tls_handshake: String,
    pub request_header: String,
    pub request_body: String,
    pub idle: String,
    pub upstream_connect: String,
    pub upstream_response: String,
    pub upstream_body: String,
    pub drain: String,
    pub linger: String,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        TimeoutsFile {
            tls_handshake: "10s".into(),
            request_header: "10s".into(),
            request_body: "300s".into(),
            idle: "60s".into(),
            upstream_connect: "5s".into(),
            upstream_response: "60s".into(),
            upstream_body: "600s".into(),
            drain: "30s".into(),
            linger: "5s".into(),
        }
    }
}

/// `[limits]`: every resource has a cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    pub max_h2_streams: u32,
    pub max_linger_bytes: u64,
    /// Largest response head accepted from a node (both client paths).
    pub upstream_max_header_bytes: usize,
    /// Most header lines accepted in a node's response head.
    pub upstream_max_headers: usize,
    /// Largest request body kept to re-send after a node's `307`.
    pub redirect_body_bytes: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024 * 1024,
            max_h2_streams: 100,
            max_linger_bytes: 8 * 1024 * 1024,
            upstream_max_header_bytes: 64 * 1024,
            upstream_max_headers: 100,
            redirect_body_bytes: 1024 * 1024,
        }
    }
}
