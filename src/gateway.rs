//! The running gateway's state: one compiled [`Snapshot`] of everything a
//! request needs (config, policy, authenticator, limiter, upstream client),
//! swapped whole behind one pointer on reload, plus the parts that outlive
//! reloads (audit log, metrics, request ids).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::audit::AuditLog;
use crate::auth::budgets::{NoAnswer, SharedFailures, SharedKey, StoreFuture};
use crate::auth::cluster::ClusterClient;
use crate::auth::config::SourceSettings;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::observe::Observer;
use crate::ratelimit::{BudgetKey, RateLimiter, SharedBudgets};
use crate::upstream::balance::Balancer;
use crate::upstream::client::{self, HttpClient};

/// Everything compiled from one config. Immutable once built.
pub struct Snapshot {
    pub config: Config,
    /// hyper's server for connections the HTTP/1.1 fast path hands over.
    pub http: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    /// The same, HTTP/1.1 only: for connections that negotiated
    /// `http/1.1` by ALPN or already served a request (no late h2 preface).
    pub http1: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    /// h2 server settings for connections that negotiated h2 by ALPN.
    pub h2: hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
    /// One pooled upstream client per worker runtime: a pooled connection
    /// is driven by a task on the runtime that opened it, so sharing one
    /// pool across runtimes would bounce every request between threads.
    clients: Vec<HttpClient>,
    pub balancer: Balancer,
    pub auth: Authenticator,
    pub limiter: Arc<RateLimiter>,
}

impl Snapshot {
    /// Compiles a validated config for `workers` runtimes (at least one).
    /// Must be called inside a Tokio runtime. `previous` lends its limiter
    /// state to unchanged limits (reload).
    pub fn build(
        mut config: Config,
        previous: Option<&Snapshot>,
        workers: usize,
    ) -> Result<Snapshot, String> {
        let clients = (0..workers.max(1))
            .map(|_| {
                client::build_with(
                    &config.upstream,
                    config.timeouts.upstream_connect,
                    config.limits.upstream_head,
                )
            })
            .collect();
        let balancer = Balancer::new(
            config.upstream.nodes.len(),
            &config.upstream.versions,
            config.upstream.health.enabled,
            config.upstream.retry,
        );
        if let Some(prev) = previous {
            let nodes = &config.upstream.nodes;
            balancer.inherit(nodes, &prev.balancer, &prev.config.upstream.nodes);
        }
        let auth_settings = config
            .auth
            .take()
            .ok_or_else(|| "auth settings already used".to_string())?;
        let cluster = match &auth_settings.source {
            SourceSettings::Cluster(_) => {
                let urls = config
                    .upstream
                    .nodes
                    .iter()
                    .map(|n| n.url.to_string())
                    .collect();
                Some(ClusterClient::new(urls, config.upstream.tls.clone())?)
            }
            SourceSettings::File { .. } => None,
        };
        let limiter = Arc::new(match previous {
            Some(prev) => prev.limiter.rebuild(config.rate_limit.clone()),
            None => RateLimiter::new(config.rate_limit.clone()),
        });
        limiter.spawn_sweeper();
        // Failed-login budgets live in the same Redis as the rate limits.
        let shared = limiter
            .shared_budgets()
            .map(|b| Arc::new(RedisFailures(b)) as Arc<dyn SharedFailures>);
        let auth = Authenticator::build(auth_settings, cluster, shared, previous.map(|p| &p.auth))
            .map_err(|e| e.to_string())?;
        auth.spawn_background();
        Ok(Snapshot {
            http: crate::server::conn::http_builder(&config),
            http1: crate::server::conn::http_builder(&config).http1_only(),
            h2: crate::server::conn::h2_builder(&config),
            config,
            clients,
            balancer,
            auth,
            limiter,
        })
    }
}

impl Snapshot {
    /// The upstream client of worker runtime `worker`.
    pub fn client(&self, worker: usize) -> &HttpClient {
        &self.clients[worker % self.clients.len()]
    }

    /// Worker runtimes this snapshot has clients for.
    pub fn workers(&self) -> usize {
        self.clients.len()
    }
}

