//! The client side: TLS config, the accept loop and per-connection serving.

pub mod client_cert;
pub mod conn;
pub(crate) mod h1;
mod h1_write;
mod h2_flood;
pub mod listener;
mod rewind;
pub mod tls;
