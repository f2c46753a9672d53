//! Authentication: HTTP Basic credentials verified against a users file or
//! the cluster, behind a verified-credential cache and failed-login limits.
//! The pipeline calls [`Authenticator::authenticate`] and gets a
//! [`Principal`](crate::context::Principal) or a [`Reject`](crate::error::Reject).
//! This module decides who the caller is, never what they may do (that is
//! the policy's), and never logs or returns a password or an
//! `Authorization` value.

mod authenticator;
pub mod basic;
pub mod budgets;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod memo;
pub mod password;
mod refresh;
pub mod service_account;
mod source;
pub mod stats;
pub mod throttle;
pub mod users_file;

pub use authenticator::{Authenticator, SetupError};
pub use basic::{parse_basic, Credentials, MAX_AUTHORIZATION_BYTES};
pub use cluster::{ClusterClient, ClusterError};
pub use config::{AuthConfig, AuthSettings, ForwardMode, RoleCheck, SourceKind};
pub use memo::AuthMemo;
pub use password::{hash_password, read_password, PasswordError};
pub use refresh::{ReloadError, WATCH_INTERVAL};
pub use service_account::ServiceAccount;
pub use stats::{AuthStats, FailureReason};
pub use throttle::client_key;
