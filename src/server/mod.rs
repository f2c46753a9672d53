//! The client side: TLS config, the accept loop and per-connection serving.

pub mod conn;
pub(crate) mod h1;
mod h1_write;
pub mod listener;
mod rewind;
pub mod tls;
