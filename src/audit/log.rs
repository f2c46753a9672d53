//! [`AuditLog`]: the handle request tasks hold. It encodes a record on the
//! caller's thread, takes a slot in the bounded queue (waiting or dropping
//! per `on_full`) and hands the line to the writer thread
//! ([`super::writer`]). It never touches the file itself, so a slow disk
//! shows up as back-pressure or counted drops, never as a torn line.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::chain::{recover_sealed, ChainHead};
use super::config::{AuditSettings, OnFull, SinkSettings};
use super::json::hex;
use super::record::AuditRecord;
use super::sink::Sink;
use super::writer;

/// What became of a submitted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// In the queue; it will be written (or counted as failed).
    Queued,
    /// `on_full = "drop"` and the queue was full: counted in `dropped`.
    Dropped,
    /// `try_submit` with `on_full = "block"` and a full queue: nothing
    /// was counted; call `submit().await` (or use [`AuditLog::reserve`]).
    WouldBlock,
    /// The log was shut down: counted in `dropped`.
    Closed,
    /// `[audit] enabled = false`.
    Disabled,
}

/// Counters and state, for metrics and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStats {
    /// Records accepted into the queue.
    pub accepted: u64,
    /// Records written to the sink.
    pub written: u64,
    /// Records refused (full queue with `on_full = "drop"`, or after shutdown).
    pub dropped: u64,
    /// Accepted records the sink could not take.
    pub failed: u64,
    /// Records waiting for the writer (or reserved for a request in flight).
    pub queued: usize,
    /// False while the sink is failing.
    pub sink_ok: bool,
    /// `seq` of the last record written.
    pub last_seq: u64,
    /// The chain head (hex SHA-256 of the last line): an anchor to keep
    /// elsewhere, since editing the very last line is otherwise undetectable.
    pub head: String,
}

/// State shared by the handles and the writer thread.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    pub(super) permits: Arc<Semaphore>,
    capacity: usize,
    /// `on_full = "drop"` (a reload may change it).
    pub(super) drop_when_full: AtomicBool,
    pub(super) required: AtomicBool,
    enabled: bool,
    /// The settings in force, for a reload to compare with.
    pub(super) settings: Mutex<AuditSettings>,
    pub(super) closed: AtomicBool,
    pub(super) accepted: AtomicU64,
    pub(super) written: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) sink_ok: AtomicBool,
    pub(super) head: Mutex<ChainHead>,
    pub(super) done: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn on_full(&self) -> OnFull {
        match self.drop_when_full.load(Ordering::Relaxed) {
            true => OnFull::Drop,
            false => OnFull::Block,
        }
    }
}

/// Lines waiting for the writer, and requests to it.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) lines: VecDeque<Vec<u8>>,
    pub(super) closed: bool,
    pub(super) reopen: bool,
    /// Intent records waiting to be acknowledged once written: (position
    /// in `lines`, who waits).
    pub(super) acks: Vec<(usize, tokio::sync::oneshot::Sender<bool>)>,
    /// New settings from a reload, for the writer to apply.
    pub(super) reconfig: Option<writer::Reconfig>,
    /// The writer sleeps on the condvar: the next line must wake it.
    /// While it is awake (writing, or lingering to gather a batch) pushes
    /// skip the wake-up syscall.
    pub(super) writer_idle: bool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the audit trail down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The audit trail. Cheap to clone; all clones feed one writer thread.
#[derive(Clone)]
pub struct AuditLog {
    pub(super) shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Closes the queue when the last handle goes, so the writer drains and
/// exits even without an explicit shutdown.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        close(&self.0);
    }
}

fn close(shared: &Shared) {
    lock(&shared.queue).closed = true;
    shared.closed.store(true, Ordering::Release);
    shared.permits.close();
    shared.wake.notify_all();
}

