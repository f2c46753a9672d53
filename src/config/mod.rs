//! Configuration: `file.rs` holds the serde structs of the TOML file
//! (unknown keys are errors); this module validates them into the domain
//! [`Config`] the gateway runs from. Nothing here binds a port: a config
//! that fails validation never reaches the listener.

pub mod duration;
pub mod file;
pub mod files;
mod upstream;

use std::fmt;

/// One problem in a config file, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `tls.cert` or `upstream.nodes[1]`.
    pub key: String,
    /// What is wrong, without secrets.
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line: control characters (a newline in a configured path, say)
    /// are written escaped (found by fuzz/config_load).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        one_line(f, &self.key)?;
        f.write_str(": ")?;
        one_line(f, &self.problem)
    }
}

fn one_line(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    use fmt::Write;
    for c in s.chars() {
        match c.is_control() {
            true => write!(f, "{}", c.escape_default())?,
            false => f.write_char(c)?,
        }
    }
    Ok(())
}

impl std::error::Error for ConfigError {}

impl Config {
    /// How much a client may still send after an early answer.
    pub fn linger_bounds(&self) -> crate::linger::Bounds {
        crate::linger::Bounds {
            bytes: self.limits.max_linger_bytes,
            time: self.timeouts.linger,
        }
    }
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use crate::net::{Cidr, TrustedProxies};
use duration::parse_duration;
use file::FileConfig;

/// The validated configuration the gateway runs from. Certificates and
/// keys are already loaded and the rustls configs built, so a config that
/// validates can serve.
pub struct Config {
    /// The file it came from (relative paths inside resolve against its directory).
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub trusted_proxies: TrustedProxies,
    /// `[server] shutdown_delay`: `/readyz` is 503 this long before the drain.
    pub shutdown_delay: Duration,
    pub tls: Arc<rustls::ServerConfig>,
    /// Where `tls` came from, and the leaf certificate's validity.
    pub tls_files: TlsFiles,
    pub upstream: Upstream,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub policy: Arc<crate::policy::Policy>,
    /// Taken (moved into the authenticator) when the snapshot is built.
    pub auth: Option<crate::auth::config::AuthSettings>,
    pub rate_limit: crate::ratelimit::RateLimitSettings,
    pub audit: crate::audit::config::AuditSettings,
    pub metrics: crate::admin::MetricsSettings,
    /// `[log]`: applied at start (`regate run` reads it before the rest).
    pub log: crate::ops::logging::LogSettings,
}

/// The `[tls]` files, resolved, and the leaf certificate's dates.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub validity: Option<files::Validity>,
    /// `[tls] watch_interval`; zero: not watched.
    pub watch_interval: Duration,
}

/// The cluster nodes and how to reach them.
pub struct Upstream {
    pub nodes: Vec<Node>,
    pub tls: Arc<rustls::ClientConfig>,
    pub pool_max_idle_per_node: usize,
    /// API version number (2 for `v2`) -> indexes into `nodes` that serve it.
    pub versions: Vec<(u16, Vec<usize>)>,
    /// `[upstream.health]`
    pub health: crate::upstream::health::HealthSettings,
    /// `[upstream.retry]`
    pub retry: crate::upstream::retry::RetrySettings,
    /// `[upstream.aliases]`: another authority of a node (index into `nodes`).
    pub aliases: Vec<(Authority, usize)>,
    /// The CA verification of `tls`, for nodes with SPKI pins (checked on
    /// top of it); `None` without a CA.
    pub verifier: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// `upstream.prefer_master`
    pub prefer_master: bool,
    /// `upstream.server_name`: the name verified instead of each URL's host.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// One cluster node.
#[derive(Debug, Clone)]
pub struct Node {
    /// As written in the config (used as a bounded metrics label).
    pub url: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The name clients pick it by (`regate-node`), when given.
    pub name: Option<Arc<str>>,
    /// SHA-256 SPKI pins: with any, the certificate must match one.
    pub pins: Vec<[u8; 32]>,
}

/// Every deadline, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub tls_handshake: Duration,
    pub request_header: Duration,
    pub request_body: Duration,
    pub idle: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub upstream_body: Duration,
    pub drain: Duration,
    /// Reading what a client still sends after an early answer (lingering
    /// close, discarding an unread request body), at most this long.
    pub linger: Duration,
}

