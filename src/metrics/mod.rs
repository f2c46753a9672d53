//! Prometheus metrics: [`Metrics`] owns its own `Registry` (never the
//! global one) with every collector registered up front, cheap per-request
//! updates, and [`Metrics::render`] in the text exposition format for the
//! admin listener (`crate::admin`).
//!
//! Labels are bounded by construction: route templates and node URLs come
//! from the config ([`Metrics::set_routes`], [`Metrics::set_nodes`]) and
//! anything else is folded into `other`; a request with no route is
//! `unmatched`; methods, status classes, decisions, auth outcomes and
//! error kinds are fixed enums. A raw path, a user name or an IP address
//! never becomes a label value, whatever the caller passes.
//!
//! | metric | labels |
//! |---|---|
//! | `regate_requests_total` | route, method, status_class, decision |
//! | `regate_request_duration_seconds` (histogram) | route |
//! | `regate_policy_dry_run_denials_total` | route |
//! | `regate_upstream_requests_total` | node |
//! | `regate_upstream_errors_total` | node, kind |
//! | `regate_upstream_duration_seconds` (histogram) | node |
//! | `regate_node_up` (gauge) | node |
//! | `regate_node_state_changes_total` | node, to (`up`, `down`) |
//! | `regate_health_checks_total` | node, result (`pass`, `fail`) |
//! | `regate_upstream_retries_total` | node (the node that failed), outcome (`retried`, `budget_spent`) |
//! | `regate_auth_total` | source, outcome |
//! | `regate_auth_cache_hits_total`, `regate_auth_cache_misses_total` | |
//! | `regate_rate_limited_total` | scope |
//! | `regate_rate_limit_backend_events_total` | event (`redis_error`, `local_fallback`, `unavailable`) |
//! | `regate_identity_refresh_total` | kind (`users_file`, `cluster_sync`), result (`ok`, `rejected`) |
//! | `regate_tls_handshake_failures_total` | |
//! | `regate_open_connections` (gauge) | |
//! | `regate_audit_records_written_total`, `..._dropped_total`, `regate_audit_write_failures_total` | |
//! | `regate_config_reloads_total` | result |
//! | `regate_build_info` (gauge, 1) | version, revision |
//! | `regate_connections_refused_total` | reason (`max_connections`, `max_connections_per_ip`) |
//! | `regate_tls_cert_not_after_seconds` (gauge) | |
//! | `process_*` (CPU, memory, fds, start time) | |
//!
//! The node, auth-cache, identity-refresh, Redis-event and certificate
//! series are read live at each scrape by one collector ([`live`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::audit::{AuditLog, Decision};
use crate::context::IdentitySource;

mod labels;
pub mod live;
pub mod ops;

use labels::{method_label, status_class};
pub use labels::{AuthOutcome, UpstreamErrorKind};
pub use live::{LiveSource, LiveValues};

/// Latency buckets (seconds) for requests and upstream calls.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Handles resolved once per known node.
struct NodeHandles {
    requests: IntCounter,
    duration: Histogram,
}

/// Per-route series, resolved on first use (the duration histogram, the
/// request counters per (method, status class, decision)), so an idle
/// gateway exports no series for the ~230 routes nobody called, and the hot
/// path neither hashes label strings nor takes the vec's lock.
struct RouteHandles {
    duration: OnceLock<Histogram>,
    requests: [OnceLock<IntCounter>; METHODS * CLASSES * DECISIONS],
    dry_run: OnceLock<IntCounter>,
}

const METHODS: usize = 8;
const CLASSES: usize = 6;
const DECISIONS: usize = 3;

impl RouteHandles {
    fn new() -> Self {
        RouteHandles {
            duration: OnceLock::new(),
            requests: std::array::from_fn(|_| OnceLock::new()),
            dry_run: OnceLock::new(),
        }
    }
}

/// The bounded label sets, swapped whole on a config reload.
#[derive(Default)]
struct Labels {
    routes: HashMap<Box<str>, Arc<RouteHandles>>,
    nodes: HashMap<Box<str>, NodeHandles>,
}

/// `regate_auth_total` sources: none, file, cluster.
const AUTH_SOURCES: usize = 3;
const AUTH_OUTCOMES: usize = AuthOutcome::COUNT;

