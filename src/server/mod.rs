//! The client side: TLS config, the accept loop and per-connection serving.

pub mod conn;
pub mod listener;
pub mod tls;
