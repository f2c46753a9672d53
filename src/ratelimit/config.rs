//! `[rate_limit]`: the serde structs of the config file (unknown keys are
//! errors) and [`RateLimitFile::validate`], which turns them into the
//! immutable [`RateLimitSettings`] the limiter is built from. Every error
//! names the dotted key it is about (`rate_limit.classes.write.rate`).
//! Nothing here connects to Redis: the URL is parsed, never dialled.
//!
//! ```toml
//! [rate_limit]
//! enabled = true                        # false: every check passes
//! backend = "local"                     # or "redis": one budget for N gateways
//! redis_url = "redis://127.0.0.1:6379"  # only read when backend = "redis"
//! redis_timeout = "50ms"                # per Redis decision; then fallback
//! redis_key_prefix = "regate:rl:"
//! fail_closed = false                   # true: Redis down -> 503, not local fallback
//! ipv6_prefix = 64                      # IPv6 clients counted per /64
//! max_keys = 100000                     # tracked keys per limit (memory cap)
//! sweep_interval = "10s"                # drop fully replenished keys this often
//! headers_on_success = false            # RateLimit-* also on 2xx answers
//! per_ip = { rate = "50/s", burst = 100 }    # before authentication
//! per_user = { rate = "20/s", burst = 40 }   # after authorization
//! # global = { rate = "500/s", burst = 1000 } # optional ceiling, off by default
//! [rate_limit.classes]                       # per user and endpoint class
//! read = { rate = "20/s", burst = 40 }
//! write = { rate = "5/s", burst = 10 }
//! destructive = { rate = "10/min", burst = 5 }
//! [rate_limit.roles.admin]                   # optional per-role overrides
//! per_user = { rate = "100/s", burst = 200 }
//! classes = { write = { rate = "50/s" } }
//! ```
//! An omitted `burst` equals the rate's count (`"10/min"` -> burst 10).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::settings::{
    Backend, ClassQuotas, QuotaSpec, RateLimitSettings, RedisSettings, RoleQuotas,
};
use crate::config::duration::{parse_duration, parse_rate};
use crate::config::ConfigError;

/// The largest accepted burst: beyond this a "limit" limits nothing.
const MAX_BURST: u32 = 1_000_000;

/// `[rate_limit]` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitFile {
    /// Default `true`.
    pub enabled: bool,
    /// `"local"` (default) or `"redis"`.
    pub backend: String,
    /// Default `"redis://127.0.0.1:6379"`; read only with `backend = "redis"`.
    pub redis_url: String,
    /// Deadline of one Redis decision. Default `"50ms"`.
    pub redis_timeout: String,
    /// Prefix of every Redis key. Default `"regate:rl:"`.
    pub redis_key_prefix: String,
    /// Redis unreachable: `false` (default) decides locally, `true` answers 503.
    pub fail_closed: bool,
    /// IPv6 clients are counted per this prefix. Default 64.
    pub ipv6_prefix: u8,
    /// Tracked keys per limit. Default 100 000.
    pub max_keys: usize,
    /// How often fully replenished keys are dropped. Default `"10s"`.
    pub sweep_interval: String,
    /// Also send `RateLimit-*` headers on allowed requests. Default `false`.
    pub headers_on_success: bool,
    /// Per client IP, checked before authentication. Default `50/s`, burst 100.
    pub per_ip: QuotaFile,
    /// Per authenticated user. Default `20/s`, burst 40.
    pub per_user: QuotaFile,
    /// Per user and endpoint class.
    pub classes: ClassesFile,
    /// Optional ceiling over all users together. Default: none.
    pub global: Option<QuotaFile>,
    /// Per-role overrides of `per_user` and `classes`.
    pub roles: BTreeMap<String, RoleFile>,
}

/// `{ rate = "20/s", burst = 40 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFile {
    pub rate: String,
    pub burst: Option<u32>,
}

/// `[rate_limit.classes]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassesFile {
    /// Default `20/s`, burst 40.
    pub read: QuotaFile,
    /// Default `5/s`, burst 10.
    pub write: QuotaFile,
    /// Default `10/min`, burst 5.
    pub destructive: QuotaFile,
}

/// `[rate_limit.roles.<role>]`: only the quotas given replace the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleFile {
    pub per_user: Option<QuotaFile>,
    pub classes: RoleClassesFile,
}

/// `[rate_limit.roles.<role>.classes]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleClassesFile {
    pub read: Option<QuotaFile>,
    pub write: Option<QuotaFile>,
    pub destructive: Option<QuotaFile>,
}

fn quota(rate: &str, burst: u32) -> QuotaFile {
    QuotaFile {
        rate: rate.to_string(),
        burst: Some(burst),
    }
}

impl Default for ClassesFile {
    fn default() -> Self {
        ClassesFile {
            read: quota("20/s", 40),
            write: quota("5/s", 10),
            destructive: quota("10/min", 5),
        }
    }
}

impl Default for RateLimitFile {
    fn default() -> Self {
        RateLimitFile {
            enabled: true,
            backend: "local".to_string(),
            redis_url: "redis://127.0.0.1:6379".to_string(),
            redis_timeout: "50ms".to_string(),
            redis_key_prefix: "regate:rl:".to_string(),
            fail_closed: false,
            ipv6_prefix: 64,
            max_keys: 100_000,
            sweep_interval: "10s".to_string(),
            headers_on_success: false,
            per_ip: quota("50/s", 100),
            per_user: quota("20/s", 40),
            classes: ClassesFile::default(),
            global: None,
            roles: BTreeMap::new(),
        }
    }
}