impl AuditLog {
    /// Opens the sink, recovers the chain head from what is already on
    /// disk and starts the writer thread. With `enabled = false` returns
    /// [`AuditLog::disabled`].
    pub fn open(settings: AuditSettings) -> io::Result<AuditLog> {
        if !settings.enabled {
            return Ok(AuditLog::disabled());
        }
        // Lock first: only the one writer may cut a torn tail.
        let mut sink = Sink::open(&settings.sink)?;
        let (head, sealed) = match &settings.sink {
            SinkSettings::File { path, .. } => recover_sealed(path)?,
            SinkSettings::Stdout => (ChainHead::genesis(), false),
        };
        sink.refresh()?;
        let log = AuditLog::new(&settings, head);
        let shared = log.shared.clone();
        let (fsync, seal) = (settings.fsync, settings.seal.clone());
        match &seal {
            Some(s) => tracing::info!(
                target: "regate::audit",
                key_id = s.sealer.key_id(),
                forward_secure = s.forward.is_some(),
                "audit checkpoints are signed"
            ),
            None => tracing::info!(
                target: "regate::audit",
                "audit trail unkeyed (no signing_key): a re-chained file cannot be detected"
            ),
        }
        std::thread::Builder::new()
            .name("regate-audit".into())
            .spawn(move || writer::run(shared, sink, head, fsync, seal, sealed))?;
        Ok(log)
    }

    /// A log that accepts nothing and writes nothing (`enabled = false`).
    pub fn disabled() -> AuditLog {
        let mut settings = AuditSettings::file("/dev/null");
        settings.enabled = false;
        let log = AuditLog::new(&settings, ChainHead::genesis());
        log.shared.done.send_replace(true);
        log
    }