/// Every metric regate exports, in a registry of its own.
pub struct Metrics {
    registry: Registry,
    labels: ArcSwap<Labels>,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    dry_run_denials: IntCounterVec,
    upstream_requests: IntCounterVec,
    upstream_errors: IntCounterVec,
    upstream_duration: HistogramVec,
    node_state_changes: IntCounterVec,
    health_checks: IntCounterVec,
    upstream_retries: IntCounterVec,
    auth: IntCounterVec,
    /// `auth` series by (source, outcome), made on first use.
    auth_slots: [OnceLock<IntCounter>; AUTH_SOURCES * AUTH_OUTCOMES],
    /// Process, connection-refusal and certificate-expiry series.
    pub ops: ops::OpsMetrics,
    rate_limited: IntCounterVec,
    /// Node, auth-cache, refresh, Redis and certificate series, read live.
    live: live::LiveCollector,
    tls_handshake_failures: IntCounter,
    open_connections: IntGauge,
    audit_written: IntCounter,
    audit_dropped: IntCounter,
    audit_failed: IntCounter,
    config_reloads: IntCounterVec,
    audit: OnceLock<AuditLog>,
    /// Serializes the audit counter catch-up in `render`.
    audit_sync: Mutex<()>,
}

fn reg<C: Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    reg(r, IntCounter::new(name, help)?)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
    reg(r, HistogramVec::new(opts, &[label])?)
}

