//! The writer thread: the only code that touches the sink. It takes every
//! waiting line at once, chains them ([`ChainHead::append_line`]), writes
//! the batch with one `write` per file, rotates between lines when the
//! file is full, syncs per the `fsync` policy, and only then gives the
//! queue slots back. A plain OS thread, so a stalled disk never blocks a
//! Tokio worker. Woken by the first line after it went idle, it lingers
//! [`LINGER`] before taking a small batch: under load that turns one wake-up,
//! `stat` and `write` per request into one per few milliseconds.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chain::ChainHead;
use super::checkpoint::Checkpoints;
use super::config::{Fsync, SealSettings};
use super::json::hex;
use super::log::{lock, Shared};
use super::sink::Sink;

/// How long the writer waits after a wake-up for more lines to join the
/// batch: under load, one wake-up, `stat` and `write` per 2 ms instead of
/// per line (records reach the file at most this much later). Shorter
/// costs throughput (1 ms: -4%); longer makes each batch hold the core
/// longer (5 ms: p99 +0.2 ms at 50k requests/s on one core).
const LINGER: Duration = Duration::from_millis(2);
/// Batches smaller than this wait [`LINGER`] for more lines (never more
/// than a quarter of the queue, so a small queue does not fill meanwhile).
const SMALL_BATCH: usize = 512;

/// What a reload hands the writer: a sink already opened (and locked) at
/// the new path, and the new sync and sealing settings.
pub(super) struct Reconfig {
    pub(super) sink: Option<Sink>,
    /// New `max_bytes` and `keep` for the same file.
    pub(super) limits: Option<(u64, u32)>,
    pub(super) fsync: Fsync,
    pub(super) seal: Option<SealSettings>,
}

