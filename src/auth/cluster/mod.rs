//! The cluster identity source: credentials are checked by the cluster
//! (`client.rs`), roles come from its user and role tables synced in the
//! background (`table.rs`). This module owns the HTTP shapes only; the
//! caching and limiting around it live in the authenticator.

pub mod client;
pub mod table;

pub use client::{ClusterClient, ClusterError};
pub use table::{ClusterTable, ClusterUser};
