//! Operations around the gateway, apart from the request path: the
//! `healthcheck` probe, systemd's readiness notifications, socket
//! activation, and the start-up summary and warnings.

pub mod activation;
pub mod cert_watch;
pub mod healthcheck;
pub mod logging;
pub mod sdnotify;
pub mod startup;
