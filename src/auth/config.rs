//! The `[auth]` and `[auth.cluster]` config sections ([`AuthConfig`], serde,
//! unknown keys rejected) and their validation into [`AuthSettings`], which
//! also loads the users file or the service-account file. Every problem is
//! reported at once, each naming its dotted key; no secret is echoed.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use serde::Deserialize;

use super::service_account::ServiceAccount;
use super::users_file::{resolve, UserTable};
use crate::config::duration::{parse_duration, parse_rate};
use crate::config::ConfigError;

/// The policy's role check (`has_role`), kept so reloads can use it.
pub type RoleCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Where identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The gateway's users file (`[auth] users`).
    #[default]
    File,
    /// The cluster's own users (`POST /v1/users/authorize`).
    Cluster,
}

/// What the upstream node receives as `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// The client's own header reaches the node.
    #[default]
    Passthrough,
    /// Replaced by the service account's Basic credentials.
    Service,
}

/// A failed-login budget: `rate` like `"10/min"`, `burst` failures at
/// once. A field left out takes the default of the key it is under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureQuota {
    /// Sustained failures allowed.
    pub rate: Option<String>,
    /// Failures allowed in a burst.
    pub burst: Option<u32>,
}

impl FailureQuota {
    /// A quota with both fields given.
    pub fn new(rate: &str, burst: u32) -> Self {
        FailureQuota {
            rate: Some(rate.to_owned()),
            burst: Some(burst),
        }
    }
}

/// Default of `failed_per_ip_user`: the tight budget of one client
/// guessing one account.
pub const DEFAULT_PER_IP_USER: (&str, u32) = ("5/min", 5);
/// Default of `failed_per_user`: one account guessed from many addresses.
pub const DEFAULT_PER_USER: (&str, u32) = ("10/min", 20);
/// Default of `failed_per_ip`: one address trying many accounts
/// (password spraying); loose, because a whole NAT shares it.
pub const DEFAULT_PER_IP: (&str, u32) = ("30/min", 50);

/// The three validated failed-login budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBudgets {
    pub per_ip_user: Quota,
    pub per_user: Quota,
    pub per_ip: Quota,
}

/// The `[auth]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `"file"` or `"cluster"`. Default `"file"`.
    pub source: SourceKind,
    /// Users file for `source = "file"`, relative to the config file's
    /// directory. Default `"users.toml"`.
    pub users: PathBuf,
    /// How long a verified credential stays cached. Default `"5m"`.
    pub cache_ttl: String,
    /// Most verified credentials cached at once. Default `10000`.
    pub cache_capacity: u64,
    /// Password verifications (or cluster authorize calls) running at once.
    /// Default: the number of CPUs.
    pub max_concurrent_verifications: Option<usize>,
    /// Failed logins allowed per (client IP, user name). Default
    /// `{ rate = "5/min", burst = 5 }`.
    pub failed_per_ip_user: FailureQuota,
    /// Failed logins allowed per user name, from all IPs. Default
    /// `{ rate = "10/min", burst = 20 }`.
    pub failed_per_user: FailureQuota,
    /// Failed logins allowed per client IP (IPv6 per /64), under all user
    /// names. Default `{ rate = "30/min", burst = 50 }`.
    pub failed_per_ip: FailureQuota,
    /// `"passthrough"` or `"service"`. Default `"passthrough"`.
    pub forward: ForwardMode,
    /// Service-account file for `forward = "service"` when the source is
    /// `"file"`. Default: unset (then `[auth.cluster] credentials_file`).
    pub service_credentials_file: Option<PathBuf>,
    /// `[auth.cluster]`.
    pub cluster: ClusterAuthConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            source: SourceKind::File,
            users: PathBuf::from("users.toml"),
            cache_ttl: "5m".into(),
            cache_capacity: 10_000,
            max_concurrent_verifications: None,
            failed_per_ip_user: FailureQuota::default(),
            failed_per_user: FailureQuota::default(),
            failed_per_ip: FailureQuota::default(),
            forward: ForwardMode::Passthrough,
            service_credentials_file: None,
            cluster: ClusterAuthConfig::default(),
        }
    }
}

/// The `[auth.cluster]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterAuthConfig {
    /// Service-account file (`username`/`password` TOML), relative to the
    /// config file's directory. Required for `source = "cluster"`. Default: unset.
    pub credentials_file: Option<PathBuf>,
    /// How often users and roles are re-read from the cluster. Default `"30s"`.
    pub sync_interval: String,
    /// Deadline of one `POST /v1/users/authorize` or sync request. Default `"5s"`.
    pub authorize_timeout: String,
}

impl Default for ClusterAuthConfig {
    fn default() -> Self {
        ClusterAuthConfig {
            credentials_file: None,
            sync_interval: "30s".into(),
            authorize_timeout: "5s".into(),
        }
    }
}

/// The identity source, ready to use.
#[derive(Debug)]
pub enum SourceSettings {
    File { path: PathBuf, table: UserTable },
    Cluster(ClusterSettings),
}

/// Validated `[auth.cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub service: ServiceAccount,
    pub sync_interval: Duration,
    pub authorize_timeout: Duration,
}

/// The validated `[auth]` section.
pub struct AuthSettings {
    pub source: SourceSettings,
    pub cache_ttl: Duration,
    pub cache_capacity: u64,
    pub max_concurrent_verifications: usize,
    pub failed: FailureBudgets,
    /// `Some` for `forward = "service"`.
    pub forward: Option<ServiceAccount>,
    pub role_check: RoleCheck,
}