/// The Redis rate-limit backend as the authenticator's store of shared
/// failed-login budgets (the two stages do not know each other).
struct RedisFailures(SharedBudgets);

fn budget_keys(keys: &[SharedKey]) -> Vec<BudgetKey<'_>> {
    keys.iter()
        .map(|k| BudgetKey {
            key: &k.key,
            interval: k.quota.replenish_interval(),
            burst: k.quota.burst_size().get(),
        })
        .collect()
}

impl SharedFailures for RedisFailures {
    fn check<'a>(&'a self, keys: &'a [SharedKey]) -> StoreFuture<'a, Option<std::time::Duration>> {
        Box::pin(async move {
            self.0
                .check(&budget_keys(keys))
                .await
                .map_err(|()| NoAnswer)
        })
    }

    fn charge<'a>(&'a self, keys: &'a [SharedKey]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .charge(&budget_keys(keys))
                .await
                .map_err(|()| NoAnswer)
        })
    }
}

/// The shared state of a running gateway.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub observer: Observer,
    pub audit: AuditLog,
    pub metrics: Arc<Metrics>,
    ids: RequestIds,
}

impl Gateway {
    pub fn new(snapshot: Snapshot, audit: AuditLog, metrics: Arc<Metrics>) -> Arc<Gateway> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            observer: Observer::default(),
            audit,
            metrics,
            ids: RequestIds::new(),
        })
    }

    /// The snapshot in force now (cheap; no lock).
    pub fn current(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The snapshot in force now, as an owned pointer (safe across awaits).
    pub fn current_full(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they started with.
    pub fn swap(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }

    /// Reloads the config file: a config that fails validation is rejected
    /// whole and the running one stays in force.
    pub fn reload(&self) -> Result<(), String> {
        let current = self.current_full();
        let result = crate::config::load(&current.config.path)
            .map_err(|errs| {
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .and_then(|cfg| {
                if cfg.listen != current.config.listen {
                    tracing::warn!(
                        "server.listen changed: takes effect on restart, the listener stays on {}",
                        current.config.listen
                    );
                }
                Snapshot::build(cfg, Some(&current), current.workers())
            });
        match result {
            Ok(next) => {
                let nodes: Vec<&str> = next.config.upstream.nodes.iter().map(|n| &*n.url).collect();
                self.metrics.set_nodes(&nodes);
                let routes: Vec<&str> = next.config.policy.routes().map(|r| r.template).collect();
                self.metrics.set_routes(&routes);
                // [audit]: applied, or a warn naming what needs a restart
                self.audit.reconfigure(&next.config.audit);
                self.swap(next);
                self.metrics.config_reloaded(true);
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.config_reloaded(false);
                tracing::error!(error = %e, "configuration reload rejected; keeping the running one");
                Err(e)
            }
        }
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> HeaderValue {
        self.ids.next()
    }
}

/// What the metrics read live at each scrape: the current snapshot's
/// counters (continued across reloads) and states.
impl crate::metrics::LiveSource for Gateway {
    fn live(&self) -> crate::metrics::LiveValues {
        let snap = self.current();
        let a = snap.auth.stats();
        let l = snap.limiter.stats();
        crate::metrics::LiveValues {
            cache_hits: a.cache_hits(),
            cache_misses: a.cache_misses(),
            users_file: [a.reloads(), a.reload_failures()],
            cluster_sync: [a.syncs(), a.sync_failures()],
            redis_errors: l.redis_errors,
            redis_fallbacks: l.redis_fallbacks,
            redis_unavailable: l.redis_unavailable,
            nodes: (snap.config.upstream.nodes.iter().enumerate())
                .map(|(i, n)| (Box::from(&*n.url), snap.balancer.is_up(i)))
                .collect(),
            cert_not_after: snap.config.tls_files.validity.map(|v| v.not_after),
        }
    }
}

/// Request ids: a per-process random prefix and a counter, as 32 hex digits.
struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        for (i, word) in [self.prefix, n].iter().enumerate() {
            for j in 0..16 {
                buf[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
            }
        }
        // hex digits are always a valid header value
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_hex() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
    }
}
