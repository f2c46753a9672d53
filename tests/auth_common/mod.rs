//! Shared fixtures for the `auth_*` integration tests: a users file with
//! cheap bcrypt (cost 4) hashes in a temp dir, an authenticator over it,
//! and Basic header builders.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use regate::auth::{AuthConfig, AuthMemo, Authenticator, RoleCheck};

pub const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

/// A user line: (name, password, role, uid).
pub type User<'a> = (&'a str, &'a str, &'a str, Option<u64>);

pub fn roles() -> RoleCheck {
    Arc::new(|r: &str| matches!(r, "admin" | "db_viewer" | "cluster_viewer"))
}

pub fn users_toml(users: &[User]) -> String {
    let mut out = String::new();
    for (name, pw, role, uid) in users {
        let hash = bcrypt::hash(pw, 4).unwrap();
        out.push_str(&format!(
            "[[users]]\nname = {}\npassword_hash = \"{hash}\"\nrole = \"{role}\"\n",
            toml_string(name)
        ));
        if let Some(uid) = uid {
            out.push_str(&format!("uid = {uid}\n"));
        }
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub auth: Authenticator,
}

impl Fixture {
    pub fn users_path(&self) -> PathBuf {
        self.dir.path().join("users.toml")
    }

    /// Rewrites the users file (not reloaded until asked).
    pub fn write_users(&self, users: &[User]) {
        std::fs::write(self.users_path(), users_toml(users)).unwrap();
    }
}

/// An authenticator over `users`, with `[auth]` keys from `extra` (TOML).
pub fn file_auth(users: &[User], extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.toml"), users_toml(users)).unwrap();
    let cfg: AuthConfig = toml::from_str(extra).unwrap();
    let settings = cfg
        .validate(dir.path(), roles())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let auth = Authenticator::new(settings, None).unwrap();
    Fixture { dir, auth }
}

/// Generous failure limits so only tests about limits meet them.
pub const NO_LIMITS: &str = "failed_per_ip = { rate = \"100000/s\", burst = 100000 }\n\
                             failed_per_ip_user = { rate = \"100000/s\", burst = 100000 }\n\
                             failed_per_user = { rate = \"100000/s\", burst = 100000 }\n";

pub fn basic(user: &str, password: &str) -> HeaderMap {
    raw_auth(&[format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).as_bytes()])
}

pub fn raw_auth(values: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
    }
    h
}

/// The auth memo of "this connection": one per test thread, as if each
/// test's requests came over one keep-alive connection (tasks of a
/// multi-thread runtime use their worker's).
pub fn conn() -> &'static AuthMemo {
    thread_local! {
        static MEMO: &'static AuthMemo = Box::leak(Box::default());
    }
    MEMO.with(|m| *m)
}
