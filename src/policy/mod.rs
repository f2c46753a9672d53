//! The authorization policy: which canonical paths exist, in which API
//! versions, what permission each needs, and whether a principal holds it.
//!
//! The pipeline calls, in order: [`canonicalize`] (400 on any path
//! ambiguity), [`Policy::resolve`] (404 unless a documented route matches,
//! 505 on a conflicting `x-api-version`), then [`Policy::authorize`] (403
//! unless the role holds the permission or a self-service rule applies),
//! which yields the [`Permit`] later stages require. All three are
//! synchronous, allocation-free on the permit path, and take borrowed input.
//!
//! This module must not do I/O at request time, read `/work/shared` or any
//! file (the profile is embedded), or know about HTTP bodies beyond the
//! small JSON checks of [`check_self_username`] / [`Permit::check_body`].

mod canonical;
pub mod config;
mod decide;
mod explain;
mod profile;
mod roles;
mod routes;
mod self_service;

use std::sync::Arc;

use http::Method;

pub use canonical::{canonicalize, MAX_PATH_BYTES};
pub use config::{CustomRoleConfig, Mode, PolicyConfig, DEFAULT_PROFILE};
pub use decide::{BodyVerdict, Permit, RouteMatch};
pub use explain::Explanation;
pub use profile::{EndpointClass, SelfService, REDIS_ENTERPRISE_TOML};
pub use routes::ApiVersion;
pub use self_service::check_self_username;

use crate::config::ConfigError;
use crate::context::Principal;
use crate::error::Reject;
use roles::{Permissions, RoleTable};
use routes::{Route, RouteTable};

/// Permission held by the built-in `admin` only (routes the docs give no
/// permission for).
pub const ADMIN_ONLY: &str = "admin_only";

/// The compiled policy: immutable, `Send + Sync`; a reload builds a new one.
#[derive(Debug)]
pub struct Policy {
    profile: Arc<str>,
    perms: Permissions,
    roles: RoleTable,
    table: RouteTable,
}

/// A route as listed by [`Policy::routes`] (for tests, docs and explain).
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo<'a> {
    pub method: &'a Method,
    pub template: &'a str,
    pub permission: &'a str,
    pub class: EndpointClass,
    pub version: ApiVersion,
    pub self_service: Option<SelfService>,
    pub node_local: bool,
    /// Served by real clusters but not documented.
    pub live_only: bool,
    pub mode: Mode,
}

impl Policy {
    /// The `redis-enterprise` profile, enforce mode, no custom roles.
    pub fn builtin() -> Result<Policy, Vec<ConfigError>> {
        Policy::compile(&PolicyConfig::default(), &[])
    }

