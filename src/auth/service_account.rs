//! The gateway's own cluster account, read from a credentials file
//! (`username = "..."`, `password = "..."`; never inline in the config). It
//! is used to sync the cluster's user tables and, with
//! `forward = "service"`, replaces the client's `Authorization` upstream.
//! Only the ready-made header value is kept; `Debug` shows the user name only.

use std::fmt;
use std::path::Path;

use http::HeaderValue;
use serde::Deserialize;

use super::basic::encode_basic;
use crate::config::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    username: String,
    password: String,
}

/// A service account: its name and its Basic `Authorization` value.
#[derive(Clone)]
pub struct ServiceAccount {
    username: String,
    header: HeaderValue,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Builds an account from a name and password (tests, embedding).
    pub fn new(username: &str, password: &str) -> Result<ServiceAccount, &'static str> {
        if username.is_empty() || password.is_empty() {
            return Err("username and password must not be empty");
        }
        if username.contains(':') {
            return Err("username cannot contain ':'");
        }
        let mut header = HeaderValue::from_str(&encode_basic(username, password))
            .map_err(|_| "credentials cannot form a header value")?;
        header.set_sensitive(true);
        Ok(ServiceAccount {
            username: username.to_owned(),
            header,
        })
    }

    /// Reads `path`; `key` is the config key named in errors.
    pub fn load(path: &Path, key: &str) -> Result<ServiceAccount, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
        warn_if_readable_by_others(path);
        let file: CredentialsFile = toml::from_str(&text).map_err(|e| {
            // e.message() only: Display would quote the line with the password.
            ConfigError::new(key, format!("{}: {}", path.display(), e.message()))
        })?;
        ServiceAccount::new(&file.username, &file.password)
            .map_err(|p| ConfigError::new(key, format!("{}: {p}", path.display())))
    }

    /// The account name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// `Basic base64(username:password)`, marked sensitive.
    pub fn authorization(&self) -> HeaderValue {
        self.header.clone()
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "credentials file is accessible by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_hides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("svc.toml");
        std::fs::write(&p, "username = \"svc@example.com\"\npassword = \"Sup3r\"\n").unwrap();
        let acc = ServiceAccount::load(&p, "auth.cluster.credentials_file").unwrap();
        assert_eq!(acc.username(), "svc@example.com");
        assert!(acc.authorization().is_sensitive());
        assert!(!format!("{acc:?}").contains("Sup3r"));
    }

    #[test]
    fn broken_file_names_key_not_password() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("svc.toml");
        std::fs::write(&p, "username = \"svc\"\npassword = \"Sup3r\nx").unwrap();
        let e = ServiceAccount::load(&p, "auth.cluster.credentials_file").unwrap_err();
        assert_eq!(e.key, "auth.cluster.credentials_file");
        assert!(!e.problem.contains("Sup3r"), "{}", e.problem);
    }
}