/// Every cap, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    pub max_h2_streams: u32,
    /// Bytes read and thrown away after an early answer (per request body
    /// on HTTP/2, per connection close on HTTP/1.1).
    pub max_linger_bytes: u64,
    /// Response head limits towards the nodes (both client paths).
    pub upstream_head: crate::upstream::framing::HeadLimits,
    /// Request bodies up to this size are kept to follow a node's `307`.
    pub redirect_body_bytes: u64,
}

/// Reads, parses and validates `path`. All problems are returned, each
/// naming its key, so `check-config` can list them at once.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read config file: {e}"),
        )]
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| vec![toml_error(&text, &e)])?;
    // relative paths inside resolve against the file's directory, however
    // the path to it was written (`regate.toml`, `./regate.toml`, `../x/r.toml`)
    let base = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    validate(file, path, &base)
}

/// Turns a TOML/serde error into one line naming the key.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError::new("<file>", message);
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    // the innermost [table] header above the error names the section
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    // the key is what stands before `=` on the error's line (the span may
    // cover the key itself or only its value)
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let key_text = match line_text.split_once('=') {
        Some((k, _)) if !k.trim_start().starts_with('[') => k.trim().trim_matches('"').to_string(),
        _ => text
            .get(span.clone())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    };
    let key = match (table, key_text.is_empty() || key_text.starts_with('[')) {
        (Some(t), false) => format!("{t}.{key_text}"),
        // an unterminated `[` names no table (found by fuzz/config_load)
        (Some(t), true) if !t.is_empty() => t,
        (Some(_), true) => "<file>".to_string(),
        (None, false) => key_text,
        (None, true) => "<file>".to_string(),
    };
    ConfigError::new(key, format!("line {line}: {message}"))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `[tls] client_auth` with its `client_ca`, checked as a pair.
fn client_auth<'a>(
    mode: crate::server::tls::ClientAuth,
    ca: Option<&'a Path>,
    errs: &mut Vec<ConfigError>,
) -> Option<(crate::server::tls::ClientAuth, &'a Path)> {
    use crate::server::tls::ClientAuth;
    match (mode, ca) {
        (ClientAuth::None, None) => None,
        (ClientAuth::None, Some(_)) => {
            errs.push(ConfigError::new(
                "tls.client_auth",
                "tls.client_ca is set but client_auth is \"none\" (use \"optional\" or \"required\")",
            ));
            None
        }
        (_, None) => {
            errs.push(ConfigError::new(
                "tls.client_ca",
                "required when client_auth is \"optional\" or \"required\"",
            ));
            None
        }
        (mode, Some(ca)) => Some((mode, ca)),
    }
}

