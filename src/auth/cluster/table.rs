//! The cluster's users and their management roles, read with the service
//! account from `GET /v1/users` and `GET /v1/roles` and kept as one
//! immutable [`ClusterTable`] per sync. A user's role comes from its
//! `role_uids` (each role's `management` field, first one found), falling
//! back to the deprecated `role` field. Users are keyed by their login: the
//! `email`, or the `name` when there is no email. An ambiguous login is left
//! out rather than guessed.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

/// One `GET /v1/users` element (unknown fields ignored: the cluster has many).
#[derive(Debug, Deserialize)]
pub struct UserJson {
    pub uid: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub role_uids: Option<Vec<u64>>,
    #[serde(default)]
    pub password_issue_date: Option<String>,
}

/// One `GET /v1/roles` element.
#[derive(Debug, Deserialize)]
pub struct RoleJson {
    pub uid: u64,
    #[serde(default)]
    pub management: Option<String>,
}

/// A cluster user as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUser {
    pub login: Arc<str>,
    pub uid: u64,
    /// Management role; `None` when the cluster names none.
    pub role: Option<Arc<str>>,
    pub password_issue_date: Option<Arc<str>>,
}

/// All cluster users of one sync, by login.
#[derive(Debug, Default)]
pub struct ClusterTable {
    users: HashMap<Arc<str>, ClusterUser>,
}

impl ClusterTable {
    /// Builds the table from the two JSON lists.
    pub fn build(users: Vec<UserJson>, roles: Vec<RoleJson>) -> ClusterTable {
        let management: HashMap<u64, String> = roles
            .into_iter()
            .filter_map(|r| r.management.filter(|m| !m.is_empty()).map(|m| (r.uid, m)))
            .collect();
        let mut table: HashMap<Arc<str>, ClusterUser> = HashMap::new();
        let mut ambiguous: Vec<Arc<str>> = Vec::new();
        for u in users {
            let login = match (u.email.filter(|e| !e.is_empty()), u.name) {
                (Some(email), _) => email,
                (None, Some(name)) if !name.is_empty() => name,
                _ => continue,
            };
            let from_uids = u
                .role_uids
                .iter()
                .flatten()
                .find_map(|uid| management.get(uid).cloned());
            let role = from_uids
                .or(u.role.filter(|r| !r.is_empty()))
                .map(Arc::<str>::from);
            let login: Arc<str> = login.into();
            let user = ClusterUser {
                login: login.clone(),
                uid: u.uid,
                role,
                password_issue_date: u.password_issue_date.map(Arc::from),
            };
            if table.insert(login.clone(), user).is_some() {
                ambiguous.push(login);
            }
        }
        for login in ambiguous {
            tracing::warn!(login = %login, "cluster lists this login twice; ignoring it");
            table.remove(&login);
        }
        ClusterTable { users: table }
    }

    /// The user with this exact login.
    pub fn get(&self, login: &str) -> Option<&ClusterUser> {
        self.users.get(login)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the cluster listed no usable user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(v: serde_json::Value) -> Vec<UserJson> {
        serde_json::from_value(v).unwrap()
    }

    fn roles() -> Vec<RoleJson> {
        serde_json::from_value(serde_json::json!([
            {"uid": 1, "name": "Admin", "management": "admin"},
            {"uid": 5, "name": "DB Viewer", "management": "db_viewer"},
            {"uid": 9, "name": "Data only"}
        ]))
        .unwrap()
    }

    #[test]
    fn role_from_role_uids_then_fallback() {
        let t = ClusterTable::build(
            users(serde_json::json!([
                {"uid": 1, "name": "Administrator", "email": "admin@x", "role": "admin", "role_uids": [5], "password_issue_date": "d1"},
                {"uid": 2, "name": "old", "role": "cluster_viewer"},
                {"uid": 3, "name": "n", "email": "nomgmt@x", "role_uids": [9], "role": "db_member"},
                {"uid": 4, "email": "none@x", "role_uids": [9]}
            ])),
            roles(),
        );
        assert_eq!(t.get("admin@x").unwrap().role.as_deref(), Some("db_viewer"));
        assert!(t.get("Administrator").is_none(), "login is the email");
        assert_eq!(
            t.get("old").unwrap().role.as_deref(),
            Some("cluster_viewer")
        );
        assert_eq!(
            t.get("nomgmt@x").unwrap().role.as_deref(),
            Some("db_member")
        );
        assert_eq!(t.get("none@x").unwrap().role, None);
        assert_eq!(
            t.get("admin@x").unwrap().password_issue_date.as_deref(),
            Some("d1")
        );
    }

    #[test]
    fn ambiguous_logins_are_dropped() {
        let t = ClusterTable::build(
            users(serde_json::json!([
                {"uid": 1, "email": "a@x", "role": "admin"},
                {"uid": 2, "name": "a@x", "role": "db_viewer"}
            ])),
            roles(),
        );
        assert!(t.get("a@x").is_none());
    }
}