/// Runs until the queue is closed and drained, then seals, syncs and
/// signals done. `sealed`: the trail already ends with a checkpoint.
pub(super) fn run(
    shared: Arc<Shared>,
    mut sink: Sink,
    mut head: ChainHead,
    mut fsync: Fsync,
    seal: Option<SealSettings>,
    sealed: bool,
) {
    let guard = DoneGuard(shared.clone());
    let mut cps = seal.map(|s| Checkpoints::new(s, &head, sealed));
    let mut batch: VecDeque<Vec<u8>> = VecDeque::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut acks = Vec::new();
    let mut dirty_since: Option<Instant> = None;
    // A trail left unsealed (a crash, or signing just turned on) is sealed
    // first, so no more than `checkpoint_records` records ever sit between
    // two checkpoints.
    seal_now(&shared, &mut sink, &head, &mut cps, &mut dirty_since);
    loop {
        let (closed, reopen, reconfig) = {
            let mut q = lock(&shared.queue);
            while q.lines.is_empty() && !q.closed && !q.reopen && q.reconfig.is_none() {
                let sync_in = match (fsync, dirty_since) {
                    (Fsync::Every(every), Some(since)) => every.saturating_sub(since.elapsed()),
                    _ => Duration::MAX,
                };
                let seal_in = cps
                    .as_ref()
                    .and_then(|c| c.due_in())
                    .unwrap_or(Duration::MAX);
                let wait = sync_in.min(seal_in);
                if wait.is_zero() {
                    break;
                }
                q.writer_idle = true;
                q = if wait == Duration::MAX {
                    shared.wake.wait(q).unwrap_or_else(|p| p.into_inner())
                } else {
                    match shared.wake.wait_timeout(q, wait) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                };
            }
            q.writer_idle = false;
            let small = SMALL_BATCH.min(shared.capacity() / 4).max(1);
            if (1..small).contains(&q.lines.len()) && !q.closed && !q.reopen && q.acks.is_empty() {
                // A small batch: let the requests in flight add their lines
                // (not when a request waits for its intent record).
                drop(q);
                std::thread::sleep(LINGER);
                q = lock(&shared.queue);
            }
            std::mem::swap(&mut q.lines, &mut batch);
            std::mem::swap(&mut q.acks, &mut acks);
            // Once closed, no line can be pushed any more: this batch is the last.
            (q.closed, std::mem::take(&mut q.reopen), q.reconfig.take())
        };
        if reopen {
            // Close the old file sealed and synced, then carry on in the new one.
            seal_now(&shared, &mut sink, &head, &mut cps, &mut dirty_since);
            let _ = sync(&shared, &mut sink, &mut cps, &mut dirty_since);
            match sink.reopen() {
                Ok(()) => tracing::info!(target: "regate::audit", "audit log reopened"),
                Err(e) => set_ok(&shared, false, &e.to_string()),
            }
        }
        if let Some(next) = reconfig {
            // Before this batch: whatever was submitted after the reload
            // goes to the new file. The old one is closed sealed and
            // synced, and the chain carries on in the new one.
            seal_now(&shared, &mut sink, &head, &mut cps, &mut dirty_since);
            let _ = sync(&shared, &mut sink, &mut cps, &mut dirty_since);
            if let Some(s) = next.sink {
                sink = s;
            }
            if let Some((max_bytes, keep)) = next.limits {
                sink.set_limits(max_bytes, keep);
            }
            fsync = next.fsync;
            let same = match (&cps, &next.seal) {
                (Some(c), Some(n)) => c.settings() == n,
                (None, None) => true,
                _ => false,
            };
            if !same {
                cps = next.seal.map(|s| Checkpoints::new(s, &head, false));
                seal_now(&shared, &mut sink, &head, &mut cps, &mut dirty_since);
            }
            tracing::info!(target: "regate::audit", seq = head.seq, head = %hex(&head.hash), "audit settings applied; the chain continues");
        }
        let mut written = 0;
        if !batch.is_empty() {
            let n = batch.len();
            written = write_batch(&shared, &mut sink, &mut head, &batch, &mut buf, &mut cps);
            batch.clear();
            dirty_since.get_or_insert_with(Instant::now);
            // intent records took no slot
            shared.permits.add_permits(n - acks.len());
        }
        if cps
            .as_ref()
            .is_some_and(|c| c.due_in().is_some_and(|d| d.is_zero()))
            || closed
        {
            seal_now(&shared, &mut sink, &head, &mut cps, &mut dirty_since);
        }
        let due = match (fsync, dirty_since) {
            (_, None) => false,
            (Fsync::Always, Some(_)) => true,
            (Fsync::Every(every), Some(since)) => closed || since.elapsed() >= every,
        };
        let synced = !due || sync(&shared, &mut sink, &mut cps, &mut dirty_since);
        // Intent records: written (and synced, with "always") or not.
        for (at, tx) in acks.drain(..) {
            let _ = tx.send(at < written && (fsync != Fsync::Always || synced));
        }
        if closed {
            tracing::info!(
                target: "regate::audit",
                seq = head.seq,
                head = %hex(&head.hash),
                "audit log closed"
            );
            break;
        }
    }
    // Release the file (and its lock) before anyone hears we are done.
    drop(sink);
    drop(guard);
}

/// Syncs the trail, then copies the newest checkpoint to the second sink.
fn sync(
    shared: &Shared,
    sink: &mut Sink,
    cps: &mut Option<Checkpoints>,
    dirty_since: &mut Option<Instant>,
) -> bool {
    *dirty_since = None;
    match sink.sync() {
        Ok(()) => {
            if let Some(c) = cps.as_mut() {
                c.synced();
            }
            true
        }
        Err(e) => {
            set_ok(shared, false, &format!("fsync: {e}"));
            false
        }
    }
}

/// Writes a checkpoint for `head` if records are unsealed.
fn seal_now(
    shared: &Shared,
    sink: &mut Sink,
    head: &ChainHead,
    cps: &mut Option<Checkpoints>,
    dirty_since: &mut Option<Instant>,
) {
    let Some(c) = cps.as_mut().filter(|c| c.unsealed(head)) else {
        return;
    };
    let mut line = Vec::with_capacity(256);
    c.seal(head, &mut line);
    // Into the file the last records went to, even if it was renamed
    // (logrotate before SIGHUP): that file ends sealed.
    match sink.write(&line) {
        Ok(()) => {
            dirty_since.get_or_insert_with(Instant::now);
        }
        Err(e) => {
            c.write_failed();
            set_ok(shared, false, &e.to_string());
        }
    }
}

