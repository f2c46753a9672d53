//! systemd socket activation: the TLS listening socket passed in
//! `LISTEN_FDS` (fd 3) by `regate.socket`. systemd keeps the socket open
//! across restarts of the service, so connections arriving while regate
//! restarts wait in the kernel's accept queue instead of being refused.
//! (`listenfd` wraps the one unsafe step: turning fd 3 into a listener.)

use std::net::TcpListener;

/// The passed TCP listener, when systemd passed one to this process
/// (`LISTEN_PID` is ours). The variables are cleared so that no child
/// inherits them. `Err` when the passed fd is not a TCP listener.
pub fn take_listener() -> std::io::Result<Option<TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        tracing::warn!(
            passed = fds.len(),
            "socket activation passed several sockets; using the first for the TLS port"
        );
    }
    let listener = fds.take_tcp_listener(0).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("socket activation: the passed fd 3 is not a TCP listening socket: {e}"),
        )
    })?;
    match listener {
        Some(l) => {
            l.set_nonblocking(true)?;
            Ok(Some(l))
        }
        None => Ok(None),
    }
}
