//! The two identity sources behind the authenticator: the users file
//! (hash verification on a blocking thread, a dummy hash for unknown users)
//! and the cluster (`POST /v1/users/authorize`, roles from the synced
//! table). Each returns a [`Verified`] stamped with what it was checked
//! against; neither decides about caching or limiting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::authenticator::{Authenticator, Inner};
use super::basic::Credentials;
use super::cache::{Stamp, Verified};
use super::cluster::{ClusterClient, ClusterTable, ClusterUser};
use super::config::{ClusterSettings, RoleCheck};
use super::users_file::UserTable;

/// Least time between two on-demand syncs (a login unknown to the table).
const MIN_ON_DEMAND_SYNC: Duration = Duration::from_secs(1);

/// Why a verification did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum VerifyError {
    /// Wrong password or unknown user: charged to the failure budgets.
    #[error("bad credentials")]
    Bad,
    /// Valid, but the user has no management role in the current table.
    #[error("no role")]
    NoRole,
    /// The identity source could not be asked.
    #[error("identity source unavailable")]
    Unavailable,
    /// A blocking task died or the semaphore closed.
    #[error("internal error")]
    Internal,
}

pub(crate) enum Source {
    File(FileSource),
    Cluster(Box<ClusterSource>),
}

/// The users file and its current table.
pub(crate) struct FileSource {
    path: PathBuf,
    table: ArcSwap<UserTable>,
    pub(super) role_check: RoleCheck,
    pub(super) reload_lock: std::sync::Mutex<()>,
}

impl FileSource {
    pub(super) fn new(path: PathBuf, table: UserTable, role_check: RoleCheck) -> Self {
        FileSource {
            path,
            table: ArcSwap::from_pointee(table),
            role_check,
            reload_lock: std::sync::Mutex::new(()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn table(&self) -> Arc<UserTable> {
        self.table.load_full()
    }

    pub(super) fn swap(&self, table: UserTable) -> Arc<UserTable> {
        self.table.swap(Arc::new(table))
    }

    /// Verifies the password against the user's hash, or against the dummy
    /// hash for an unknown user so both take the same time.
    pub(super) async fn verify(
        &self,
        inner: &Inner,
        creds: &Credentials,
    ) -> Result<Arc<Verified>, VerifyError> {
        let table = self.table();
        let entry = table.get(creds.user()).cloned();
        let permit = inner
            .verify_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| VerifyError::Internal)?;
        inner.stats.verification();
        // The blocking task owns its copy of the password and the permit, so
        // the slot stays taken until the hash is done even if we are dropped.
        let password = creds.password().to_owned();
        let (ok, entry) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let ok = match &entry {
                Some(e) => e.hash.verify(password.as_bytes()),
                None => {
                    let _ = table.dummy().verify(password.as_bytes());
                    false
                }
            };
            (ok, entry)
        })
        .await
        .map_err(|_| VerifyError::Internal)?;
        match entry {
            Some(e) if ok => Ok(Arc::new(Verified {
                user: e.name.clone(),
                stamp: Stamp::File(e.hash.as_str().into()),
                at: std::time::Instant::now(),
            })),
            _ => Err(VerifyError::Bad),
        }
    }
}

/// The cluster client and the last synced user table.
pub(crate) struct ClusterSource {
    pub(super) client: ClusterClient,
    pub(super) settings: ClusterSettings,
    table: ArcSwapOption<ClusterTable>,
    /// Serializes syncs; holds when the last one finished.
    pub(super) sync_lock: tokio::sync::Mutex<Option<Instant>>,
}

impl ClusterSource {
    pub(super) fn new(client: ClusterClient, settings: ClusterSettings) -> Self {
        ClusterSource {
            client,
            settings,
            table: ArcSwapOption::empty(),
            sync_lock: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn table(&self) -> Option<Arc<ClusterTable>> {
        self.table.load_full()
    }

    pub(super) fn store(&self, table: ClusterTable) -> Arc<ClusterTable> {
        let table = Arc::new(table);
        self.table.store(Some(table.clone()));
        table
    }

    fn user(&self, login: &str) -> Option<ClusterUser> {
        self.table().and_then(|t| t.get(login).cloned())
    }

    /// Asks the cluster; on success stamps the user's uid and
    /// `password_issue_date` from the synced table (syncing once more if
    /// the login is not in it yet).
    pub(super) async fn verify(
        &self,
        auth: &Authenticator,
        creds: &Credentials,
    ) -> Result<Arc<Verified>, VerifyError> {
        let inner = &auth.inner;
        let permit = inner
            .verify_slots
            .acquire()
            .await
            .map_err(|_| VerifyError::Internal)?;
        inner.stats.verification();
        let valid = self
            .client
            .authorize(creds, self.settings.authorize_timeout)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cluster authorize call failed");
                VerifyError::Unavailable
            })?;
        drop(permit);
        if !valid {
            return Err(VerifyError::Bad);
        }
        let user = match self.user(creds.user()) {
            Some(u) => u,
            None => {
                if let Err(e) = auth.sync_if_older_than(MIN_ON_DEMAND_SYNC).await {
                    tracing::warn!(error = %e, "on-demand cluster sync failed");
                }
                self.user(creds.user()).ok_or(VerifyError::NoRole)?
            }
        };
        Ok(Arc::new(Verified {
            user: user.login.clone(),
            stamp: Stamp::Cluster {
                uid: user.uid,
                password_issue_date: user.password_issue_date.clone(),
            },
            at: std::time::Instant::now(),
        }))
    }
}
