//! The second, independent place checkpoints go (`[audit]
//! checkpoint_sink`): the service log on standard error (journald under
//! systemd, the container log under Kubernetes) or a file of its own, so
//! that cutting the tail of the trail leaves checkpoints elsewhere that
//! cover records no longer there (`audit verify --checkpoints`). Used only
//! from the writer thread; it sends a checkpoint only once the records it
//! covers are synced, so it never claims more than the trail holds.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::syslog::Syslog;

/// Where checkpoints are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorSettings {
    /// Standard error, one checkpoint line each (default).
    Stderr,
    /// A file of checkpoint lines, appended and synced.
    File(PathBuf),
    /// RFC 5424 over TCP to a collector.
    Syslog(SocketAddr),
}

/// An open second sink.
pub struct Anchor {
    target: Target,
}

enum Target {
    Stderr,
    Syslog(Syslog),
    File(File),
}

impl Anchor {
    /// Opens (creating if needed) the configured place.
    pub fn open(settings: &AnchorSettings) -> io::Result<Anchor> {
        let target = match settings {
            AnchorSettings::Stderr => Target::Stderr,
            AnchorSettings::Syslog(addr) => Target::Syslog(Syslog::start(*addr)?),
            AnchorSettings::File(path) => Target::File(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            ),
        };
        Ok(Anchor { target })
    }

    /// Copies one checkpoint line (with its newline) and makes it durable.
    pub fn send(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.target {
            Target::Stderr => {
                let mut err = io::stderr().lock();
                err.write_all(line)?;
                err.flush()
            }
            Target::File(f) => {
                f.write_all(line)?;
                f.sync_data()
            }
            Target::Syslog(s) => s.send(line),
        }
    }
}
