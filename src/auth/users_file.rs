//! The users file (`[auth] users`): `[[users]]` entries with a name, a
//! password hash, a role and an optional uid, loaded into an immutable
//! [`UserTable`]. A table is built whole or not at all: a reload that fails
//! leaves the caller's old table in force. Errors name the key
//! (`users[3].password_hash`, 0-based) and the file, never a hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::password::{CostProfile, StoredHash};
use crate::config::ConfigError;

/// The dummy profile when the table is empty: what `hash-password` writes.
const DEFAULT_PROFILE: CostProfile = CostProfile::Argon2id {
    m: super::password::OWASP_M_COST_KIB,
    t: super::password::OWASP_T_COST,
    p: super::password::OWASP_P_COST,
    len: 32,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    name: String,
    password_hash: String,
    role: String,
    uid: Option<u64>,
    client_cert: Option<String>,
}

/// One user of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Exact bytes as written in the file.
    pub name: Arc<str>,
    pub hash: StoredHash,
    pub role: Arc<str>,
    pub uid: Option<u64>,
    /// A client-certificate name (subject CN, SAN email or DNS name) the
    /// connection must have presented for this user's credentials to count.
    pub client_cert: Option<Arc<str>>,
}

/// All users of one version of the users file, plus the dummy hash that
/// unknown user names are verified against.
#[derive(Debug)]
pub struct UserTable {
    users: HashMap<Arc<str>, Arc<UserEntry>>,
    dummy: StoredHash,
    /// Weak or legacy hashes, each naming its `users[i].password_hash`.
    warnings: Vec<ConfigError>,
}

impl UserTable {
    /// Reads and validates `path`. `previous` lends its dummy hash when the
    /// cost profile did not change, so a reload need not hash again.
    pub fn load(
        path: &Path,
        has_role: &dyn Fn(&str) -> bool,
        previous: Option<&UserTable>,
    ) -> Result<UserTable, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError::new(
                "auth.users",
                format!("cannot read users file {}: {e}", path.display()),
            )]
        })?;
        Self::parse(&text, path, has_role, previous)
    }

    /// Validates the text of a users file (`path` only names it in errors).
    pub fn parse(
        text: &str,
        path: &Path,
        has_role: &dyn Fn(&str) -> bool,
        previous: Option<&UserTable>,
    ) -> Result<UserTable, Vec<ConfigError>> {
        let file: UsersFile = toml::from_str(text).map_err(|e| {
            // Only the message and a line number: toml's Display would quote
            // the offending line, which may hold a hash.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            vec![ConfigError::new(
                "auth.users",
                format!("{}{at}: {}", path.display(), e.message()),
            )]
        })?;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut users: HashMap<Arc<str>, Arc<UserEntry>> = HashMap::new();
        for (i, rec) in file.users.into_iter().enumerate() {
            let mut err = |field: &str, problem: &str| {
                errors.push(ConfigError::new(
                    format!("users[{i}].{field}"),
                    format!("{problem} (in {})", path.display()),
                ));
            };
            if let Some(problem) = name_problem(&rec.name) {
                err("name", problem);
            } else if users.contains_key(rec.name.as_str()) {
                err("name", "duplicate user name");
            }
            if !has_role(&rec.role) {
                err("role", "unknown role");
            }
            if rec
                .client_cert
                .as_deref()
                .is_some_and(|c| name_problem(c).is_some())
            {
                err(
                    "client_cert",
                    "not a certificate name (empty, or with ':' or control characters)",
                );
            }
            let hash = StoredHash::parse(&rec.password_hash)
                .map_err(|problem| err("password_hash", problem))
                .ok();
            if let Some(weak) = hash.as_ref().and_then(StoredHash::weakness) {
                warnings.push(ConfigError::new(
                    format!("users[{i}].password_hash"),
                    format!("{weak} (user {:?} in {})", rec.name, path.display()),
                ));
            }
            if let Some(hash) = hash {
                let name: Arc<str> = rec.name.into();
                let entry = UserEntry {
                    name: name.clone(),
                    hash,
                    role: rec.role.into(),
                    uid: rec.uid,
                    client_cert: rec.client_cert.map(Arc::from),
                };
                users.entry(name).or_insert_with(|| Arc::new(entry));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let profile = strongest_profile(users.values().map(|u| u.hash.profile()));
        let dummy = match previous {
            Some(prev) if prev.dummy.profile() == profile => prev.dummy.clone(),
            _ => StoredHash::dummy(profile).map_err(|e| {
                vec![ConfigError::new(
                    "auth.users",
                    format!("cannot build the dummy hash: {e}"),
                )]
            })?,
        };
        Ok(UserTable {
            users,
            dummy,
            warnings,
        })
    }

    /// Looks a user up by exact name.
    pub fn get(&self, name: &str) -> Option<&Arc<UserEntry>> {
        self.users.get(name)
    }

    /// The hash unknown users are verified against.
    pub fn dummy(&self) -> &StoredHash {
        &self.dummy
    }

    /// Weak or legacy hashes (`check-config` prints them; the gateway
    /// logs them at load).
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file lists no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when some user is bound to a client certificate.
    pub fn has_cert_bindings(&self) -> bool {
        self.users.values().any(|u| u.client_cert.is_some())
    }

    /// Users present here whose entry (hash, role, uid, certificate
    /// binding) differs in `next` or who are gone from it: their cached
    /// verifications must be dropped.
    pub fn changed_in(&self, next: &UserTable) -> Vec<Arc<str>> {
        self.users
            .iter()
            .filter(|(name, old)| next.get(name).is_none_or(|new| new != *old))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A `[[users]]` entry as TOML, ready to paste into a users file
/// (`regate hash-password --user NAME --role ROLE`).
pub fn user_block(name: &str, hash: &str, role: &str) -> Result<String, &'static str> {
    if let Some(problem) = name_problem(name) {
        return Err(problem);
    }
    if role.is_empty() || role.chars().any(char::is_control) {
        return Err("the role is empty or has control characters");
    }
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    Ok(format!(
        "[[users]]\nname = {}\npassword_hash = {}\nrole = {}\n",
        quote(name),
        quote(hash),
        quote(role)
    ))
}

/// Why a user name cannot be used, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty user name")
    } else if name.contains(':') {
        Some("a user name cannot contain ':' (Basic authentication splits on it)")
    } else if name.chars().any(char::is_control) {
        Some("a user name cannot contain control characters")
    } else {
        None
    }
}