/// Validates the parsed file into a [`Config`].
pub fn validate(file: FileConfig, path: &Path, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut errs = Vec::new();

    let listen = file
        .server
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| {
            errs.push(ConfigError::new(
                "server.listen",
                format!(
                    "`{}` is not an address like 0.0.0.0:9443",
                    file.server.listen
                ),
            ))
        })
        .ok();
    let mut proxies = Vec::new();
    for (i, p) in file.server.trusted_proxies.iter().enumerate() {
        match Cidr::parse(p) {
            Ok(c) => proxies.push(c),
            Err(e) => errs.push(ConfigError::new(format!("server.trusted_proxies[{i}]"), e)),
        }
    }

    let shutdown_delay = match parse_duration(&file.server.shutdown_delay) {
        Ok(d) if d > MAX_SHUTDOWN_DELAY => {
            errs.push(ConfigError::new(
                "server.shutdown_delay",
                "must be at most 10m",
            ));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(ConfigError::new("server.shutdown_delay", e));
            None
        }
    };

    let mut tls_files = TlsFiles::default();
    let tls = match &file.tls {
        None => {
            errs.push(ConfigError::new(
                "tls",
                "section is required (cert and key)",
            ));
            None
        }
        Some(t) => {
            tls_files.cert = resolve(base, &t.cert);
            tls_files.key = resolve(base, &t.key);
            match parse_duration(&t.watch_interval) {
                Ok(d) => tls_files.watch_interval = d,
                Err(e) => errs.push(ConfigError::new("tls.watch_interval", e)),
            }
            let client_ca = t.client_ca.as_deref().map(|p| resolve(base, p));
            let client = client_auth(t.client_auth, client_ca.as_deref(), &mut errs);
            let built = crate::server::tls::server_config(&tls_files.cert, &tls_files.key, client)
                .map_err(|e| errs.push(e))
                .ok();
            if built.is_some() {
                // the leaf's dates: expired or not yet valid is an error
                tls_files.validity = crate::server::tls::load_certs(&tls_files.cert, "tls.cert")
                    .ok()
                    .and_then(|chain| chain.first().and_then(|c| files::validity(c)));
                if let Some(v) = tls_files.validity {
                    if let Err(e) = files::check_validity(v, files::now_unix(), &tls_files.cert) {
                        errs.push(e);
                    }
                }
            }
            built
        }
    };

    let upstream = match &file.upstream {
        None => {
            errs.push(ConfigError::new("upstream", "section is required (nodes)"));
            None
        }
        Some(u) => upstream::validate_upstream(u, base, &mut errs),
    };

    let timeouts = validate_timeouts(&file.timeouts, &mut errs);
    let limits = validate_limits(&file.limits, &mut errs);

    // The policy first: the users file is checked against its roles.
    let policy = crate::policy::Policy::compile(&file.policy, &file.roles)
        .map(Arc::new)
        .map_err(|e| errs.extend(e))
        .ok();
    let auth = match &policy {
        Some(p) => {
            let p = p.clone();
            let has_role: crate::auth::config::RoleCheck = Arc::new(move |r: &str| p.has_role(r));
            file.auth
                .validate(base, has_role)
                .map_err(|e| errs.extend(e))
                .ok()
        }
        None => None,
    };
    let no_client_certs = file
        .tls
        .as_ref()
        .is_none_or(|t| t.client_auth == crate::server::tls::ClientAuth::None);
    if let Some(crate::auth::config::SourceSettings::File { table, .. }) =
        auth.as_ref().map(|a| &a.source)
    {
        if no_client_certs && table.has_cert_bindings() {
            errs.push(ConfigError::new(
                "auth.users",
                "some users have client_cert, but tls.client_auth is \"none\": they could never log in",
            ));
        }
    }
    if let Some(p) = &policy {
        // a mistyped role would silently never apply
        for name in file.rate_limit.roles.keys() {
            if !p.has_role(name) {
                errs.push(ConfigError::new(
                    format!("rate_limit.roles.{name}"),
                    format!("`{name}` is not a built-in role nor a [[roles]] name"),
                ));
            }
        }
    }
    let rate_limit = file.rate_limit.validate().map_err(|e| errs.extend(e)).ok();
    let audit = file.audit.validate(base).map_err(|e| errs.extend(e)).ok();
    if let Some(a) = audit.as_ref().filter(|a| a.enabled) {
        if let crate::audit::config::SinkSettings::File { path, .. } = &a.sink {
            if let Err(e) = files::check_audit_writable(path) {
                errs.push(e);
            }
        }
    }
    let metrics = file.metrics.validate().map_err(|e| errs.extend(e)).ok();
    let log = file.log.validate().map_err(|e| errs.extend(e)).ok();

    match (
        listen, tls, upstream, timeouts, policy, auth, rate_limit, audit, metrics,
    ) {
        (
            Some(listen),
            Some(tls),
            Some(upstream),
            Some(timeouts),
            Some(policy),
            Some(auth),
            Some(rate_limit),
            Some(audit),
            Some(metrics),
        ) if errs.is_empty() => Ok(Config {
            path: path.to_path_buf(),
            listen,
            trusted_proxies: TrustedProxies::new(proxies),
            shutdown_delay: shutdown_delay.unwrap_or_default(),
            tls,
            tls_files,
            upstream,
            timeouts,
            limits,
            policy,
            auth: Some(auth),
            rate_limit,
            audit,
            metrics,
            log: log.unwrap_or_default(),
        }),
        _ => Err(errs),
    }
}

