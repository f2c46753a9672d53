//! The simulated cluster's users and management roles, shared by all of its
//! nodes: Basic credential checks, the JSON of `GET /v1/users` and
//! `GET /v1/roles`, and the run-time changes the control API makes. Holds
//! passwords in clear: this is test data, never a real credential store.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::ids::{now_unix, rfc3339};

/// A user of the simulated cluster. `name` is the login (an email address on
/// RS); `role` a management role name such as `admin` or `db_viewer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    pub uid: u64,
    pub name: String,
    pub password: String,
    pub role: String,
}

/// RS's built-in management roles: (role uid, display name, management).
const BUILTIN_ROLES: [(u64, &str, &str); 7] = [
    (1, "Admin", "admin"),
    (2, "Cluster Member", "cluster_member"),
    (3, "Cluster Viewer", "cluster_viewer"),
    (4, "DB Member", "db_member"),
    (5, "DB Viewer", "db_viewer"),
    (6, "User Manager", "user_manager"),
    (7, "None", "none"),
];
/// Roles named by users but not built in get uids from here on.
const FIRST_EXTRA_ROLE_UID: u64 = 100;

struct Entry {
    user: SimUser,
    /// When the password was last set, seconds since the epoch.
    issued: u64,
}

/// The shared user table.
#[derive(Clone, Default)]
pub(crate) struct UserTable(Arc<RwLock<Vec<Entry>>>);

impl UserTable {
    pub(crate) fn new(users: Vec<SimUser>) -> Self {
        let table = UserTable::default();
        for u in users {
            table.upsert(u);
        }
        table
    }

    // A panicking test thread must not lock the others out.
    fn read(&self) -> RwLockReadGuard<'_, Vec<Entry>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Entry>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `u`, replacing any user with the same name or uid.
    pub(crate) fn upsert(&self, u: SimUser) {
        let mut t = self.write();
        t.retain(|e| e.user.name != u.name && e.user.uid != u.uid);
        t.push(Entry {
            user: u,
            issued: now_unix(),
        });
        t.sort_by_key(|e| e.user.uid);
    }

    /// Changes a password and moves `password_issue_date` forward (at least
    /// one second, so a change is always visible). False if no such user.
    pub(crate) fn set_password(&self, name: &str, password: &str) -> bool {
        let mut t = self.write();
        let Some(e) = t.iter_mut().find(|e| e.user.name == name) else {
            return false;
        };
        e.user.password = password.to_string();
        e.issued = now_unix().max(e.issued + 1);
        true
    }

    pub(crate) fn remove(&self, name: &str) -> bool {
        let mut t = self.write();
        let before = t.len();
        t.retain(|e| e.user.name != name);
        t.len() != before
    }

    /// The user these credentials belong to, if they are right.
    pub(crate) fn check(&self, name: &str, password: &str) -> Option<SimUser> {
        self.read()
            .iter()
            .find(|e| e.user.name == name && e.user.password == password)
            .map(|e| e.user.clone())
    }

    /// Authenticates the `Authorization` values of a request: exactly one,
    /// `Basic` (any case), base64 of `name:password` split at the first
    /// colon.
    pub(crate) fn authenticate<'a>(
        &self,
        mut values: impl Iterator<Item = &'a [u8]>,
    ) -> Option<SimUser> {
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let (name, password) = parse_basic(value)?;
        self.check(&name, &password)
    }

    pub(crate) fn users_json(&self) -> Value {
        let t = self.read();
        Value::Array(t.iter().map(|e| self.user_value(&t, e)).collect())
    }

    pub(crate) fn user_json(&self, uid: &str) -> Option<Value> {
        let uid: u64 = uid.parse().ok()?;
        let t = self.read();
        let e = t.iter().find(|e| e.user.uid == uid)?;
        Some(self.user_value(&t, e))
    }

    // Same keys as the captured GET_v1_users.json; `name` and `email` are
    // both the login, since that is what clients match on.
    fn user_value(&self, t: &[Entry], e: &Entry) -> Value {
        json!({
            "auth_method": "regular",
            "certificate_subject_line": "",
            "email": e.user.name,
            "email_alerts": true,
            "name": e.user.name,
            "password_issue_date": rfc3339(e.issued),
            "role": e.user.role,
            "role_uids": [role_uid(t, &e.user.role)],
            "status": "active",
            "uid": e.user.uid,
        })
    }

    pub(crate) fn roles_json(&self) -> Value {
        Value::Array(roles(&self.read()))
    }

    pub(crate) fn role_json(&self, uid: &str) -> Option<Value> {
        let uid: u64 = uid.parse().ok()?;
        roles(&self.read())
            .into_iter()
            .find(|r| r["uid"].as_u64() == Some(uid))
    }
}

