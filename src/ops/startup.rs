//! What the start says: one line with the version, revision, config path,
//! nodes and policy mode, and a warning per risky setting. `check-config`
//! prints the same warnings ([`warnings`]).

use crate::config::Config;
use crate::policy::config::Mode;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (build.rs), or "unknown".
pub const REVISION: &str = env!("REGATE_REVISION");

/// One sentence per setting that weakens the gateway without being an
/// error: the config still loads, an operator should know.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let (total, dry) = dry_run_routes(cfg);
    if total > 0 && dry.len() == total {
        out.push(
            "policy.mode = \"dry_run\": denied requests are forwarded (only logged and counted)"
                .to_string(),
        );
    } else if !dry.is_empty() {
        out.push(format!(
            "policy.routes: {} route(s) in dry_run forward denied requests: {}",
            dry.len(),
            dry.join(", ")
        ));
    }
    let tls = &cfg.tls_files;
    if let Some(w) = tls.validity.and_then(|v| {
        crate::config::files::expiry_warning(v, crate::config::files::now_unix(), &tls.cert)
    }) {
        out.push(w);
    }
    if let Some(w) = crate::config::files::key_permission_warning(&tls.key) {
        out.push(w);
    }
    if !cfg.audit.enabled {
        out.push("audit.enabled = false: requests leave no audit record".to_string());
    }
    if cfg.trusted_proxies.covers_everything() {
        out.push(
            "server.trusted_proxies covers every address (a /0 block): any client can choose the \
             address it is rate-limited and audited as with X-Forwarded-For"
                .to_string(),
        );
    }
    for node in &cfg.upstream.nodes {
        if node.scheme == http::uri::Scheme::HTTP {
            out.push(format!(
                "upstream node {} uses plain HTTP: credentials and data cross the network unencrypted",
                node.url
            ));
        }
    }
    if cfg.metrics.enabled && !cfg.metrics.listen.ip().is_loopback() {
        out.push(format!(
            "metrics.listen = {}: /metrics, /healthz and /readyz have no authentication; keep \
             that address on a private network",
            cfg.metrics.listen
        ));
    }
    out
}

/// Routes of the profile, and those in dry_run ("METHOD /template").
fn dry_run_routes(cfg: &Config) -> (usize, Vec<String>) {
    let mut total = 0;
    let mut dry = Vec::new();
    for r in cfg.policy.routes() {
        total += 1;
        if r.mode == Mode::DryRun {
            dry.push(format!("{} {}", r.method, r.template));
        }
    }
    (total, dry)
}

/// "enforce", "dry_run", or "enforce (N routes dry_run)".
fn policy_mode(cfg: &Config) -> String {
    match dry_run_routes(cfg) {
        (_, d) if d.is_empty() => "enforce".into(),
        (t, d) if d.len() == t => "dry_run".into(),
        (_, d) => format!("enforce ({} routes dry_run)", d.len()),
    }
}

/// Logs the start summary and the warnings.
pub fn log_start(cfg: &Config) {
    let nodes: Vec<&str> = cfg.upstream.nodes.iter().map(|n| &*n.url).collect();
    tracing::info!(
        version = VERSION,
        revision = REVISION,
        config = %cfg.path.display(),
        nodes = %nodes.join(","),
        policy_profile = cfg.policy.profile(),
        policy_mode = policy_mode(cfg),
        audit = cfg.audit.enabled,
        "regate starting"
    );
    for w in warnings(cfg) {
        tracing::warn!("{w}");
    }
}
