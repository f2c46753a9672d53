//! `backend = "redis"`: one budget for N gateway instances. Each decision
//! is one `EVALSHA` of `gcra.lua`, which reads every limit of the request,
//! and writes them only if all allow, atomically on the Redis server.
//! Failed-login budgets ([`SharedBudgets`]) use `budget.lua`: the same
//! GCRA state, checked without spending, or charged key by key.
//!
//! A slow or dead Redis must not stall requests: every call is bounded by
//! `redis_timeout`, and after a failure a breaker skips Redis for
//! [`RETRY_AFTER_FAILURE`]; then a single request probes it again while the
//! others keep deciding without it. The connection is a multiplexed
//! `ConnectionManager` (one TCP connection, pipelined, reconnecting by
//! itself), created lazily so a gateway starts even while Redis is down.
//! This module reports failures; the policy (local fallback or 503) is
//! applied by `mod.rs`. Errors are logged at most once per [`LOG_EVERY`]
//! and counted; the URL (it may hold a password) is never logged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::settings::{QuotaSpec, RedisSettings};
use super::verdict::{secs_ceil, Limited, Verdict};

/// How long Redis is skipped after a failed call before one probe.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);
/// At most one warning per this interval while Redis fails.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A handle on the Redis backend for keyed budgets that are checked and
/// charged separately (failed logins): keys are prefixed with
/// `key_prefix`; a call Redis does not answer is counted as a local
/// fallback and reported as `Err(())` for the caller to decide alone.
#[derive(Clone)]
pub struct SharedBudgets {
    shared: Arc<Shared>,
}

/// One budget: its key (without the prefix), emission interval and burst.
pub struct BudgetKey<'a> {
    pub key: &'a str,
    pub interval: Duration,
    pub burst: u32,
}

impl SharedBudgets {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        SharedBudgets { shared }
    }

    /// The longest wait among the spent budgets of `keys`, `None` if none
    /// is spent. Spends nothing.
    pub async fn check(&self, keys: &[BudgetKey<'_>]) -> Result<Option<Duration>, ()> {
        self.run("check", keys).await
    }

    /// Spends a unit of each of `keys` that has one.
    pub async fn charge(&self, keys: &[BudgetKey<'_>]) -> Result<(), ()> {
        self.run("charge", keys).await.map(|_| ())
    }

    async fn run(&self, mode: &str, keys: &[BudgetKey<'_>]) -> Result<Option<Duration>, ()> {
        let sh = &*self.shared;
        let prefix = sh.settings.key_prefix.as_str();
        let call = async {
            let mut conn = sh.connection().await?;
            let mut invocation = sh.budget_script.prepare_invoke();
            invocation.arg(mode);
            for k in keys {
                let t = micros(k.interval);
                invocation.key(format!("{prefix}{}", k.key));
                invocation.arg(t);
                invocation.arg(t.saturating_mul(u64::from(k.burst.saturating_sub(1))));
            }
            invocation.invoke_async::<i64>(&mut conn).await
        };
        match sh.guarded(call).await {
            Ok(wait) => Ok((wait > 0).then(|| Duration::from_micros(wait.unsigned_abs()))),
            Err(_) => {
                sh.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
        }
    }
}

/// One limit of a shared decision.
pub(crate) struct Step {
    pub scope: &'static str,
    pub spec: QuotaSpec,
    pub key: String,
}

/// Why Redis gave no decision.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The breaker is open or another request is probing.
    Skipped,
    /// The call failed or timed out.
    Failed,
}

/// Counters exposed through `RateLimiter::stats`: one set per limiter
/// lineage, handed on by every rebuild (reload), so they never restart.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub errors: AtomicU64,
    pub fallbacks: AtomicU64,
    pub unavailable: AtomicU64,
}

/// The Redis connection, breaker and counters of one backend config.
pub(crate) struct Shared {
    pub settings: RedisSettings,
    script: redis::Script,
    budget_script: redis::Script,
    conn: OnceCell<ConnectionManager>,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is skipped.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    failing: AtomicBool,
    last_log_ms: AtomicU64,
    pub counters: Arc<Counters>,
}

impl Shared {
    pub(crate) fn new(settings: RedisSettings, counters: Arc<Counters>) -> Self {
        Shared {
            settings,
            script: redis::Script::new(include_str!("gcra.lua")),
            budget_script: redis::Script::new(include_str!("budget.lua")),
            conn: OnceCell::new(),
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            last_log_ms: AtomicU64::new(0),
            counters,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let timeout = self.settings.timeout;
        self.conn
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.settings.url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(RETRY_AFTER_FAILURE);
                ConnectionManager::new_lazy_with_config(client, config)
            })
            .await
            .cloned()
    }

    /// One atomic decision over `steps`, or why there is none.
    pub(crate) async fn decide(
        &self,
        steps: &[Step],
    ) -> Result<Result<Verdict, Limited>, Unanswered> {
        let call = async {
            let values = self.call(steps).await?;
            interpret(steps, &values).ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected script reply",
                ))
            })
        };
        self.guarded(call).await
    }

    /// Runs one Redis call under the breaker and `redis_timeout`.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unanswered> {
        // While failing, one request at a time probes; the guard releases
        // the probe even if the pipeline drops this future midway.
        let _probe = if self.failing.load(Ordering::Acquire) {
            if self.now_ms() < self.open_until_ms.load(Ordering::Acquire) {
                return Err(Unanswered::Skipped);
            }
            if self.probing.swap(true, Ordering::AcqRel) {
                return Err(Unanswered::Skipped);
            }
            Some(Probe(&self.probing))
        } else {
            None
        };
        let failure = match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(value)) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        "redis rate-limit backend answers again; shared limits restored"
                    );
                }
                return Ok(value);
            }
            Ok(Err(e)) => format!("{:?}: {e}", e.kind()),
            Err(_) => format!("no answer within {:?}", self.settings.timeout),
        };
        self.fail(&failure);
        Err(Unanswered::Failed)
    }

    async fn call(&self, steps: &[Step]) -> redis::RedisResult<Vec<i64>> {
        let mut conn = self.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        for step in steps {
            let t = micros(step.spec.interval());
            invocation.key(step.key.as_str());
            invocation.arg(t);
            invocation.arg(t.saturating_mul(u64::from(step.spec.burst.saturating_sub(1))));
        }
        invocation.invoke_async(&mut conn).await
    }

    fn fail(&self, what: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let retry = u64::try_from(RETRY_AFTER_FAILURE.as_millis()).unwrap_or(500);
        self.open_until_ms
            .store(now.saturating_add(retry), Ordering::Release);
        self.failing.store(true, Ordering::Release);
        let last = self.last_log_ms.load(Ordering::Acquire);
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(10_000);
        let due = last == 0 || now.saturating_sub(last) >= every;
        if due
            && self
                .last_log_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %what,
                errors_total = self.counters.errors.load(Ordering::Relaxed),
                "redis rate-limit backend failing; applying the fail_closed policy"
            );
        }
    }
}

