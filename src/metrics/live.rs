//! The one collector that reads, at scrape time, what regate counts outside
//! the registry: the authenticator's cache hits and misses and identity
//! refreshes, the shared limiter's Redis events, whether each node is in
//! rotation, and the served certificate's expiry. A scrape is exact (no
//! copy, no background task) and costs only the scrape: the request path
//! keeps bumping its own atomics. The counters it reads continue across
//! config reloads (see `AuthStats::continuing` and the limiter's rebuild),
//! so the exported ones are monotonic.

use std::sync::{Arc, OnceLock, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// The live values, read once per scrape.
#[derive(Debug, Default, Clone)]
pub struct LiveValues {
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Users-file reloads: taken, rejected.
    pub users_file: [u64; 2],
    /// Cluster user syncs: succeeded, failed.
    pub cluster_sync: [u64; 2],
    pub redis_errors: u64,
    pub redis_fallbacks: u64,
    pub redis_unavailable: u64,
    /// Each configured node (its URL) and whether it is in rotation.
    pub nodes: Vec<(Box<str>, bool)>,
    /// The served certificate's notAfter, Unix seconds.
    pub cert_not_after: Option<i64>,
}

/// Where the values come from (the running gateway).
pub trait LiveSource: Send + Sync {
    fn live(&self) -> LiveValues;
}

/// Opts of the series this collector owns: names, help texts and labels
/// are the exported contract (dashboards, `deploy/prometheus` alerts).
fn hits() -> Opts {
    Opts::new(
        "regate_auth_cache_hits_total",
        "Credential checks answered from the cache.",
    )
}
fn misses() -> Opts {
    Opts::new(
        "regate_auth_cache_misses_total",
        "Credential checks that needed the identity source.",
    )
}
fn backend() -> Opts {
    Opts::new(
        "regate_rate_limit_backend_events_total",
        "Shared (Redis) limiter events: redis_error, local_fallback, unavailable (503).",
    )
}
fn refresh() -> Opts {
    Opts::new(
        "regate_identity_refresh_total",
        "Users-file reloads and cluster user syncs, by kind and result.",
    )
}
fn node_up() -> Opts {
    Opts::new(
        "regate_node_up",
        "1 while the node is in rotation: not ejected after failed \
         requests and, with [upstream.health] enabled, passing its checks.",
    )
}
fn cert() -> Opts {
    Opts::new(
        "regate_tls_cert_not_after_seconds",
        "Expiry (notAfter) of the served TLS certificate, Unix seconds.",
    )
}

/// The metric objects one scrape fills, made fresh each time (a counter
/// cannot be set, only added to).
#[derive(Clone)]
struct Scratch {
    hits: IntCounter,
    misses: IntCounter,
    backend: IntCounterVec,
    refresh: IntCounterVec,
    node_up: IntGaugeVec,
    cert: IntGauge,
}

impl Scratch {
    fn new() -> prometheus::Result<Scratch> {
        Ok(Scratch {
            hits: IntCounter::with_opts(hits())?,
            misses: IntCounter::with_opts(misses())?,
            backend: IntCounterVec::new(backend(), &["event"])?,
            refresh: IntCounterVec::new(refresh(), &["kind", "result"])?,
            node_up: IntGaugeVec::new(node_up(), &["node"])?,
            cert: IntGauge::with_opts(cert())?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 6] {
        [
            &self.hits,
            &self.misses,
            &self.backend,
            &self.refresh,
            &self.node_up,
            &self.cert,
        ]
    }
}

/// Registered once in [`super::Metrics`]' registry (a clone shares the
/// source).
#[derive(Clone)]
pub(crate) struct LiveCollector {
    /// Holds the descriptors `desc()` lends out.
    descs: Scratch,
    source: Arc<OnceLock<Weak<dyn LiveSource>>>,
}

impl LiveCollector {
    pub(crate) fn new() -> prometheus::Result<LiveCollector> {
        Ok(LiveCollector {
            descs: Scratch::new()?,
            source: Arc::new(OnceLock::new()),
        })
    }

    /// Reads from `source` from now on (once; later calls are ignored).
    pub(crate) fn attach(&self, source: Weak<dyn LiveSource>) {
        let _ = self.source.set(source);
    }

    fn read(&self) -> LiveValues {
        self.source
            .get()
            .and_then(Weak::upgrade)
            .map(|s| s.live())
            .unwrap_or_default()
    }
}

impl Collector for LiveCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs
            .collectors()
            .into_iter()
            .flat_map(|c| c.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let v = self.read();
        let Ok(s) = Scratch::new() else {
            return Vec::new();
        };
        // present at 0 from the start, as they always were
        s.hits.inc_by(v.cache_hits);
        s.misses.inc_by(v.cache_misses);
        s.cert.set(v.cert_not_after.unwrap_or(0));
        for (node, up) in &v.nodes {
            s.node_up.with_label_values(&[node]).set(i64::from(*up));
        }
        // these appear with their first event
        for (event, n) in [
            ("redis_error", v.redis_errors),
            ("local_fallback", v.redis_fallbacks),
            ("unavailable", v.redis_unavailable),
        ] {
            if n > 0 {
                s.backend.with_label_values(&[event]).inc_by(n);
            }
        }
        for (kind, [ok, rejected]) in [
            ("users_file", v.users_file),
            ("cluster_sync", v.cluster_sync),
        ] {
            for (result, n) in [("ok", ok), ("rejected", rejected)] {
                if n > 0 {
                    s.refresh.with_label_values(&[kind, result]).inc_by(n);
                }
            }
        }
        s.collectors()
            .into_iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}
