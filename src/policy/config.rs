//! The `[policy]` and `[[roles]]` sections of the gateway's config file, as
//! serde structs. Unknown keys are errors so that a mistyped security key
//! never fails open. This module only describes the file; validation lives
//! in [`Policy::compile`](super::Policy::compile), which names the offending
//! key (`roles[0].add[1]`, `policy.routes."GET /v1/bdbz"`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The name of the only built-in profile.
pub const DEFAULT_PROFILE: &str = "redis-enterprise";

/// Whether a denial is enforced or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denials end the request (default).
    #[default]
    Enforce,
    /// Denials become permits flagged `dry_run_denied`; the pipeline forwards,
    /// logs and counts them. Unknown routes stay `NotFound` in both modes.
    DryRun,
}

impl Mode {
    /// `"enforce"` or `"dry_run"`, as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry_run",
        }
    }
}

/// `[policy]`: which profile, and in which mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Built-in profile name; only `"redis-enterprise"` exists.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Mode for every route not listed in `routes`.
    #[serde(default)]
    pub mode: Mode,
    /// Per-route mode: `"METHOD /template"` (exactly as in the profile,
    /// e.g. `"DELETE /v1/bdbs/{uid}"`) -> `"enforce"` | `"dry_run"`.
    #[serde(default)]
    pub routes: BTreeMap<String, Mode>,
}

fn default_profile() -> String {
    DEFAULT_PROFILE.to_owned()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            profile: default_profile(),
            mode: Mode::Enforce,
            routes: BTreeMap::new(),
        }
    }
}

/// One `[[roles]]` entry: a custom management role.
///
/// Either `permissions = [...]` (an explicit list), or `extends = "<built-in
/// role>"` with optional `add = [...]` / `remove = [...]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRoleConfig {
    /// Role name, as carried by users (`[a-zA-Z0-9_.-]`, not a built-in name).
    pub name: String,
    /// Explicit permission list (exclusive with `extends`).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// A built-in role to start from.
    #[serde(default)]
    pub extends: Option<String>,
    /// Permissions added to the base role.
    #[serde(default)]
    pub add: Vec<String>,
    /// Permissions removed from the base role.
    #[serde(default)]
    pub remove: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        policy: PolicyConfig,
        #[serde(default)]
        roles: Vec<CustomRoleConfig>,
    }

    #[test]
    fn parses_sections() {
        let f: File = toml::from_str(
            r#"
            [policy]
            mode = "dry_run"
            [policy.routes]
            "DELETE /v1/bdbs/{uid}" = "enforce"
            [[roles]]
            name = "ops"
            extends = "db_viewer"
            add = ["update_bdb"]
            "#,
        )
        .unwrap();
        assert_eq!(f.policy.profile, DEFAULT_PROFILE);
        assert_eq!(f.policy.mode, Mode::DryRun);
        assert_eq!(f.policy.routes["DELETE /v1/bdbs/{uid}"], Mode::Enforce);
        assert_eq!(f.roles[0].extends.as_deref(), Some("db_viewer"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<File>("[policy]\nmod = \"dry_run\"\n").is_err());
        assert!(toml::from_str::<File>("[[roles]]\nname = \"x\"\npermission = []\n").is_err());
        assert!(toml::from_str::<File>("[policy]\nmode = \"audit\"\n").is_err());
    }
}