/// Clears the probing flag when the probing request ends, however it ends.
struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Turns the script's reply into a decision; `None` if it is malformed.
fn interpret(steps: &[Step], values: &[i64]) -> Option<Result<Verdict, Limited>> {
    let (&allowed, rest) = values.split_first()?;
    if rest.len() != steps.len() * 2 {
        return None;
    }
    let per_step = steps.iter().zip(rest.chunks_exact(2));
    if allowed == 1 {
        per_step
            .map(|(s, v)| {
                let remaining = u32::try_from(v[0].max(0)).unwrap_or(u32::MAX);
                let reset = Duration::from_micros(u64::try_from(v[1].max(0)).unwrap_or(0));
                Verdict::new(s.scope, s.spec.burst, remaining.min(s.spec.burst), reset)
            })
            .reduce(Verdict::tighter)
            .map(Ok)
    } else {
        let (step, wait) = per_step.max_by_key(|(_, v)| v[1])?;
        let wait = Duration::from_micros(u64::try_from(wait[1].max(0)).unwrap_or(0));
        Some(Err(Limited {
            scope: step.scope,
            limit: step.spec.burst,
            retry_after_secs: secs_ceil(wait).max(1),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(scope: &'static str, burst: u32) -> Step {
        Step {
            scope,
            spec: QuotaSpec {
                count: 1,
                period: Duration::from_secs(1),
                burst,
            },
            key: scope.to_string(),
        }
    }

    #[test]
    fn interprets_replies() {
        let steps = [step("user", 40), step("write", 10)];
        let ok = interpret(&steps, &[1, 30, 10_000_000, 2, 8_000_000]);
        let v = ok.unwrap().unwrap();
        assert_eq!((v.scope, v.remaining, v.reset_secs), ("write", 2, 8));
        let denied = interpret(&steps, &[0, 31, 0, 0, 1_500_000]).unwrap();
        assert_eq!(denied.unwrap_err().scope, "write");
        assert_eq!(denied.unwrap_err().retry_after_secs, 2);
        assert!(interpret(&steps, &[1, 2]).is_none());
        assert!(interpret(&steps, &[]).is_none());
    }
}