impl AuthSettings {
    /// Things `check-config` reports without refusing the config (a
    /// per-IP budget no looser than the per-(IP, user) one; weak or legacy
    /// password hashes), each naming its key.
    pub fn warnings(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let f = &self.failed;
        if f.per_ip.burst_size() <= f.per_ip_user.burst_size() {
            out.push(ConfigError::new(
                "auth.failed_per_ip",
                "burst is not above failed_per_ip_user's: one client failing for one account \
                 refuses every user behind its address (raise it; default 50)",
            ));
        }
        if let SourceSettings::File { table, .. } = &self.source {
            out.extend_from_slice(table.warnings());
        }
        out
    }
}

impl AuthConfig {
    /// Checks every key and loads the files it names. `has_role` is the
    /// policy's role check; it is kept for reloads of the users file.
    pub fn validate(
        &self,
        base_dir: &Path,
        has_role: RoleCheck,
    ) -> Result<AuthSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let cache_ttl = duration(&mut errors, "auth.cache_ttl", &self.cache_ttl);
        if self.cache_capacity == 0 {
            errors.push(ConfigError::new(
                "auth.cache_capacity",
                "must be at least 1",
            ));
        }
        if self.max_concurrent_verifications == Some(0) {
            errors.push(ConfigError::new(
                "auth.max_concurrent_verifications",
                "must be at least 1",
            ));
        }
        let per_ip_user = quota(
            &mut errors,
            "auth.failed_per_ip_user",
            &self.failed_per_ip_user,
            DEFAULT_PER_IP_USER,
        );
        let per_user = quota(
            &mut errors,
            "auth.failed_per_user",
            &self.failed_per_user,
            DEFAULT_PER_USER,
        );
        let per_ip = quota(
            &mut errors,
            "auth.failed_per_ip",
            &self.failed_per_ip,
            DEFAULT_PER_IP,
        );
        let sync_interval = duration(
            &mut errors,
            "auth.cluster.sync_interval",
            &self.cluster.sync_interval,
        );
        let authorize_timeout = duration(
            &mut errors,
            "auth.cluster.authorize_timeout",
            &self.cluster.authorize_timeout,
        );
        let cluster_account =
            self.cluster.credentials_file.as_ref().map(|p| {
                ServiceAccount::load(&resolve(base_dir, p), "auth.cluster.credentials_file")
            });
        let service_account = self
            .service_credentials_file
            .as_ref()
            .map(|p| ServiceAccount::load(&resolve(base_dir, p), "auth.service_credentials_file"));
        let cluster_account = keep(&mut errors, cluster_account);
        let service_account = keep(&mut errors, service_account);

        let source = match self.source {
            SourceKind::File => {
                let path = resolve(base_dir, &self.users);
                match UserTable::load(&path, &*has_role, None) {
                    Ok(table) => Some(SourceSettings::File { path, table }),
                    Err(mut e) => {
                        errors.append(&mut e);
                        None
                    }
                }
            }
            SourceKind::Cluster => {
                if self.cluster.credentials_file.is_none() {
                    errors.push(ConfigError::new(
                        "auth.cluster.credentials_file",
                        "required when auth.source = \"cluster\"",
                    ));
                }
                cluster_account.clone().map(|service| {
                    SourceSettings::Cluster(ClusterSettings {
                        service,
                        sync_interval: sync_interval.unwrap_or(Duration::from_secs(30)),
                        authorize_timeout: authorize_timeout.unwrap_or(Duration::from_secs(5)),
                    })
                })
            }
        };
        let forward = match self.forward {
            ForwardMode::Passthrough => None,
            ForwardMode::Service => {
                let acc = service_account.or(cluster_account);
                let named = self.service_credentials_file.is_some()
                    || self.cluster.credentials_file.is_some();
                if acc.is_none() && !named {
                    errors.push(ConfigError::new(
                        "auth.forward",
                        "\"service\" needs auth.service_credentials_file or auth.cluster.credentials_file",
                    ));
                }
                acc
            }
        };
        match (source, cache_ttl, per_ip_user, per_user, per_ip) {
            (Some(source), Some(cache_ttl), Some(per_ip_user), Some(per_user), Some(per_ip))
                if errors.is_empty() =>
            {
                Ok(AuthSettings {
                    source,
                    cache_ttl,
                    cache_capacity: self.cache_capacity,
                    max_concurrent_verifications: self
                        .max_concurrent_verifications
                        .unwrap_or_else(default_concurrency),
                    failed: FailureBudgets {
                        per_ip_user,
                        per_user,
                        per_ip,
                    },
                    forward,
                    role_check: has_role,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The number of CPUs (at least 1).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn keep<T>(errors: &mut Vec<ConfigError>, r: Option<Result<T, ConfigError>>) -> Option<T> {
    match r {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    }
}

fn duration(errors: &mut Vec<ConfigError>, key: &str, text: &str) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            errors.push(ConfigError::new(key, "must be longer than zero"));
            None
        }
        Ok(d) => Some(d),
        Err(p) => {
            errors.push(ConfigError::new(key, p));
            None
        }
    }
}

fn quota(
    errors: &mut Vec<ConfigError>,
    key: &str,
    q: &FailureQuota,
    default: (&str, u32),
) -> Option<Quota> {
    let rate_text = q.rate.as_deref().unwrap_or(default.0);
    let rate = match parse_rate(rate_text) {
        Ok((n, period)) => Quota::with_period(period / n),
        Err(p) => {
            errors.push(ConfigError::new(format!("{key}.rate"), p));
            return None;
        }
    };
    let Some(burst) = NonZeroU32::new(q.burst.unwrap_or(default.1)) else {
        errors.push(ConfigError::new(
            format!("{key}.burst"),
            "must be at least 1",
        ));
        return None;
    };
    match rate {
        Some(r) => Some(r.allow_burst(burst)),
        None => {
            errors.push(ConfigError::new(format!("{key}.rate"), "rate is too high"));
            None
        }
    }
}