impl Metrics {
    /// Registers every collector, with the route templates and node URLs
    /// from the config as the only accepted route and node label values.
    pub fn new(routes: &[&str], nodes: &[&str]) -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let build_info = reg(
            &r,
            IntGaugeVec::new(
                Opts::new("regate_build_info", "Build information; always 1."),
                &["version", "revision"],
            )?,
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("REGATE_REVISION")])
            .set(1);
        let m = Metrics {
            requests: counter_vec(
                &r,
                "regate_requests_total",
                "Requests finished, by route template, method, status class and decision.",
                &["route", "method", "status_class", "decision"],
            )?,
            request_duration: histogram_vec(
                &r,
                "regate_request_duration_seconds",
                "Time from request head to the end of the response body.",
                "route",
            )?,
            dry_run_denials: counter_vec(
                &r,
                "regate_policy_dry_run_denials_total",
                "Requests the policy would deny but let through in dry-run mode.",
                &["route"],
            )?,
            upstream_requests: counter_vec(
                &r,
                "regate_upstream_requests_total",
                "Requests forwarded to a node.",
                &["node"],
            )?,
            upstream_errors: counter_vec(
                &r,
                "regate_upstream_errors_total",
                "Forwarded requests that failed, by kind.",
                &["node", "kind"],
            )?,
            upstream_duration: histogram_vec(
                &r,
                "regate_upstream_duration_seconds",
                "Time until a node's response head.",
                "node",
            )?,
            node_state_changes: counter_vec(
                &r,
                "regate_node_state_changes_total",
                "Nodes taken out of (down) or back into (up) rotation.",
                &["node", "to"],
            )?,
            health_checks: counter_vec(
                &r,
                "regate_health_checks_total",
                "Active health checks by result.",
                &["node", "result"],
            )?,
            upstream_retries: counter_vec(
                &r,
                "regate_upstream_retries_total",
                "Failed attempts at a node followed by another node (retried) or not (budget_spent).",
                &["node", "outcome"],
            )?,
            auth: counter_vec(
                &r,
                "regate_auth_total",
                "Authentication attempts by identity source and outcome.",
                &["source", "outcome"],
            )?,
            live: reg(&r, live::LiveCollector::new()?)?,
            rate_limited: counter_vec(
                &r,
                "regate_rate_limited_total",
                "Requests refused by a rate limit, by scope.",
                &["scope"],
            )?,
            tls_handshake_failures: counter(
                &r,
                "regate_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out.",
            )?,
            open_connections: reg(
                &r,
                IntGauge::new(
                    "regate_open_connections",
                    "Client connections currently open.",
                )?,
            )?,
            audit_written: counter(
                &r,
                "regate_audit_records_written_total",
                "Audit records written to the sink.",
            )?,
            audit_dropped: counter(
                &r,
                "regate_audit_records_dropped_total",
                "Audit records dropped (full queue with on_full = drop, or after shutdown).",
            )?,
            audit_failed: counter(
                &r,
                "regate_audit_write_failures_total",
                "Audit records the sink could not take.",
            )?,
            config_reloads: counter_vec(
                &r,
                "regate_config_reloads_total",
                "Config reloads by result.",
                &["result"],
            )?,
            auth_slots: std::array::from_fn(|_| OnceLock::new()),
            ops: ops::OpsMetrics::new(&r)?,
            registry: r,
            labels: ArcSwap::from_pointee(Labels::default()),
            audit: OnceLock::new(),
            audit_sync: Mutex::new(()),
        };
        m.set_routes(routes);
        m.set_nodes(nodes);
        // alerts fire on the first failed reload: the series exists at 0
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// Replaces the accepted route templates (after a config reload).
    pub fn set_routes(&self, routes: &[&str]) {
        let old = self.labels.load();
        let mut next = Labels {
            routes: HashMap::new(),
            nodes: old
                .nodes
                .iter()
                .map(|(k, h)| (k.clone(), h.clone_handles()))
                .collect(),
        };
        for route in routes.iter().copied().chain(["unmatched", "other"]) {
            next.routes
                .insert(route.into(), Arc::new(RouteHandles::new()));
        }
        self.labels.store(Arc::new(next));
    }

    /// Replaces the accepted node URLs.
    pub fn set_nodes(&self, nodes: &[&str]) {
        let old = self.labels.load();
        let mut next = Labels {
            routes: old.routes.clone(),
            nodes: HashMap::new(),
        };
        for node in nodes.iter().copied().chain(["other"]) {
            let handles = NodeHandles {
                requests: self.upstream_requests.with_label_values(&[node]),
                duration: self.upstream_duration.with_label_values(&[node]),
            };
            next.nodes.insert(node.into(), handles);
        }
        self.labels.store(Arc::new(next));
    }

    /// Maps a route to its label: a known template, `unmatched` or `other`.
    fn route_label<'a>(
        labels: &'a Labels,
        route: Option<&str>,
    ) -> (&'a str, Option<&'a RouteHandles>) {
        let key = route.unwrap_or("unmatched");
        match labels
            .routes
            .get_key_value(key)
            .or_else(|| labels.routes.get_key_value("other"))
        {
            Some((k, h)) => (k, Some(h)),
            None => ("other", None),
        }
    }

    /// One finished request (the single exit door calls this once).
    pub fn observe_request(
        &self,
        route: Option<&str>,
        method: &str,
        status: u16,
        decision: Decision,
        elapsed: Duration,
    ) {
        let labels = self.labels.load();
        let (route, handles) = Self::route_label(&labels, route);
        let (m, method) = method_label(method);
        let (c, class) = status_class(status);
        let d = match decision {
            Decision::Allow => 0,
            Decision::Deny => 1,
            Decision::DryRunDeny => 2,
        };
        let Some(h) = handles else {
            if let Ok(c) = self.requests.get_metric_with_label_values(&[
                route,
                method,
                class,
                decision.as_str(),
            ]) {
                c.inc();
            }
            return;
        };
        let slot = &h.requests[(m * CLASSES + c) * DECISIONS + d];
        match slot.get() {
            Some(counter) => counter.inc(),
            None => {
                if let Ok(counter) = self.requests.get_metric_with_label_values(&[
                    route,
                    method,
                    class,
                    decision.as_str(),
                ]) {
                    counter.inc();
                    let _ = slot.set(counter);
                }
            }
        }
        h.duration
            .get_or_init(|| self.request_duration.with_label_values(&[route]))
            .observe(elapsed.as_secs_f64());
        if decision == Decision::DryRunDeny {
            match h.dry_run.get() {
                Some(counter) => counter.inc(),
                None => {
                    if let Ok(counter) = self.dry_run_denials.get_metric_with_label_values(&[route])
                    {
                        counter.inc();
                        let _ = h.dry_run.set(counter);
                    }
                }
            }
        }
    }

    /// One call to a node: its time to response head, or how it failed.
    pub fn observe_upstream(
        &self,
        node: &str,
        elapsed: Duration,
        error: Option<UpstreamErrorKind>,
    ) {
        let labels = self.labels.load();
        let Some((name, h)) = labels
            .nodes
            .get_key_value(node)
            .or_else(|| labels.nodes.get_key_value("other"))
        else {
            return;
        };
        h.requests.inc();
        h.duration.observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            if let Ok(c) = self
                .upstream_errors
                .get_metric_with_label_values(&[name, kind.as_str()])
            {
                c.inc();
            }
        }
    }

    /// A configured node's label (anything else is `other`).
    fn node_label<'a>(labels: &Labels, node: &'a str) -> &'a str {
        if labels.nodes.contains_key(node) {
            node
        } else {
            "other"
        }
    }

    /// A node went up or down (`to`: `up` or `down`).
    pub fn node_state_changed(&self, node: &str, to: &'static str) {
        let labels = self.labels.load();
        let node = Self::node_label(&labels, node);
        self.node_state_changes.with_label_values(&[node, to]).inc();
    }

    /// One active health check (`result`: `pass` or `fail`).
    pub fn health_checked(&self, node: &str, passed: bool) {
        let labels = self.labels.load();
        let node = Self::node_label(&labels, node);
        let result = if passed { "pass" } else { "fail" };
        self.health_checks.with_label_values(&[node, result]).inc();
    }

    /// A failed attempt at `node` was retried elsewhere, or not for want
    /// of budget.
    pub fn upstream_retry(&self, node: &str, retried: bool) {
        let labels = self.labels.load();
        let node = Self::node_label(&labels, node);
        let outcome = if retried { "retried" } else { "budget_spent" };
        self.upstream_retries
            .with_label_values(&[node, outcome])
            .inc();
    }

    /// One authentication attempt; `source` is `None` when no identity
    /// source was asked (missing credentials, throttled).
    pub fn observe_auth(&self, source: Option<IdentitySource>, outcome: AuthOutcome) {
        let s = match source {
            None => 0,
            Some(IdentitySource::File) => 1,
            Some(IdentitySource::Cluster) => 2,
        };
        let slot = &self.auth_slots[s * AUTH_OUTCOMES + outcome.index()];
        match slot.get() {
            Some(c) => c.inc(),
            None => {
                let source = source.map_or("none", IdentitySource::as_str);
                if let Ok(c) = self
                    .auth
                    .get_metric_with_label_values(&[source, outcome.as_str()])
                {
                    c.inc();
                    let _ = slot.set(c);
                }
            }
        }
    }

    /// A request refused by the limit of `scope` (a fixed name from code).
    pub fn rate_limited(&self, scope: &'static str) {
        if let Ok(c) = self.rate_limited.get_metric_with_label_values(&[scope]) {
            c.inc();
        }
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    pub fn config_reloaded(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        if let Ok(c) = self.config_reloads.get_metric_with_label_values(&[result]) {
            c.inc();
        }
    }

    /// Reads the live series (nodes, auth cache, identity refreshes, Redis
    /// events, certificate) from `source` at each scrape; until then (or
    /// once it is gone) they read zero and no node is listed.
    pub fn attach_live(&self, source: std::sync::Weak<dyn LiveSource>) {
        self.live.attach(source);
    }

    /// Exports the audit log's counters (read at each render).
    pub fn attach_audit(&self, log: AuditLog) {
        let _ = self.audit.set(log);
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        if let Some(log) = self.audit.get() {
            let _guard = self
                .audit_sync
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let s = log.stats();
            for (counter, now) in [
                (&self.audit_written, s.written),
                (&self.audit_dropped, s.dropped),
                (&self.audit_failed, s.failed),
            ] {
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# regate: metrics encoding failed: {e}\n"))
    }

    /// Number of time series currently exported (for cardinality checks).
    pub fn series_count(&self) -> usize {
        self.registry
            .gather()
            .iter()
            .map(|f| f.get_metric().len())
            .sum()
    }
}

impl NodeHandles {
    fn clone_handles(&self) -> NodeHandles {
        NodeHandles {
            requests: self.requests.clone(),
            duration: self.duration.clone(),
        }
    }
}