/// Collects errors so that one pass reports every bad key.
struct Check(Vec<ConfigError>);

impl Check {
    fn err(&mut self, key: String, problem: impl Into<String>) {
        self.0.push(ConfigError::new(key, problem));
    }

    fn quota(&mut self, key: &str, q: &QuotaFile) -> Option<QuotaSpec> {
        let (count, period) = match parse_rate(&q.rate) {
            Ok(r) => r,
            Err(e) => {
                self.err(format!("{key}.rate"), e);
                return None;
            }
        };
        let burst = q.burst.unwrap_or(count);
        if burst == 0 || burst > MAX_BURST {
            self.err(format!("{key}.burst"), format!("must be 1..={MAX_BURST}"));
            return None;
        }
        let spec = QuotaSpec {
            count,
            period,
            burst,
        };
        if spec.interval() < Duration::from_micros(1) {
            self.err(
                format!("{key}.rate"),
                "more than 1 000 000 requests per second",
            );
            return None;
        }
        Some(spec)
    }

    fn duration(&mut self, key: &str, text: &str, min: Duration, max: Duration) -> Duration {
        match parse_duration(text) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.err(
                    key.to_string(),
                    format!("must be between {min:?} and {max:?}"),
                );
                min
            }
            Err(e) => {
                self.err(key.to_string(), e);
                min
            }
        }
    }
}

impl RateLimitFile {
    /// Validates the whole section, reporting every problem at once.
    pub fn validate(&self) -> Result<RateLimitSettings, Vec<ConfigError>> {
        let mut c = Check(Vec::new());
        let base = RateLimitSettings::default();
        let per_ip = c.quota("rate_limit.per_ip", &self.per_ip);
        let per_user = c.quota("rate_limit.per_user", &self.per_user);
        let read = c.quota("rate_limit.classes.read", &self.classes.read);
        let write = c.quota("rate_limit.classes.write", &self.classes.write);
        let destructive = c.quota("rate_limit.classes.destructive", &self.classes.destructive);
        let global = self
            .global
            .as_ref()
            .map(|g| c.quota("rate_limit.global", g));
        let defaults = RoleQuotas {
            per_user: per_user.unwrap_or(base.defaults.per_user),
            classes: ClassQuotas {
                read: read.unwrap_or(base.defaults.classes.read),
                write: write.unwrap_or(base.defaults.classes.write),
                destructive: destructive.unwrap_or(base.defaults.classes.destructive),
            },
        };
        let mut roles = BTreeMap::new();
        for (name, role) in &self.roles {
            let key = format!("rate_limit.roles.{name}");
            let mut merged = defaults;
            let mut over = |slot: &mut QuotaSpec, sub: &str, q: &Option<QuotaFile>| {
                if let Some(spec) = q.as_ref().and_then(|q| c.quota(&format!("{key}.{sub}"), q)) {
                    *slot = spec;
                }
            };
            over(&mut merged.per_user, "per_user", &role.per_user);
            over(&mut merged.classes.read, "classes.read", &role.classes.read);
            over(
                &mut merged.classes.write,
                "classes.write",
                &role.classes.write,
            );
            let d = &role.classes.destructive;
            over(&mut merged.classes.destructive, "classes.destructive", d);
            roles.insert(name.clone(), merged);
        }
        let backend = match self.backend.as_str() {
            "local" => Backend::Local,
            "redis" => {
                // The URL may hold a password: errors never echo it.
                match redis::Client::open(self.redis_url.as_str()) {
                    Ok(_) => {}
                    Err(_) => c.err(
                        "rate_limit.redis_url".into(),
                        "not a usable redis:// or unix:// URL (rediss:// is not built in)",
                    ),
                }
                let (min, max) = (Duration::from_millis(1), Duration::from_secs(5));
                let timeout = c.duration("rate_limit.redis_timeout", &self.redis_timeout, min, max);
                Backend::Redis(RedisSettings {
                    url: self.redis_url.clone(),
                    timeout,
                    key_prefix: self.redis_key_prefix.clone(),
                })
            }
            other => {
                let problem = format!("`{other}` is not a backend (use \"local\" or \"redis\")");
                c.err("rate_limit.backend".into(), problem);
                Backend::Local
            }
        };
        if !(16..=128).contains(&self.ipv6_prefix) {
            c.err("rate_limit.ipv6_prefix".into(), "must be 16..=128");
        }
        if !(1..=10_000_000).contains(&self.max_keys) {
            c.err("rate_limit.max_keys".into(), "must be 1..=10000000");
        }
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3600));
        let sweep_interval =
            c.duration("rate_limit.sweep_interval", &self.sweep_interval, min, max);
        if !c.0.is_empty() {
            return Err(c.0);
        }
        Ok(RateLimitSettings {
            enabled: self.enabled,
            backend,
            fail_closed: self.fail_closed,
            ipv6_prefix: self.ipv6_prefix,
            max_keys: self.max_keys,
            sweep_interval,
            headers_on_success: self.headers_on_success,
            per_ip: per_ip.unwrap_or(base.per_ip),
            defaults,
            global: global.flatten(),
            roles,
        })
    }
}