fn validate_timeouts(t: &file::TimeoutsFile, errs: &mut Vec<ConfigError>) -> Option<Timeouts> {
    let mut get = |key: &str, v: &str| match parse_duration(v) {
        Ok(d) if d.is_zero() => {
            errs.push(ConfigError::new(
                format!("timeouts.{key}"),
                "must be above zero",
            ));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(ConfigError::new(format!("timeouts.{key}"), e));
            None
        }
    };
    // every key is checked (all problems reported), then assembled
    let tls_handshake = get("tls_handshake", &t.tls_handshake);
    let request_header = get("request_header", &t.request_header);
    let request_body = get("request_body", &t.request_body);
    let idle = get("idle", &t.idle);
    let upstream_connect = get("upstream_connect", &t.upstream_connect);
    let upstream_response = get("upstream_response", &t.upstream_response);
    let upstream_body = get("upstream_body", &t.upstream_body);
    let drain = get("drain", &t.drain);
    let linger = get("linger", &t.linger);
    Some(Timeouts {
        tls_handshake: tls_handshake?,
        request_header: request_header?,
        request_body: request_body?,
        idle: idle?,
        upstream_connect: upstream_connect?,
        upstream_response: upstream_response?,
        upstream_body: upstream_body?,
        drain: drain?,
        linger: linger?,
    })
}

/// The longest `server.shutdown_delay` accepted.
const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(600);

/// The largest `limits.max_header_bytes` accepted.
const MAX_HEADER_BYTES_LIMIT: usize = 1 << 20;

fn validate_limits(l: &file::LimitsFile, errs: &mut Vec<ConfigError>) -> Limits {
    let mut at_least = |key: &str, v: u64, min: u64| {
        if v < min {
            errs.push(ConfigError::new(
                format!("limits.{key}"),
                format!("must be at least {min}"),
            ));
        }
    };
    at_least("max_connections", l.max_connections as u64, 1);
    at_least("max_connections_per_ip", l.max_connections_per_ip as u64, 1);
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB
    at_least("max_header_bytes", l.max_header_bytes as u64, 8192);
    at_least("max_headers", l.max_headers as u64, 16);
    at_least("max_h2_streams", u64::from(l.max_h2_streams), 1);
    at_least(
        "upstream_max_header_bytes",
        l.upstream_max_header_bytes as u64,
        1024,
    );
    at_least("upstream_max_headers", l.upstream_max_headers as u64, 16);
    if l.upstream_max_header_bytes > MAX_HEADER_BYTES_LIMIT {
        errs.push(ConfigError::new(
            "limits.upstream_max_header_bytes",
            format!("must be at most {MAX_HEADER_BYTES_LIMIT} (1 MiB)"),
        ));
    }
    if l.upstream_max_headers > MAX_UPSTREAM_HEADERS {
        errs.push(ConfigError::new(
            "limits.upstream_max_headers",
            format!("must be at most {MAX_UPSTREAM_HEADERS}"),
        ));
    }
    if l.max_header_bytes > MAX_HEADER_BYTES_LIMIT {
        // also what h2 can announce (a u32); a head this large is an attack
        errs.push(ConfigError::new(
            "limits.max_header_bytes",
            format!("must be at most {MAX_HEADER_BYTES_LIMIT} (1 MiB)"),
        ));
    }
    Limits {
        max_connections: l.max_connections,
        max_connections_per_ip: l.max_connections_per_ip,
        max_header_bytes: l.max_header_bytes,
        max_headers: l.max_headers,
        max_body_bytes: l.max_body_bytes,
        max_h2_streams: l.max_h2_streams,
        max_linger_bytes: l.max_linger_bytes,
        upstream_head: crate::upstream::framing::HeadLimits {
            max_bytes: l.upstream_max_header_bytes,
            max_headers: l.upstream_max_headers,
        },
        redirect_body_bytes: l.redirect_body_bytes,
    }
}

/// The largest `limits.upstream_max_headers` accepted.
const MAX_UPSTREAM_HEADERS: usize = 1000;
