//! Everything towards the cluster nodes: the pooled client, node
//! selection, header rewriting and sending. The pipeline decides *whether*
//! to forward; this module only decides *how*.

pub mod balance;
pub mod client;
pub mod forward;
pub mod framing;
pub mod headers;
pub mod health;
pub mod inline;
pub mod inline_body;
pub mod pool;
pub mod redirect;
pub mod retry;
pub mod stream;
