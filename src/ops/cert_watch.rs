//! Picks up a renewed TLS certificate without a signal: polls the `[tls]`
//! cert and key every `tls.watch_interval` and, once a change has stayed
//! the same for one more interval (so that a cert written a moment before
//! its key is not loaded half-way), reloads the config as SIGHUP does. A
//! renewed pair from cert-manager (a Secret volume swaps a symlink) or an
//! ACME client is served from then on; a broken one is rejected, logged and
//! counted like any reload, and the running certificate stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::gateway::Gateway;

/// How often a disabled watcher checks whether a reload enabled it.
const DISABLED_RECHECK: Duration = Duration::from_secs(5);

/// What identifies a file's content cheaply: the resolved file (a symlink
/// swap changes it), its size and its modification time.
type Stamp = Option<(u64, u64, u64, Option<SystemTime>)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()))
}

/// Starts watching the files of `gw`'s current config; the task ends when
/// the gateway is dropped. The baseline is read here, before returning, so
/// that a change made right after the start is seen.
pub fn spawn(gw: &Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    let last = {
        let snap = gw.current();
        let t = &snap.config.tls_files;
        let now = [stamp(&t.cert), stamp(&t.key)];
        (t.cert.clone(), t.key.clone(), now)
    };
    tokio::spawn(watch(Arc::downgrade(gw), Some(last)))
}

async fn watch(gw: Weak<Gateway>, mut last: Option<(PathBuf, PathBuf, [Stamp; 2])>) {
    let mut pending: Option<[Stamp; 2]> = None;
    loop {
        let (cert, key, every) = {
            let Some(g) = gw.upgrade() else { return };
            let snap = g.current();
            let t = &snap.config.tls_files;
            (t.cert.clone(), t.key.clone(), t.watch_interval)
        };
        if every.is_zero() {
            last = None;
            tokio::time::sleep(DISABLED_RECHECK).await;
            continue;
        }
        let now = [stamp(&cert), stamp(&key)];
        match &last {
            // first look, or other files after a reload: the baseline
            Some((c, k, _)) if *c != cert || *k != key => {
                last = Some((cert, key, now));
                pending = None;
            }
            None => last = Some((cert, key, now)),
            Some((_, _, seen)) if *seen == now => pending = None,
            Some(_) if pending == Some(now) => {
                tracing::info!(cert = %cert.display(), key = %key.display(), "TLS files changed: reloading");
                last = Some((cert, key, now));
                pending = None;
                let Some(g) = gw.upgrade() else { return };
                // errors are logged and counted by reload()
                let _ = tokio::task::spawn_blocking(move || g.reload()).await;
            }
            // changed: wait one more interval for the writes to settle
            Some(_) => pending = Some(now),
        }
        tokio::time::sleep(every).await;
    }
}
