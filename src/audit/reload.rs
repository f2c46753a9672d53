//! [`AuditLog::reconfigure`]: what a SIGHUP does to the `[audit]` section.
//! Every key either takes effect (a new path: the old file is closed with
//! a checkpoint and the chain continues in the new one) or is named in a
//! `warn` saying it needs a restart; none stays old silently.

use std::sync::atomic::Ordering;

use super::config::{AuditSettings, OnFull, SinkSettings};
use super::log::{lock, AuditLog};
use super::sink::Sink;
use super::writer::Reconfig;

impl AuditLog {
    /// Applies a reloaded `[audit]` section. `enabled` and
    /// `queue_capacity` need a restart (logged as a warning); a new file
    /// that cannot be opened, or that already holds another trail, is
    /// logged as an error and the old one stays. Returns the keys applied.
    pub fn reconfigure(&self, next: &AuditSettings) -> Vec<&'static str> {
        let shared = &self.shared;
        let mut cur = lock(&shared.settings);
        let mut applied = Vec::new();
        if *cur == *next {
            return applied;
        }
        if cur.enabled != next.enabled {
            restart("audit.enabled");
        }
        if !cur.enabled {
            // Nothing runs: every other key waits for the restart too.
            *cur = AuditSettings {
                enabled: cur.enabled,
                ..next.clone()
            };
            return applied;
        }
        if cur.queue_capacity != next.queue_capacity {
            restart("audit.queue_capacity");
        }
        let (sink, limits) = match (&cur.sink, &next.sink) {
            (a, b) if a == b => (None, None),
            (
                SinkSettings::File { path: a, .. },
                SinkSettings::File {
                    path: b,
                    max_bytes,
                    keep,
                },
            ) if a == b => {
                cur.sink = next.sink.clone();
                applied.push("audit.max_bytes/keep");
                (None, Some((*max_bytes, *keep)))
            }
            (_, to) => match open_new(to) {
                Ok(s) => {
                    cur.sink = next.sink.clone();
                    applied.push("audit.sink/path");
                    (Some(s), None)
                }
                Err(e) => {
                    tracing::error!(
                        target: "regate::audit",
                        key = "audit.path",
                        error = %e,
                        "the new audit file cannot take the trail; records keep going to the old one"
                    );
                    (None, None)
                }
            },
        };
        if cur.on_full != next.on_full {
            let drop = next.on_full == OnFull::Drop;
            shared.drop_when_full.store(drop, Ordering::Relaxed);
            cur.on_full = next.on_full;
            applied.push("audit.on_full");
        }
        if cur.required != next.required {
            shared.required.store(next.required, Ordering::Relaxed);
            cur.required = next.required;
            applied.push("audit.required");
        }
        if cur.body_digest != next.body_digest {
            // read from the config snapshot by each request
            cur.body_digest = next.body_digest;
            applied.push("audit.body_digest");
        }
        let writer_change =
            sink.is_some() || limits.is_some() || cur.fsync != next.fsync || cur.seal != next.seal;
        if cur.fsync != next.fsync {
            cur.fsync = next.fsync;
            applied.push("audit.fsync");
        }
        if cur.seal != next.seal {
            cur.seal = next.seal.clone();
            applied.push("audit.signing_key/checkpoint_*");
        }
        if writer_change {
            lock(&shared.queue).reconfig = Some(Reconfig {
                sink,
                limits,
                fsync: cur.fsync,
                seal: cur.seal.clone(),
            });
            shared.wake.notify_all();
        }
        if !applied.is_empty() {
            tracing::info!(target: "regate::audit", keys = ?applied, "audit settings reloaded");
        }
        applied
    }
}

fn restart(key: &'static str) {
    tracing::warn!(
        target: "regate::audit",
        key,
        "changed in the config file: takes effect on restart; the running value stays"
    );
}

/// Opens (and locks) the file the trail moves to. A file that already
/// holds records is refused: continuing this chain there would break
/// that trail's own.
fn open_new(to: &SinkSettings) -> std::io::Result<Sink> {
    if let SinkSettings::File { path, .. } = to {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(std::io::Error::other(format!(
                "{} already holds records (another trail?); move it away first",
                path.display()
            )));
        }
    }
    Sink::open(to)
}
