//! The built-in `redis-enterprise` profile: the generated data file
//! (`config/policy/redis-enterprise.toml`, produced by `tools/gen_policy.py`
//! from the published docs) embedded with `include_str!`, and its serde
//! shape. Parsing checks the file's own consistency (every permission a
//! route or role names is declared); building the route table and the role
//! table is left to `routes.rs` and `roles.rs`.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::config::ConfigError;

/// The generated profile, compiled into the binary.
pub const REDIS_ENTERPRISE_TOML: &str = include_str!("../../config/policy/redis-enterprise.toml");

/// Rate-limit class of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointClass {
    /// GETs (view_* permissions).
    Read,
    /// Creates and updates.
    Write,
    /// Deletes, flushes, purges, resets, cancels and similar.
    Destructive,
}

impl EndpointClass {
    /// `"read"`, `"write"` or `"destructive"` (a bounded metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointClass::Read => "read",
            EndpointClass::Write => "write",
            EndpointClass::Destructive => "destructive",
        }
    }
}

/// A self-service rule a route carries (who may act on themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfService {
    /// `/v1/users/password`: the body's `username` must be the caller's.
    Password,
    /// `GET /v1/users/{uid}` with the caller's uid.
    OwnUser,
    /// `PUT /v1/users/{uid}` with the caller's uid, body limited to
    /// name, password and alert preferences.
    OwnUserUpdate,
}

/// The data file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileFile {
    pub profile: String,
    pub permissions: Vec<String>,
    pub routes: Vec<RouteSpec>,
    /// Built-in role -> permissions.
    pub roles: BTreeMap<String, Vec<String>>,
}

/// One route of the data file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub method: String,
    pub path: String,
    pub permission: String,
    pub class: EndpointClass,
    /// Only these built-in roles pass (the request page is narrower than
    /// the permissions page).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default, rename = "self")]
    pub self_service: Option<SelfService>,
    #[serde(default)]
    pub node_local: bool,
    /// `"live"` for routes real clusters serve that the docs omit.
    #[serde(default)]
    pub source: Option<String>,
}

/// Parses a profile by name.
pub(crate) fn load(name: &str) -> Result<ProfileFile, Vec<ConfigError>> {
    let text = match name {
        "redis-enterprise" => REDIS_ENTERPRISE_TOML,
        _ => {
            return Err(vec![ConfigError::new(
                "policy.profile",
                format!("unknown profile '{name}' (known: redis-enterprise)"),
            )])
        }
    };
    parse(text)
}

/// Parses and cross-checks a profile text.
pub(crate) fn parse(text: &str) -> Result<ProfileFile, Vec<ConfigError>> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| {
        vec![ConfigError::new(
            "policy.profile",
            format!("built-in profile does not parse: {e}"),
        )]
    })?;
    let mut errors = Vec::new();
    let declared: HashSet<&str> = file.permissions.iter().map(String::as_str).collect();
    for (i, r) in file.routes.iter().enumerate() {
        if !declared.contains(r.permission.as_str()) {
            errors.push(ConfigError::new(
                format!("profile.routes[{i}].permission"),
                format!("undeclared permission '{}'", r.permission),
            ));
        }
        for (j, role) in r.roles.iter().flatten().enumerate() {
            if !file.roles.contains_key(role) {
                errors.push(ConfigError::new(
                    format!("profile.routes[{i}].roles[{j}]"),
                    format!("unknown built-in role '{role}'"),
                ));
            }
        }
    }
    for (role, perms) in &file.roles {
        for (j, p) in perms.iter().enumerate() {
            if !declared.contains(p.as_str()) {
                errors.push(ConfigError::new(
                    format!("profile.roles.{role}[{j}]"),
                    format!("undeclared permission '{p}'"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile_parses() {
        let p = load("redis-enterprise").unwrap();
        assert_eq!(p.profile, "redis-enterprise");
        assert!(p.routes.len() > 220, "{}", p.routes.len());
        assert_eq!(p.roles.len(), 7);
        assert!(p.roles["none"].is_empty());
    }

    #[test]
    fn unknown_profile_names_the_key() {
        let e = load("nginx").unwrap_err();
        assert_eq!(e[0].key, "policy.profile");
    }

    #[test]
    fn undeclared_permission_is_caught() {
        let text = r#"
            profile = "t"
            permissions = ["a"]
            routes = [{ method = "GET", path = "/v1/x", permission = "b", class = "read" }]
            [roles]
            admin = ["a", "c"]
        "#;
        let e = parse(text).unwrap_err();
        let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["profile.routes[0].permission", "profile.roles.admin[1]"]
        );
    }
}