/// Built-in roles, then one per role name users carry that is not built in.
fn extra_roles(t: &[Entry]) -> Vec<&str> {
    let mut extra: Vec<&str> = t
        .iter()
        .map(|e| e.user.role.as_str())
        .filter(|r| !BUILTIN_ROLES.iter().any(|(_, _, m)| m == r))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    extra
}

fn role_uid(t: &[Entry], role: &str) -> u64 {
    if let Some((uid, _, _)) = BUILTIN_ROLES.iter().find(|(_, _, m)| *m == role) {
        return *uid;
    }
    let pos = extra_roles(t).iter().position(|r| *r == role).unwrap_or(0);
    FIRST_EXTRA_ROLE_UID + pos as u64
}

fn roles(t: &[Entry]) -> Vec<Value> {
    let builtin = BUILTIN_ROLES
        .iter()
        .map(|(uid, name, management)| json!({"uid": uid, "name": name, "management": management}));
    let extra = extra_roles(t)
        .into_iter()
        .enumerate()
        .map(|(i, r)| json!({"uid": FIRST_EXTRA_ROLE_UID + i as u64, "name": r, "management": r}));
    builtin.chain(extra).collect()
}

/// `Basic <base64(name:password)>` with the scheme in any case.
pub(crate) fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, creds) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(creds.trim()).ok()?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u64, name: &str, role: &str) -> SimUser {
        SimUser {
            uid,
            name: name.into(),
            password: "pw".into(),
            role: role.into(),
        }
    }

    fn basic(s: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(s)).into_bytes()
    }

    #[test]
    fn basic_auth_rules() {
        let t = UserTable::new(vec![user(1, "a@x", "admin")]);
        let good = basic("a@x:pw");
        assert!(t.authenticate([good.as_slice()].into_iter()).is_some());
        let lower = format!("basic {}", STANDARD.encode("a@x:pw")).into_bytes();
        assert!(t.authenticate([lower.as_slice()].into_iter()).is_some());
        let bad = basic("a@x:nope");
        assert!(t.authenticate([bad.as_slice()].into_iter()).is_none());
        // Two Authorization headers never authenticate, in either order.
        assert!(t
            .authenticate([good.as_slice(), bad.as_slice()].into_iter())
            .is_none());
        assert!(t.authenticate([&b"Bearer x"[..]].into_iter()).is_none());
        assert!(t.authenticate([&b"Basic !!!"[..]].into_iter()).is_none());
    }

    #[test]
    fn password_colon_splits_at_first() {
        assert_eq!(
            parse_basic(&basic("u:pa:ss")),
            Some(("u".into(), "pa:ss".into()))
        );
    }

    #[test]
    fn roles_map_role_uids() {
        let t = UserTable::new(vec![
            user(1, "a@x", "admin"),
            user(2, "v@x", "db_viewer"),
            user(3, "c@x", "custom"),
        ]);
        let users = t.users_json();
        assert_eq!(users[1]["role_uids"], json!([5]));
        let custom_uid = users[2]["role_uids"][0].clone();
        let role = t.role_json(&custom_uid.to_string()).unwrap();
        assert_eq!(role["management"], "custom");
    }

    #[test]
    fn set_password_moves_issue_date() {
        let t = UserTable::new(vec![user(1, "a@x", "admin")]);
        let before = t.users_json()[0]["password_issue_date"].clone();
        assert!(t.set_password("a@x", "new"));
        assert_ne!(t.users_json()[0]["password_issue_date"], before);
        assert!(t.check("a@x", "new").is_some() && t.check("a@x", "pw").is_none());
        assert!(t.remove("a@x") && t.users_json() == json!([]));
    }
}