/// The costliest profile of the table (the default one for an empty
/// table): unknown users then take at least as long as any real one, so
/// cost differences do not tell them apart.
fn strongest_profile(profiles: impl Iterator<Item = CostProfile>) -> CostProfile {
    profiles
        .max_by_key(|p| (p.work(), matches!(p, CostProfile::Argon2id { .. })))
        .unwrap_or(DEFAULT_PROFILE)
}

/// Resolves `users` against the config file's directory.
pub fn resolve(base_dir: &Path, users: &Path) -> PathBuf {
    if users.is_absolute() {
        users.to_path_buf()
    } else {
        base_dir.join(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcrypt4(pw: &str) -> String {
        bcrypt::hash(pw, 4).unwrap()
    }

    fn any_role(r: &str) -> bool {
        matches!(r, "admin" | "db_viewer")
    }

    #[test]
    fn loads_users() {
        let text = format!(
            "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\nrole = \"admin\"\nuid = 7\n",
            bcrypt4("pw")
        );
        let t = UserTable::parse(&text, Path::new("u.toml"), &any_role, None).unwrap();
        let alice = t.get("alice").unwrap();
        assert_eq!((&*alice.role, alice.uid), ("admin", Some(7)));
        assert_eq!(t.dummy().profile(), CostProfile::Bcrypt { cost: 4 });
        assert!(t.get("Alice").is_none());
    }

    #[test]
    fn dummy_takes_the_strongest_cost_and_weak_hashes_warn() {
        let text = format!(
            "[[users]]\nname = \"a\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
             [[users]]\nname = \"b\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
             [[users]]\nname = \"c\"\npassword_hash = \"{}\"\nrole = \"admin\"\n",
            bcrypt4("pw"),
            bcrypt4("pw"),
            bcrypt::hash("pw", 6).unwrap().replacen("$2b$", "$2a$", 1)
        );
        let t = UserTable::parse(&text, Path::new("u.toml"), &any_role, None).unwrap();
        assert_eq!(
            t.dummy().profile(),
            CostProfile::Bcrypt { cost: 6 },
            "not the most common"
        );
        let keys: Vec<_> = t.warnings().iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(t.warnings()[0].problem.contains("bcrypt cost"));
    }

    #[test]
    fn errors_name_the_key_and_hide_the_hash() {
        let good = bcrypt4("pw");
        let text = format!(
            "[[users]]\nname = \"a\"\npassword_hash = \"{good}\"\nrole = \"admin\"\n\
             [[users]]\nname = \"a\"\npassword_hash = \"{good}\"\nrole = \"root\"\n\
             [[users]]\nname = \"b\"\npassword_hash = \"md5:SECRETHASH\"\nrole = \"admin\"\n"
        );
        let errs = UserTable::parse(&text, Path::new("u.toml"), &any_role, None).unwrap_err();
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["users[1].name", "users[1].role", "users[2].password_hash"]
        );
        assert!(errs.iter().all(|e| !e.problem.contains("SECRETHASH")));
    }

    #[test]
    fn syntax_errors_do_not_quote_the_line() {
        let text = "[[users]]\nname = \"a\"\npassword_hash = \"$2b$SECRET\nrole = 1\n";
        let errs = UserTable::parse(text, Path::new("u.toml"), &any_role, None).unwrap_err();
        assert_eq!(errs[0].key, "auth.users");
        assert!(!errs[0].problem.contains("SECRET"), "{}", errs[0].problem);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = "[[users]]\nname = \"a\"\npasword_hash = \"x\"\nrole = \"admin\"\n";
        assert!(UserTable::parse(text, Path::new("u.toml"), &any_role, None).is_err());
    }
}
