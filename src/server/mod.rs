//! The client side: TLS config, the accept loop and per-connection serving.

pub mod client_cert;
pub mod conn;
mod h1;
mod h1_write;
pub mod listener;
mod rewind;
pub mod tls;
