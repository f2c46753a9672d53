//! regate: an authenticating TLS gateway for the Redis Enterprise Software
//! REST API. The binary (`main.rs`) is a thin CLI over this library so that
//! tests and benches drive the real gateway in-process.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod context;
pub mod error;
pub mod pki;
pub mod policy;
pub mod sim;
