//! The validated, immutable `[rate_limit]` settings the limiter is built
//! from (see `config.rs` for the file format and defaults). Plain data:
//! comparing two of them is how a reload decides which limits keep state.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::Class;

/// A validated quota: `count` requests per `period`, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl QuotaSpec {
    /// Time one request's token takes to come back (`period / count`).
    pub fn interval(&self) -> Duration {
        (self.period / self.count.max(1)).max(Duration::from_nanos(1))
    }

    /// The governor quota. Validation refuses zero counts and bursts; a
    /// hand-built spec with zeros is clamped to 1 rather than panicking.
    pub(crate) fn to_governor(self) -> governor::Quota {
        let burst = std::num::NonZeroU32::MIN.saturating_add(self.burst.saturating_sub(1));
        governor::Quota::with_period(self.interval())
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// The three class quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassQuotas {
    pub read: QuotaSpec,
    pub write: QuotaSpec,
    pub destructive: QuotaSpec,
}

impl ClassQuotas {
    pub fn get(&self, class: Class) -> QuotaSpec {
        match class {
            Class::Read => self.read,
            Class::Write => self.write,
            Class::Destructive => self.destructive,
        }
    }
}

/// A role's quotas, overrides already merged with the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleQuotas {
    pub per_user: QuotaSpec,
    pub classes: ClassQuotas,
}

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Local,
    Redis(RedisSettings),
}

/// `backend = "redis"` settings.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// May carry a password: never logged (see the `Debug` impl).
    pub url: String,
    pub timeout: Duration,
    pub key_prefix: String,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// The validated `[rate_limit]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub backend: Backend,
    pub fail_closed: bool,
    pub ipv6_prefix: u8,
    pub max_keys: usize,
    pub sweep_interval: Duration,
    pub headers_on_success: bool,
    pub per_ip: QuotaSpec,
    pub defaults: RoleQuotas,
    pub global: Option<QuotaSpec>,
    pub roles: BTreeMap<String, RoleQuotas>,
}

impl Default for RateLimitSettings {
    /// The documented defaults (they always validate; see the tests).
    fn default() -> Self {
        let spec = |count, secs, burst| QuotaSpec {
            count,
            period: Duration::from_secs(secs),
            burst,
        };
        let classes = ClassQuotas {
            read: spec(20, 1, 40),
            write: spec(5, 1, 10),
            destructive: spec(10, 60, 5),
        };
        RateLimitSettings {
            enabled: true,
            backend: Backend::Local,
            fail_closed: false,
            ipv6_prefix: 64,
            max_keys: 100_000,
            sweep_interval: Duration::from_secs(10),
            headers_on_success: false,
            per_ip: spec(50, 1, 100),
            defaults: RoleQuotas {
                per_user: spec(20, 1, 40),
                classes,
            },
            global: None,
            roles: BTreeMap::new(),
        }
    }
}
