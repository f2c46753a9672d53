//! Roles and permissions, compiled to bitsets: the built-in roles of the
//! profile and the custom `[[roles]]` of the config. Validation of custom
//! roles (unknown permission or base role, duplicate or built-in names)
//! happens here and names the offending key. No request-time allocation:
//! a check is a bit test.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::config::CustomRoleConfig;
use super::profile::ProfileFile;
use crate::config::ConfigError;

/// Maximum number of permissions a profile may declare (one bit each).
pub(crate) const MAX_PERMISSIONS: usize = 128;
/// Maximum number of built-in roles (route restrictions are a `u16` mask).
const MAX_BUILTIN_ROLES: usize = 16;

/// A set of permissions, one bit per declared permission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PermSet(u128);

impl PermSet {
    pub fn has(self, p: PermId) -> bool {
        self.0 & (1u128 << p.0) != 0
    }
    pub fn insert(&mut self, p: PermId) {
        self.0 |= 1u128 << p.0;
    }
}

/// Index of a declared permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PermId(pub u8);

/// Names of the declared permissions, by index.
#[derive(Debug)]
pub(crate) struct Permissions {
    names: Vec<Arc<str>>,
    by_name: HashMap<Arc<str>, PermId>,
}

impl Permissions {
    pub fn new(declared: &[String]) -> Result<Self, Vec<ConfigError>> {
        if declared.len() > MAX_PERMISSIONS {
            return Err(vec![ConfigError::new(
                "profile.permissions",
                format!("more than {MAX_PERMISSIONS} permissions"),
            )]);
        }
        let mut names = Vec::with_capacity(declared.len());
        let mut by_name = HashMap::new();
        for (i, n) in declared.iter().enumerate() {
            let name: Arc<str> = n.as_str().into();
            // Bounded by MAX_PERMISSIONS above, so the index fits a u8.
            let id = PermId(u8::try_from(i).unwrap_or(u8::MAX));
            if by_name.insert(name.clone(), id).is_some() {
                return Err(vec![ConfigError::new(
                    format!("profile.permissions[{i}]"),
                    format!("'{n}' declared twice"),
                )]);
            }
            names.push(name);
        }
        Ok(Permissions { names, by_name })
    }
    pub fn id(&self, name: &str) -> Option<PermId> {
        self.by_name.get(name).copied()
    }
    pub fn name(&self, id: PermId) -> &Arc<str> {
        &self.names[usize::from(id.0)]
    }
}

/// A compiled role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub name: Arc<str>,
    /// Everything the role holds.
    pub perms: PermSet,
    /// Permissions granted by name in the gateway config (not inherited):
    /// a route's built-in role restriction does not apply to them.
    pub explicit: PermSet,
    /// The built-in role this one is (or extends), as a bit of a role mask.
    pub base_bit: u16,
    pub builtin: bool,
}

/// Built-in and custom roles, looked up by exact name.
#[derive(Debug)]
pub(crate) struct RoleTable {
    roles: Vec<Role>,
}

impl RoleTable {
    /// Built-in roles from the profile, then the custom ones, validated.
    pub fn compile(
        profile: &ProfileFile,
        perms: &Permissions,
        custom: &[CustomRoleConfig],
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut roles = Vec::new();
        if profile.roles.len() > MAX_BUILTIN_ROLES {
            errors.push(ConfigError::new(
                "profile.roles",
                "more than 16 built-in roles",
            ));
        }
        for (i, (name, list)) in profile.roles.iter().enumerate() {
            let mut set = PermSet::default();
            for p in list.iter().filter_map(|p| perms.id(p)) {
                set.insert(p);
            }
            roles.push(Role {
                name: name.as_str().into(),
                perms: set,
                explicit: PermSet::default(),
                base_bit: 1u16
                    .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                    .unwrap_or(0),
                builtin: true,
            });
        }
        let builtin_count = roles.len();
        let mut seen = HashSet::new();
        for (i, c) in custom.iter().enumerate() {
            // Checked before the rest so a broken first definition still
            // makes the second one a duplicate.
            let duplicate = !seen.insert(c.name.as_str());
            match compile_custom(i, c, &roles[..builtin_count], perms) {
                Ok(role) if !duplicate => roles.push(role),
                Ok(_) => errors.push(ConfigError::new(
                    format!("roles[{i}].name"),
                    format!("role '{}' defined twice", c.name),
                )),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(RoleTable { roles })
        } else {
            Err(errors)
        }
    }

    /// The role named exactly `name` (a handful of roles: a linear scan
    /// beats hashing here).
    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| &*r.name == name)
    }

    /// Mask bit of a built-in role.
    pub fn builtin_bit(&self, name: &str) -> Option<u16> {
        self.get(name).filter(|r| r.builtin).map(|r| r.base_bit)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter()
    }
}

fn compile_custom(
    i: usize,
    c: &CustomRoleConfig,
    builtins: &[Role],
    perms: &Permissions,
) -> Result<Role, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let valid_name = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid_name {
        errors.push(ConfigError::new(
            format!("roles[{i}].name"),
            "must be 1-64 characters of [A-Za-z0-9_.-]",
        ));
    } else if builtins.iter().any(|r| *r.name == *c.name) {
        errors.push(ConfigError::new(
            format!("roles[{i}].name"),
            format!("'{}' is a built-in role", c.name),
        ));
    }
    let lookup = |key: String, list: &[String], errors: &mut Vec<ConfigError>| {
        let mut set = PermSet::default();
        for (j, p) in list.iter().enumerate() {
            match perms.id(p) {
                Some(id) if set.has(id) => errors.push(ConfigError::new(
                    format!("{key}[{j}]"),
                    format!("'{p}' listed twice"),
                )),
                Some(id) => set.insert(id),
                None => errors.push(ConfigError::new(
                    format!("{key}[{j}]"),
                    format!("unknown permission '{p}'"),
                )),
            }
        }
        set
    };
    let role = match (&c.permissions, &c.extends) {
        (Some(list), None) => {
            if !c.add.is_empty() || !c.remove.is_empty() {
                errors.push(ConfigError::new(
                    format!("roles[{i}]"),
                    "`add`/`remove` need `extends`; with `permissions` list them all",
                ));
            }
            let set = lookup(format!("roles[{i}].permissions"), list, &mut errors);
            Role {
                name: c.name.as_str().into(),
                perms: set,
                explicit: set,
                base_bit: 0,
                builtin: false,
            }
        }
        (None, Some(base)) => {
            let add = lookup(format!("roles[{i}].add"), &c.add, &mut errors);
            let remove = lookup(format!("roles[{i}].remove"), &c.remove, &mut errors);
            if add.0 & remove.0 != 0 {
                errors.push(ConfigError::new(
                    format!("roles[{i}]"),
                    "a permission is both added and removed",
                ));
            }
            let Some(b) = builtins.iter().find(|r| *r.name == **base) else {
                errors.push(ConfigError::new(
                    format!("roles[{i}].extends"),
                    format!("unknown built-in role '{base}'"),
                ));
                return Err(errors);
            };
            Role {
                name: c.name.as_str().into(),
                perms: PermSet((b.perms.0 | add.0) & !remove.0),
                explicit: add,
                base_bit: b.base_bit,
                builtin: false,
            }
        }
        _ => {
            errors.push(ConfigError::new(
                format!("roles[{i}]"),
                "exactly one of `permissions` or `extends` is required",
            ));
            return Err(errors);
        }
    };
    if errors.is_empty() {
        Ok(role)
    } else {
        Err(errors)
    }
}