    fn new(settings: &AuditSettings, head: ChainHead) -> AuditLog {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            permits: Arc::new(Semaphore::new(settings.queue_capacity)),
            capacity: settings.queue_capacity,
            drop_when_full: AtomicBool::new(settings.on_full == OnFull::Drop),
            required: AtomicBool::new(settings.required),
            enabled: settings.enabled,
            settings: Mutex::new(settings.clone()),
            closed: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sink_ok: AtomicBool::new(true),
            head: Mutex::new(head),
            done: watch::Sender::new(false),
        });
        AuditLog {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// Queues one record. With `on_full = "block"` waits for room (no
    /// record is lost); with `"drop"` drops and counts it when full.
    pub async fn submit(&self, rec: &AuditRecord<'_>) -> Submitted {
        if !self.shared.enabled {
            return Submitted::Disabled;
        }
        let permit = match self.shared.on_full() {
            OnFull::Block => match self.shared.permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return self.refuse(Submitted::Closed),
            },
            OnFull::Drop => match self.try_permit() {
                Ok(p) => p,
                Err(outcome) => return outcome,
            },
        };
        self.push(permit, rec)
    }

    /// Queues one record without waiting. A full queue counts a drop in
    /// `"drop"` mode and returns [`Submitted::WouldBlock`] in `"block"` mode.
    pub fn try_submit(&self, rec: &AuditRecord<'_>) -> Submitted {
        if !self.shared.enabled {
            return Submitted::Disabled;
        }
        match self.try_permit() {
            Ok(p) => self.push(p, rec),
            Err(outcome) => outcome,
        }
    }

    /// Takes a queue slot ahead of time, waiting in `"block"` mode. For a
    /// synchronous exit door: reserve when the request starts (where
    /// awaiting is fine), fill the slot when it ends, which then never
    /// waits and never loses the record. In `"drop"` mode a full queue
    /// yields an empty slot whose record is counted as dropped.
    pub async fn reserve(&self) -> AuditSlot {
        let permit = match self.shared.on_full() {
            _ if !self.shared.enabled => None,
            OnFull::Block => self.shared.permits.clone().acquire_owned().await.ok(),
            OnFull::Drop => self.shared.permits.clone().try_acquire_owned().ok(),
        };
        AuditSlot {
            log: self.clone(),
            permit,
        }
    }

    fn try_permit(&self) -> Result<OwnedSemaphorePermit, Submitted> {
        match self.shared.permits.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(TryAcquireError::Closed) => Err(self.refuse(Submitted::Closed)),
            Err(TryAcquireError::NoPermits) => match self.shared.on_full() {
                OnFull::Drop => Err(self.refuse(Submitted::Dropped)),
                OnFull::Block => Err(Submitted::WouldBlock),
            },
        }
    }

    fn refuse(&self, outcome: Submitted) -> Submitted {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    fn push(&self, permit: OwnedSemaphorePermit, rec: &AuditRecord<'_>) -> Submitted {
        let mut line = Vec::with_capacity(768);
        rec.encode_fields(&mut line);
        let mut q = lock(&self.shared.queue);
        if q.closed {
            // The writer may already have taken its last batch.
            return self.refuse(Submitted::Closed);
        }
        // The writer gives the slot back once the line is written.
        permit.forget();
        q.lines.push_back(line);
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        let wake = std::mem::take(&mut q.writer_idle);
        drop(q);
        if wake {
            self.shared.wake.notify_one();
        }
        Submitted::Queued
    }

    /// True when [`AuditLog::intent`] must be awaited before forwarding
    /// (`required = true`).
    pub fn wants_intent(&self) -> bool {
        self.shared.enabled && self.shared.required.load(Ordering::Relaxed)
    }

    /// With `required = true`, before a request is forwarded: queues its
    /// intent record and returns once the writer has handed it to the
    /// kernel (and synced it, with `fsync = "always"`). Concurrent intents
    /// share one write (group commit). False when it could not be
    /// written: the request must not be forwarded. An intent takes no
    /// queue slot (the request already holds one for its outcome, and
    /// waiting for a second could deadlock a full queue): intents are
    /// bounded by the requests in flight, and never dropped.
    pub async fn intent(&self, rec: &AuditRecord<'_>) -> bool {
        if !self.wants_intent() {
            return true;
        }
        let mut line = Vec::with_capacity(640);
        rec.encode_intent(&mut line);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.push_intent(line, tx) {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    fn push_intent(&self, line: Vec<u8>, tx: tokio::sync::oneshot::Sender<bool>) -> bool {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return false;
        }
        q.lines.push_back(line);
        let at = q.lines.len() - 1;
        q.acks.push((at, tx));
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        let wake = std::mem::take(&mut q.writer_idle);
        drop(q);
        if wake {
            self.shared.wake.notify_one();
        }
        true
    }

    /// False when `required = true` and the sink is failing (or the log is
    /// shut down): the gateway should answer 503 `audit_unavailable`.
    pub fn healthy(&self) -> bool {
        !self.shared.required.load(Ordering::Relaxed)
            || (self.shared.sink_ok.load(Ordering::Relaxed)
                && !self.shared.closed.load(Ordering::Relaxed))
    }

    /// Asks the writer to close and reopen the file (SIGHUP after logrotate).
    pub fn reopen(&self) {
        lock(&self.shared.queue).reopen = true;
        self.shared.wake.notify_all();
    }

    /// Refuses new records and returns once every accepted record has been
    /// written (or counted as failed) and synced.
    pub async fn shutdown(&self) {
        close(&self.shared);
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        let s = &self.shared;
        let head = *lock(&s.head);
        AuditStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            queued: s.capacity.saturating_sub(s.permits.available_permits()),
            sink_ok: s.sink_ok.load(Ordering::Relaxed),
            last_seq: head.seq,
            head: hex(&head.hash),
        }
    }
}

/// A reserved place in the queue for one record (see [`AuditLog::reserve`]).
/// Dropping it unused gives the place back.
pub struct AuditSlot {
    log: AuditLog,
    permit: Option<OwnedSemaphorePermit>,
}

impl AuditSlot {
    /// Queues the record in the reserved place; never waits.
    pub fn submit(self, rec: &AuditRecord<'_>) -> Submitted {
        if !self.log.shared.enabled {
            return Submitted::Disabled;
        }
        match self.permit {
            Some(p) => self.log.push(p, rec),
            None if self.log.shared.closed.load(Ordering::Relaxed) => {
                self.log.refuse(Submitted::Closed)
            }
            None => self.log.refuse(Submitted::Dropped),
        }
    }
}
