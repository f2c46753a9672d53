//! Keeping identities current: users-file reloads (on demand for SIGHUP,
//! and by polling the file's mtime and length), and cluster table syncs.
//! A broken users file is logged, counted and ignored: the old table stays.
//! Users whose verification is no longer valid (changed hash, removed,
//! new `password_issue_date`) lose their cached entries at the swap.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use super::authenticator::Authenticator;
use super::cache::Stamp;
use super::cluster::table::{RoleJson, UserJson};
use super::cluster::{ClusterError, ClusterTable};
use super::source::Source;
use super::users_file::UserTable;
use crate::config::ConfigError;

/// How often [`Authenticator::spawn_background`] polls the users file.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the identity source is the cluster; there is no users file to reload")]
    NotFileSource,
    #[error("users file rejected, previous table kept: {}", join(.0))]
    Invalid(Vec<ConfigError>),
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Authenticator {
    /// Re-reads the users file. Blocking (it may hash a dummy password):
    /// call it from `spawn_blocking` inside async code.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let inner = &self.inner;
        let Source::File(fs) = &inner.source else {
            return Err(ReloadError::NotFileSource);
        };
        let _one_at_a_time = fs.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = fs.table();
        match UserTable::load(fs.path(), &*fs.role_check, Some(&old)) {
            Ok(new) => {
                for w in new.warnings() {
                    tracing::warn!(key = %w.key, problem = %w.problem, "users file");
                }
                let changed: HashSet<Arc<str>> = old.changed_in(&new).into_iter().collect();
                let users = new.len();
                fs.swap(new);
                if !changed.is_empty() {
                    // Hits are re-checked against the table anyway; this frees
                    // the memory.
                    let _ = inner
                        .cache
                        .invalidate_entries_if(move |_, v| changed.contains(&v.user));
                }
                inner.stats.reload(true);
                tracing::info!(users, file = %fs.path().display(), "users file reloaded");
                Ok(())
            }
            Err(errors) => {
                inner.stats.reload(false);
                for e in &errors {
                    tracing::error!(key = %e.key, problem = %e.problem,
                        "users file rejected; keeping the previous table");
                }
                Err(ReloadError::Invalid(errors))
            }
        }
    }

    /// Polls the users file every `every` and reloads it when its mtime or
    /// length changes. `None` for the cluster source. The task ends when the
    /// last clone of this authenticator is dropped.
    pub fn watch_users_file(&self, every: Duration) -> Option<JoinHandle<()>> {
        let Source::File(fs) = &self.inner.source else {
            return None;
        };
        let path = fs.path().to_path_buf();
        let weak = Arc::downgrade(&self.inner);
        // Taken before spawning, so an edit right after this call is seen.
        let mut last = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let now = file_stamp(&path).await;
                if now != last && now.is_some() {
                    last = now;
                    let auth = Authenticator { inner };
                    // Errors are logged and counted inside reload().
                    let _ = tokio::task::spawn_blocking(move || auth.reload()).await;
                }
            }
        }))
    }

    /// Starts the background work of the source: the users-file watcher, or
    /// the periodic cluster sync (the first one right away).
    pub fn spawn_background(&self) -> JoinHandle<()> {
        if let Some(h) = self.watch_users_file(WATCH_INTERVAL) {
            return h;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let auth = Authenticator { inner };
                if let Err(e) = auth.sync_now().await {
                    tracing::warn!(error = %e, "cluster user sync failed; keeping the last table");
                }
                let every = match &auth.inner.source {
                    Source::Cluster(cs) => cs.settings.sync_interval,
                    Source::File(_) => break,
                };
                drop(auth);
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Re-reads users and roles from the cluster now. Returns the number of
    /// users. A no-op for the file source.
    pub async fn sync_now(&self) -> Result<usize, ClusterError> {
        self.sync_if_older_than(Duration::ZERO).await
    }

    /// Syncs unless the last sync finished less than `min_age` ago.
    pub(super) async fn sync_if_older_than(
        &self,
        min_age: Duration,
    ) -> Result<usize, ClusterError> {
        let inner = &self.inner;
        let Source::Cluster(cs) = &inner.source else {
            return Ok(0);
        };
        let mut last = cs.sync_lock.lock().await;
        if let (Some(at), Some(table)) = (*last, cs.table()) {
            if at.elapsed() < min_age {
                return Ok(table.len());
            }
        }
        let auth = cs.settings.service.authorization();
        let timeout = cs.settings.authorize_timeout;
        let fetched = async {
            let users: Vec<UserJson> = cs.client.get_json("/v1/users", &auth, timeout).await?;
            let roles: Vec<RoleJson> = cs.client.get_json("/v1/roles", &auth, timeout).await?;
            Ok::<_, ClusterError>(ClusterTable::build(users, roles))
        }
        .await;
        let table = match fetched {
            Ok(t) => cs.store(t),
            Err(e) => {
                inner.stats.sync(false);
                return Err(e);
            }
        };
        *last = Some(Instant::now());
        inner.stats.sync(true);
        let current = table.clone();
        let _ = inner
            .cache
            .invalidate_entries_if(move |_, v| match &v.stamp {
                Stamp::Cluster {
                    uid,
                    password_issue_date,
                } => current
                    .get(&v.user)
                    .is_none_or(|u| u.uid != *uid || u.password_issue_date != *password_issue_date),
                Stamp::File(_) => true,
            });
        Ok(table.len())
    }
}

async fn file_stamp(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok(), meta.len()))
}