/// Chains and writes one batch, with a checkpoint after every
/// `checkpoint_records` records and at the end of a file being rotated.
/// Lines that cannot be written are counted as failed and the chain rolls
/// back to the last line actually written, so the next record links to
/// what is on disk.
fn write_batch(
    shared: &Shared,
    sink: &mut Sink,
    head: &mut ChainHead,
    batch: &VecDeque<Vec<u8>>,
    buf: &mut Vec<u8>,
    cps: &mut Option<Checkpoints>,
) -> usize {
    let mut committed = *head;
    let mut done = 0usize;
    let result = (|| -> std::io::Result<()> {
        if !sink.is_current() {
            // Renamed under us (logrotate, no SIGHUP yet): the file the
            // records went to ends sealed before the switch.
            if let Some(c) = cps.as_mut().filter(|c| c.unsealed(head)) {
                let mut line = Vec::with_capacity(256);
                c.seal(head, &mut line);
                if sink.write(&line).is_err() {
                    c.write_failed();
                }
            }
            // (one `stat` per batch when nothing changed)
            sink.ensure_current()?;
        }
        buf.clear();
        let mut in_buf = 0usize;
        for fields in batch {
            let before = buf.len();
            let line_head = *head;
            head.append_line(fields, buf);
            if sink.should_rotate(before, buf.len()) {
                let line = buf.split_off(before);
                if let Some(c) = cps.as_mut().filter(|c| c.unsealed(&line_head)) {
                    // The file being closed ends with a checkpoint.
                    c.seal(&line_head, buf);
                }
                if !buf.is_empty() {
                    sink.write(buf)?;
                    done += in_buf;
                    committed = line_head;
                    in_buf = 0;
                }
                *buf = line;
                sink.rotate()?;
                tracing::info!(
                    target: "regate::audit",
                    seq = committed.seq,
                    head = %hex(&committed.hash),
                    "audit log rotated"
                );
            }
            in_buf += 1;
            if let Some(c) = cps.as_mut() {
                c.after_record(head, buf);
            }
        }
        sink.write(buf)?;
        done += in_buf;
        committed = *head;
        Ok(())
    })();
    shared.written.fetch_add(done as u64, Ordering::Relaxed);
    match result {
        Ok(()) => {
            set_ok(shared, true, "");
            if let Some(c) = cps.as_mut() {
                c.written(head);
            }
        }
        Err(e) => {
            *head = committed;
            if let Some(c) = cps.as_mut() {
                c.write_failed();
            }
            let failed = (batch.len() - done) as u64;
            shared.failed.fetch_add(failed, Ordering::Relaxed);
            set_ok(shared, false, &e.to_string());
        }
    }
    *lock(&shared.head) = *head;
    done
}

/// Records the sink's state, logging only on a change (a failing disk
/// must not flood the service log).
fn set_ok(shared: &Shared, ok: bool, problem: &str) {
    let was = shared.sink_ok.swap(ok, Ordering::Relaxed);
    match (was, ok) {
        (true, false) => tracing::error!(
            target: "regate::audit",
            problem,
            "audit sink failing; records are counted as failed"
        ),
        (false, true) => tracing::info!(target: "regate::audit", "audit sink recovered"),
        _ => {}
    }
}

/// Signals completion however the thread ends. On a panic the waiting
/// lines are counted as failed and the queue closed, so neither
/// `shutdown()` nor a blocked submitter waits forever.
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        if std::thread::panicking() {
            shared.sink_ok.store(false, Ordering::Relaxed);
            let mut q = lock(&shared.queue);
            q.closed = true;
            shared
                .failed
                .fetch_add(q.lines.len() as u64, Ordering::Relaxed);
            q.lines.clear();
            // whoever waits for an intent record hears "not written"
            q.acks.clear();
            drop(q);
            shared.closed.store(true, Ordering::Release);
            shared.permits.close();
        }
        shared.done.send_replace(true);
    }
}