    /// Compiles the profile named in `cfg` with its modes and custom roles.
    /// Every problem found is returned, each naming its config key.
    pub fn compile(
        cfg: &PolicyConfig,
        custom: &[CustomRoleConfig],
    ) -> Result<Policy, Vec<ConfigError>> {
        let file = profile::load(&cfg.profile)?;
        let perms = Permissions::new(&file.permissions)?;
        let mut errors = Vec::new();
        let roles = match RoleTable::compile(&file, &perms, custom) {
            Ok(r) => Some(r),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let mut table = RouteTable::new();
        let mut used_overrides = 0;
        for (i, spec) in file.routes.iter().enumerate() {
            let key = format!("{} {}", spec.method, spec.path);
            let err_key = format!("profile.routes[{i}]");
            let mode = match cfg.routes.get(&key) {
                Some(m) => {
                    used_overrides += 1;
                    *m
                }
                None => cfg.mode,
            };
            match build_route(spec, &perms, roles.as_ref(), mode) {
                Ok(route) => {
                    if let Err(e) = table.insert(&err_key, route) {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(ConfigError::new(err_key, e)),
            }
        }
        if used_overrides != cfg.routes.len() {
            for key in cfg.routes.keys() {
                let known = file
                    .routes
                    .iter()
                    .any(|r| key.split_once(' ') == Some((r.method.as_str(), r.path.as_str())));
                if !known {
                    errors.push(ConfigError::new(
                        format!("policy.routes.\"{key}\""),
                        "no such route in the profile (write \"METHOD /template\", e.g. \"DELETE /v1/bdbs/{uid}\")",
                    ));
                }
            }
        }
        match roles {
            Some(roles) if errors.is_empty() => Ok(Policy {
                profile: file.profile.as_str().into(),
                perms,
                roles,
                table,
            }),
            _ => Err(errors),
        }
    }

    /// Whether `name` is a built-in or custom role of this policy.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.get(name).is_some()
    }

    /// The profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Every route of the profile.
    pub fn routes(&self) -> impl Iterator<Item = RouteInfo<'_>> {
        self.table.routes.iter().map(|r| RouteInfo {
            method: &r.method,
            template: &r.template,
            permission: &r.permission_name,
            class: r.class,
            version: r.version,
            self_service: r.self_service,
            node_local: r.node_local,
            live_only: r.live,
            mode: r.mode,
        })
    }

    /// Names of every role (built-in first).
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| &*r.name)
    }

    /// Whether `role` holds `permission` (false for unknown names).
    pub fn role_holds(&self, role: &str, permission: &str) -> bool {
        match (self.roles.get(role), self.perms.id(permission)) {
            (Some(r), Some(p)) => r.perms.has(p),
            _ => false,
        }
    }

    /// Matches a canonical path (output of [`canonicalize`]) and method to a
    /// route. `NotFound` for an unknown path, version or method;
    /// `UnsupportedApiVersion` when `x-api-version` names another version
    /// than the route's (the path prefix fixes the version; the header may
    /// only agree with it, as `v2` or `2`).
    pub fn resolve<'a>(
        &'a self,
        method: &Method,
        canonical_path: &'a str,
        x_api_version: Option<&[u8]>,
    ) -> Result<RouteMatch<'a>, Reject> {
        let (route, caps) = self
            .table
            .find(method, canonical_path)
            .ok_or(Reject::NotFound)?;
        if let Some(v) = x_api_version {
            if ApiVersion::from_header(v) != Some(route.version) {
                return Err(Reject::UnsupportedApiVersion);
            }
        }
        Ok(RouteMatch::new(route, caps))
    }

    /// Decides whether `who` may call the matched route.
    pub fn authorize(&self, m: &RouteMatch<'_>, who: &Principal) -> Result<Permit, Reject> {
        decide::authorize(&self.roles, m, who)
    }
}

fn build_route(
    spec: &profile::RouteSpec,
    perms: &Permissions,
    roles: Option<&RoleTable>,
    mode: Mode,
) -> Result<Route, String> {
    let method = Method::from_bytes(spec.method.as_bytes()).map_err(|_| "bad method")?;
    let first = spec
        .path
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .unwrap_or("");
    let version = ApiVersion::from_segment(first)
        .ok_or_else(|| format!("'{}' does not start with a version", spec.path))?;
    let permission = perms
        .id(&spec.permission)
        .ok_or_else(|| format!("unknown permission '{}'", spec.permission))?;
    let roles_mask = match (&spec.roles, roles) {
        (Some(list), Some(table)) => {
            let mut mask = 0u16;
            for r in list {
                mask |= table
                    .builtin_bit(r)
                    .ok_or_else(|| format!("unknown built-in role '{r}'"))?;
            }
            Some(mask)
        }
        _ => None,
    };
    let param_names: Vec<Box<str>> = spec
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(Into::into)
        .collect();
    if param_names.len() > routes::MAX_PARAMS {
        return Err("too many parameters".into());
    }
    if spec
        .self_service
        .is_some_and(|s| s != SelfService::Password)
        && param_names.last().map(|s| &**s) != Some("uid")
    {
        return Err("own-user self-service needs a trailing {uid}".into());
    }
    Ok(Route {
        method,
        template: spec.path.as_str().into(),
        permission,
        permission_name: perms.name(permission).clone(),
        class: spec.class,
        version,
        roles_mask,
        self_service: spec.self_service,
        node_local: spec.node_local,
        live: spec.source.as_deref() == Some("live"),
        mode,
        param_names,
    })
}
